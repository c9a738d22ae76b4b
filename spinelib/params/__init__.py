"""Each notebook's parameters as a typed, frozen dataclass (see :mod:`spinelib.params.base`).

=====================  ==============================  ========================
notebook               class                           profile files
=====================  ==============================  ========================
phantom stage          ``phantom.PhantomParams``       params/phantom.yaml
00 data exploration    ``data.ExploreParams``          params/data.yaml, explore.yaml
01 crop extraction     ``data.CropsParams``            params/data.yaml, crops.yaml
02 contrastive         ``contrastive.ContrastiveParams``   params/contrastive.yaml
03 fine-tune           ``contrastive.FinetuneParams``  params/finetune.yaml
04 ranking             ``ranking.RankingParams``       params/ranking.yaml
05 thresholds          ``ranking.ThresholdsParams``    params/thresholds.yaml
06 evaluation          ``ranking.EvaluationParams``    params/evaluation.yaml
07 score figure        ``ranking.ScoreFigureParams``   params/score_figure.yaml
08 localisation        ``multistage.LocalisationParams``   params/localisation.yaml
09 MIL grading         ``multistage.MilParams``        params/mil.yaml
=====================  ==============================  ========================
"""

from spinelib.params.base import SAME, Params, ParamsError, param

# YAML stem → "module:Class"; the tests load every profile through it (imported lazily: no torch at import time)
PROFILES = {
    "phantom": "phantom:PhantomParams",
    "explore": "data:ExploreParams",
    "crops": "data:CropsParams",
    "contrastive": "contrastive:ContrastiveParams",
    "finetune": "contrastive:FinetuneParams",
    "ranking": "ranking:RankingParams",
    "thresholds": "ranking:ThresholdsParams",
    "evaluation": "ranking:EvaluationParams",
    "score_figure": "ranking:ScoreFigureParams",
    "localisation": "multistage:LocalisationParams",
    "mil": "multistage:MilParams",
}


def params_class(stem: str) -> type[Params]:
    """The class of ``params/<stem>.yaml``."""
    import importlib

    module, name = PROFILES[stem].split(":")
    return getattr(importlib.import_module(f"spinelib.params.{module}"), name)


__all__ = ["PROFILES", "SAME", "Params", "ParamsError", "param", "params_class"]
