"""Parameters of the data notebooks: 00 (data exploration) and 01 (crop extraction).

* :class:`ExploreParams`: ``params/data.yaml`` + ``params/explore.yaml`` (notebook 00);
* :class:`CropsParams`: ``params/data.yaml`` + ``params/crops.yaml`` (notebook 01). Its crop sizes become the
  :class:`~spinelib.crops.plan.CropConfig` the crop store records (:meth:`CropsParams.crop_config`).

Both notebooks read ``data_root`` from the shared ``params/data.yaml`` (dvc.yaml passes it first), so both
classes declare it as their first field. Defaults are the CPU profile (``params/*.yaml``), ``paper=`` the values
of ``params/paper/*.yaml`` where they differ, ``why`` the YAML's comment. ``TINY`` is what the notebook tests
run: the values the parameters cells held before they became typed, with empty paths (the notebook then
builds a tiny phantom and writes into temporary folders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from spinelib.crops.plan import CropConfig
from spinelib.params.base import Params, param

_DATA_ROOT_WHY = ("the one switch between the embedded phantom (data/phantom) and the real data "
                  "(data/raw: the RSNA 2024 download)")


# ---- notebook 00: data exploration -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExploreParams(Params):
    """Notebook 00 (params/data.yaml, params/explore.yaml): the dataset check and the cohort's figures."""

    # the notebook tests: a tiny phantom, a temporary output folder, one process
    TINY: ClassVar[dict[str, Any]] = {"data_root": "", "out_dir": "", "workers": 1}

    data_root: str = param("data/phantom", why=_DATA_ROOT_WHY)
    out_dir: str = param("results/00_explore")
    example_study: int | None = param(None, why="study drawn in the example-slices figure; "
                                                "null = the first with all three series")
    workers: int = param(2, why="processes for reading every DICOM once in the dataset check")


# ---- notebook 01: crop extraction --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CropsParams(Params):
    """Notebook 01 (params/data.yaml, params/crops.yaml): the crop store every later stage reads."""

    # the notebook tests: a tiny phantom, temporary folders, one process; crop sizes as the CPU profile
    TINY: ClassVar[dict[str, Any]] = {"data_root": "", "out_dir": "", "figures_dir": "", "workers": 1}

    data_root: str = param("data/phantom", why=_DATA_ROOT_WHY)
    out_dir: str = param("data/crops")
    figures_dir: str = param("results/01_crops")
    seed: int = param(0)
    split_unit: str = param("patient", why="patient (leak-free default) | disc (contrastive paper's protocol)")
    split_fractions: list[float] = param([0.7, 0.15, 0.15], paper=[0.8, 0.1, 0.1],
                                         why="CPU: ranking paper uses 0.8/0.1/0.1; 0.15 keeps several hundred "
                                             "discs per split on the phantom")
    roi_size: list[int] = param([96, 96], why="contrastive paper: 96 x 96 px around the coordinate, "
                                              "constant padding")
    volume_series: list[str] = param(["Sagittal T2/STIR", "Sagittal T1"],
                                     why="ranking code: T1 or T2 per disc in training, T2 at evaluation")
    volume_slices: int = param(12, why="ranking paper: 12 slices")
    volume_crop: list[int] = param([128, 256], why="ranking paper: 128 x 256 px field around the disc")
    volume_size: list[int] = param([64, 128], paper=[128, 256], why="CPU: stored at half resolution "
                                                                   "(paper: 128 x 256)")
    volume_plane: str = param("disc", why="ranking paper: disc-centred rotation and resampling; the plane "
                                          "perpendicular to the canal, from the neighbouring levels' canal points "
                                          "(\"image\": the series' own axes)")
    bag_slices: int = param(5, why="multi-stage paper: 5 slices around the annotated instance")
    bag_scale: float = param(0.5, paper=1.0, why="CPU: Table 1 boxes stored at half resolution (paper: 1.0)")
    # keyed by condition (data, not settings): left, right, up, down reach in px
    bag_ranges: dict[str, list[int]] = param({
        "spinal_canal_stenosis": [96, 32, 40, 40],
        "left_neural_foraminal_narrowing": [96, 64, 32, 32],
        "right_neural_foraminal_narrowing": [96, 64, 32, 32],
        "left_subarticular_stenosis": [48, 144, 96, 96],
        "right_subarticular_stenosis": [144, 48, 96, 96],
    }, why="multi-stage paper, Table 1: left, right, up, down (px)")
    normalise_percentiles: list[float] = param([1.0, 99.0], why="per-series intensity window before cropping")
    loc_size: list[int] = param([128, 128], paper=[256, 256],
                                why="CPU: contrastive paper's localiser input is 256 x 256")
    loc_slices: int = param(3, why="contrastive paper §4.5: three consecutive slices (2.5D)")
    workers: int = param(2, paper=8, why="CPU: the 2 cores of the project machine; paper profile 8")

    def crop_config(self) -> CropConfig:
        """The crop sizes as the :class:`CropConfig` the extractor takes and the store records (config.json).

        Lists become tuples (the config is frozen and recorded as is); ``roi_conditions`` keeps its default (every
        condition), which no profile changes.
        """
        return CropConfig(
            roi_size=tuple(self.roi_size), volume_series=tuple(self.volume_series),
            volume_slices=self.volume_slices, volume_crop=tuple(self.volume_crop),
            volume_size=tuple(self.volume_size), bag_slices=self.bag_slices, bag_scale=self.bag_scale,
            bag_ranges={condition: tuple(reach) for condition, reach in self.bag_ranges.items()},
            normalise=tuple(self.normalise_percentiles), loc_size=tuple(self.loc_size),
            loc_slices=self.loc_slices, volume_plane=self.volume_plane,
        )
