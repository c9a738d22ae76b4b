"""The ranking study's continuous severity of each disc of one study, for the grading report.

Each level's disc volume is cut from the Sagittal T2/STIR series at Stage 1's spinal canal point exactly as
notebook 01 cuts the training volumes (12 slices, the ranking paper's 128 × 256 px field turned into the disc plane
estimated from the neighbouring levels' predicted canal points, the stored size, the series' percentile window:
:mod:`spinelib.crops.extract`), then reduced to the central field and input size the
ranking models read (``params/ranking.yaml``, as :class:`spinelib.datasets.discs.VolumeDataset` does), and scored by
one ranking run over its test-time views: per task, the mean score over the views and their spread (std).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

# the training volumes' own cut (the crop stage's, used here so that both cuts are one code)
from spinelib.crops.extract import disc_volume
from spinelib.crops.geometry import to_uint8
from spinelib.crops.plan import CropConfig, with_neighbours
from spinelib.data.dicom import Volume, intensity_window
from spinelib.datasets.discs import centre_field
from spinelib.models.ranking import OrdinalModel
from spinelib.params.data import CropsParams
from spinelib.params.ranking import RankingParams
from spinelib.studies.ranking import build_model, plan_runs, task_outputs
from spinelib.tasks import TaskSet
from spinelib.train import load_checkpoint
from spinelib.tta import View, apply_view, tta_views

DEFAULT_RUN = "spineranknet_finetuned"   # the paper's method with its encoder fine-tuned, seed 0


@dataclass
class DiscScorer:
    """One trained ranking run and what it needs to score a study's discs (:meth:`load` builds it)."""

    model: OrdinalModel
    tasks: TaskSet
    views: list[View]
    crops: CropConfig
    field: tuple[int, int] | None
    input_size: tuple[int, int]
    run: str

    @classmethod
    def load(cls, ranking_dir: Path | str, params_dir: Path | str = "params", run: str = DEFAULT_RUN) -> "DiscScorer":
        """The run ``run`` of ``ranking_dir`` (notebook 04), with the crop and ranking settings of ``params_dir``."""
        ranking_dir, params_dir = Path(ranking_dir), Path(params_dir)
        ranking = RankingParams.load(params_dir / "ranking.yaml")          # strict: a stale key fails here
        crops = CropsParams.load(params_dir / "crops.yaml").crop_config()
        tasks = TaskSet.from_params(ranking.volumes.tasks)
        specs = {spec.name: spec for spec in plan_runs(ranking.runs, ranking.train.seeds)}
        if run not in specs:
            raise KeyError(f"no ranking run {run!r} in {params_dir / 'ranking.yaml'}; runs: {sorted(specs)}")
        checkpoint = ranking_dir / run / "best.pt"
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{checkpoint}: no ranking checkpoint; run notebook 04 (`dvc repro ranking`)")
        model = build_model(ranking.train, tasks.num_grades, specs[run], ranking_dir)
        load_checkpoint(checkpoint, model)
        tta = ranking.tta
        field = tuple(ranking.volumes.field) if ranking.volumes.field else None
        return cls(model.eval(), tasks, tta_views(tta.translate, tta.slice_shift, tta.flips), crops,
                   field, tuple(ranking.volumes.input_size), run)

    def inputs(self, volume: Volume, canal: pd.DataFrame) -> tuple[torch.Tensor, list[str], list[str]]:
        """Model inputs (L, 1, D, H, W) in [0, 1] of the discs at the canal points (rows: level, instance_number,
        x, y), the levels cut, and the levels skipped with why (a point outside its image cannot be cut)."""
        window = intensity_window(volume.pixels, *self.crops.normalise)
        stacks, levels, skipped = [], [], []
        # one anchor row per level, with its neighbouring levels' points (the disc plane), as the crop plan makes
        anchors = with_neighbours(pd.DataFrame({
            "study_id": 0, "level": canal["level"].to_numpy(), "anchor_series_id": 0,
            "anchor_instance": canal["instance_number"].astype(int).to_numpy(),
            "anchor_x": canal["x"].astype(float).to_numpy(), "anchor_y": canal["y"].astype(float).to_numpy()}))
        for point, row in zip(canal.itertuples(), anchors.to_dict("records")):
            try:
                stack, _ = disc_volume(volume, window, volume, row, self.crops)
            except (KeyError, ValueError) as err:               # an instance the series lacks, a point off the image
                skipped.append(f"{point.level} ({err})")
                continue
            stacks.append(to_uint8(stack))                      # stored as uint8, as the crop store holds it
            levels.append(point.level)
        if not stacks:
            return torch.zeros((0, 1, self.crops.volume_slices, *self.input_size)), levels, skipped
        x = torch.from_numpy(np.stack(stacks))                  # (L, D, H0, W0) uint8
        if self.field is not None:
            x = centre_field(x, self.field)
        if tuple(x.shape[-2:]) != self.input_size:
            x = torch.nn.functional.interpolate(x.float(), size=self.input_size, mode="area").round_().to(torch.uint8)
        return x.float().div_(255.0).unsqueeze(1), levels, skipped

    @torch.no_grad()
    def score(self, volume: Volume, canal: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """Per level and task: ``score`` (mean over the views) and ``spread`` (their std), one run, CPU; and the
        levels that could not be cut, with why.

        ``canal``: the study's spinal canal points on ``volume``'s series (level, instance_number, x, y). A flipped
        view mirrors the patient, so its left and right task outputs are swapped back before averaging.
        """
        x, levels, skipped = self.inputs(volume, canal)
        if not levels:
            return pd.DataFrame(columns=["level", "task", "score", "spread"]), skipped
        mirror = torch.as_tensor(self.tasks.mirror)
        m = max(self.tasks.num_grades) - 1
        scores = []
        for view in self.views:
            z = self.model.encoder(apply_view(x, view)).float()
            score, _ = task_outputs(self.model.heads(z), self.model.objective, m)   # (L, T)
            scores.append(score[:, mirror] if view.flip else score)
        stacked = torch.stack(scores).numpy()                                     # (V, L, T)
        mean, spread = stacked.mean(axis=0), stacked.std(axis=0)
        table = pd.DataFrame([{"level": level, "task": task, "score": float(mean[i, t]), "spread": float(spread[i, t])}
                              for i, level in enumerate(levels) for t, task in enumerate(self.tasks.names)])
        return table, skipped
