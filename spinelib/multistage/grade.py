"""Grade a study nobody annotated: Stage 1 (localise) then Stage 2 (MIL), rows in the submission format.

``Grader`` loads the checkpoints the pipeline wrote (``models/localisation``,
``models/mil``); ``Grader.grade(study_dir)`` reads each series once, localises
every (condition, level) its series allow, cuts the Table 1 bag at each
predicted point, and returns 25 rows ``<study_id>_<condition>_<level>`` with
``normal_mild, moderate, severe`` summing to 1. A (condition, level) that
cannot be localised or graded (series type missing, unreadable, point outside
the image) gets the training prior, and the log says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spinelib.competition import PROBABILITY_COLUMNS, row_ids
from spinelib.constants import CONDITION_SERIES, CONDITIONS
from spinelib.crops.plan import BAG_KIND
from spinelib.multistage.bags import BagConfig, cut_bag, source_region
from spinelib.multistage.inputs import read_study, study_series
from spinelib.multistage.localisation import Localisers, localise_study
from spinelib.multistage.severity import load_graders, predict_bags

log = logging.getLogger(__name__)


@dataclass
class Grader:
    """Stage 1 and Stage 2 models, the bag geometry and the grade prior used for rows that cannot be graded."""

    localisers: Localisers
    graders: dict[str, list[torch.nn.Module]]
    bags: BagConfig
    prior: pd.DataFrame
    messages: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, localisation_dir: Path | str, mil_dir: Path | str) -> "Grader":
        graders, bags, prior = load_graders(Path(mil_dir))
        return cls(Localisers.load(Path(localisation_dir)), graders, bags, prior)

    def _note(self, study_id: int, text: str) -> None:
        message = f"study {study_id}: {text}"
        self.messages.append(message)
        log.info(message)

    def grade(self, study_dir: Path | str, descriptions: pd.DataFrame | None = None) -> pd.DataFrame:
        """25 submission rows of one study folder (``<images>/<study_id>/<series_id>/*.dcm``)."""
        study_dir = Path(study_dir)
        study_id = int(study_dir.name)
        config = self.localisers.config
        series = study_series(study_dir, descriptions)
        images, volumes, problems = read_study(study_dir, series, config["stack_depth"], config["stack_size"],
                                               config["slice_size"], keep_volumes=True)
        for problem in problems:
            self._note(study_id, problem)
        points = localise_study(images, self.localisers) if images else pd.DataFrame(columns=["condition", "level"])
        graded = self._grade_points(study_id, points, volumes)
        rows = pd.DataFrame({"row_id": row_ids(study_id)})
        prior = self.prior.assign(row_id=str(study_id) + "_" + self.prior["condition"] + "_" + self.prior["level"])
        out = rows.merge(graded, on="row_id", how="left")
        out[list(PROBABILITY_COLUMNS)] = out[list(PROBABILITY_COLUMNS)].astype(np.float64)
        missing = out["normal_mild"].isna()
        have = set(series["series_description"])
        for row_id in out.loc[missing, "row_id"]:
            condition = next(c for c in CONDITIONS if row_id.startswith(f"{study_id}_{c}_"))
            need = CONDITION_SERIES[condition]
            reason = f"no {need} series" if need not in have else "not localised or not graded"
            self._note(study_id, f"{row_id[len(str(study_id)) + 1:]} from the prior ({reason})")
        fill = out[["row_id"]].merge(prior, on="row_id", how="left")
        out.loc[missing, list(PROBABILITY_COLUMNS)] = fill.loc[missing, list(PROBABILITY_COLUMNS)].to_numpy()
        proba = out[list(PROBABILITY_COLUMNS)].to_numpy(float)
        out[list(PROBABILITY_COLUMNS)] = proba / proba.sum(axis=1, keepdims=True)
        return out

    def _grade_points(self, study_id: int, points: pd.DataFrame, volumes: dict) -> pd.DataFrame:
        """Probabilities of every localised point whose bag could be cut (row_id + the three columns)."""
        cfg, rows = self.bags, []
        for kind in sorted(set(BAG_KIND.values())):
            at = points[points["condition"].map(BAG_KIND) == kind]
            if at.empty or kind not in self.graders:
                continue
            bags, ids = [], []
            for p in at.itertuples():
                region = source_region(volumes[p.series_id].pixels, int(p.k), p.x, p.y, p.condition, cfg)
                bag = cut_bag(region, 0, 0, 0, cfg.bag_slices, cfg.max_shift, cfg.margin_px(p.condition))
                bags.append(bag.astype(np.float32) / 255.0)
                ids.append(f"{study_id}_{p.condition}_{p.level}")
            proba, _ = predict_bags(self.graders[kind], torch.from_numpy(np.stack(bags))[:, :, None])
            rows.append(pd.DataFrame(proba.astype(np.float64), columns=list(PROBABILITY_COLUMNS)).assign(row_id=ids))
        columns = ["row_id", *PROBABILITY_COLUMNS]
        return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def grade_studies(study_dirs: list[Path], localisation_dir: Path, mil_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Submission rows of several study folders, and the log of rows that came from the prior."""
    grader = Grader.load(localisation_dir, mil_dir)
    with torch.inference_mode():
        frames = [grader.grade(folder) for folder in study_dirs]
    return pd.concat(frames, ignore_index=True), grader.messages

