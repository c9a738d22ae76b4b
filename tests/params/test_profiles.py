"""Every YAML profile against its typed class: the class owns the defaults and the papers' values.

* ``params/<stem>.yaml`` (the default CPU profile) loads strictly and equals the class defaults;
* ``params/paper/<stem>.yaml`` equals the values the fields declare as the paper's;
* every field whose paper value differs from its default says why;
* the tiny profile (what the notebook tests run) loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spinelib.params import PROFILES, SAME, ParamsError, params_class

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "params" / "data.yaml"        # shared by notebooks 00 and 01 (the data root)
USES_DATA = {"explore", "crops"}


def files(stem: str, folder: Path) -> list[Path]:
    return ([DATA] if stem in USES_DATA else []) + [folder / f"{stem}.yaml"]


def test_every_params_file_has_a_class():
    stems = {p.stem for p in (ROOT / "params").glob("*.yaml")} - {"data"}
    assert stems == set(PROFILES)


@pytest.mark.parametrize("stem", sorted(PROFILES))
def test_default_profile_equals_the_class_defaults(stem):
    cls = params_class(stem)
    assert cls.load(*files(stem, ROOT / "params")) == cls(), f"params/{stem}.yaml and {cls.__name__} disagree"


@pytest.mark.parametrize("stem", sorted(PROFILES))
def test_paper_profile_equals_the_fields_paper_values(stem):
    cls = params_class(stem)
    paper_file = ROOT / "params" / "paper" / f"{stem}.yaml"
    if not paper_file.exists():
        assert all(paper is SAME for _, _, paper, _ in cls().rows()), f"{cls.__name__} declares paper values"
        return
    loaded = cls.load(*files(stem, ROOT / "params" / "paper"))
    assert loaded == cls.paper(), (
        f"params/paper/{stem}.yaml and the paper values of {cls.__name__} disagree: "
        f"{[(a, b) for a, b in zip(loaded.rows(), cls.paper().rows()) if a[1] != b[1]]}")


@pytest.mark.parametrize("stem", sorted(PROFILES))
def test_every_deviation_from_the_paper_says_why(stem):
    cls = params_class(stem)
    silent = [name for name, value, paper, why in cls().rows() if paper is not SAME and paper != value and not why]
    assert not silent, f"{cls.__name__}: fields whose paper value differs with no reason: {silent}"


@pytest.mark.parametrize("stem", sorted(PROFILES))
def test_tiny_profile_loads_and_the_yaml_rejects_an_unknown_key(stem, tmp_path):
    cls = params_class(stem)
    assert isinstance(cls.tiny(), cls)
    values = yaml.safe_load((ROOT / "params" / f"{stem}.yaml").read_text())
    values["not_a_parameter"] = 1
    bad = tmp_path / f"{stem}.yaml"
    bad.write_text(yaml.safe_dump(values))
    with pytest.raises(ParamsError, match="not_a_parameter"):
        cls.load(*files(stem, ROOT / "params")[:-1], bad)
