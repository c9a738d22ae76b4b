"""spinelib.params.base: strict loading, nesting, defaults, the paper values and the tiny profile."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass

import pytest
import yaml

from spinelib.params import SAME, Params, ParamsError, param


@dataclass(frozen=True)
class Loss(Params):
    scale: float = param(10.0, why="paper")
    margin: float = param(0.5, paper=1.0, why="CPU: a smaller margin for the shorter schedule")


@dataclass(frozen=True)
class Study(Params):
    TINY = {"epochs": 1, "loss": {"scale": 2.0}, "out_dir": ""}

    out_dir: str = param("models/study")
    epochs: int = param(3, paper=14, why="CPU: 14 epochs do not fit the budget")
    ranges: dict[str, list[int]] = param({"canal": [96, 32]})
    loss: Loss = param(Loss)
    checkpoint: str | None = param(None)


def test_defaults_paper_and_tiny_profiles():
    assert Study().epochs == 3 and Study().loss == Loss()
    assert Study.paper().epochs == 14 and Study.paper().loss.margin == 1.0 and Study.paper().loss.scale == 10.0
    tiny = Study.tiny()
    assert (tiny.epochs, tiny.loss.scale, tiny.loss.margin, tiny.out_dir) == (1, 2.0, 0.5, "")


def test_instances_are_frozen_and_do_not_share_mutable_defaults():
    first, second = Study(), Study()
    with pytest.raises(FrozenInstanceError):
        first.epochs = 5
    first.ranges["canal"].append(1)
    assert second.ranges == {"canal": [96, 32]}


def test_unknown_key_fails_with_its_path_and_the_nearest_name(tmp_path):
    profile = tmp_path / "study.yaml"
    profile.write_text("epochs: 2\nloss:\n  sclae: 3.0\n")
    with pytest.raises(ParamsError, match=r"study\.yaml: unknown parameter loss\.sclae \(did you mean 'scale'\?\)"):
        Study.load(profile)
    with pytest.raises(ParamsError, match="epochz"):
        Study.from_dict({**Study().to_dict(), "epochz": 1})


def test_missing_and_mistyped_keys_fail_by_name():
    values = Study().to_dict()
    del values["epochs"], values["loss"]["margin"]
    with pytest.raises(ParamsError, match=r"missing parameter\(s\) epochs"):
        Study.from_dict(values)
    with pytest.raises(ParamsError, match=r"Study\.loss: missing parameter\(s\) Study\.loss\.margin|loss\.margin"):
        Study.from_dict({**values, "epochs": 1})
    with pytest.raises(ParamsError, match=r"Study\.epochs: expected an integer, got 'three'"):
        Study.load(overrides={"epochs": "three"})
    with pytest.raises(ParamsError, match="expected an integer"):
        Study.load(overrides={"epochs": True})  # a bool is not an integer here
    assert Study.load(overrides={"loss": {"scale": 3}}).loss.scale == 3  # an int passes where a float is declared


def test_files_override_in_order_and_sections_merge_key_by_key(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("epochs: 5\nloss: {margin: 2.0}\nranges: {canal: [1, 2], foramen: [3, 4]}\n")
    second.write_text("epochs: 7\nranges: {foramen: [5, 6]}\n")
    loaded = Study.load(first, second)
    assert loaded.epochs == 7 and loaded.loss == Loss(scale=10.0, margin=2.0)
    assert loaded.ranges == {"foramen": [5, 6]}  # a data mapping is replaced whole, not merged


def test_replace_is_checked_and_accepts_sections():
    changed = Study().replace(epochs=1, loss={"margin": 0.25})
    assert changed.epochs == 1 and changed.loss == Loss(scale=10.0, margin=0.25)
    assert Study().replace(loss=Loss(scale=1.0)).loss.scale == 1.0
    with pytest.raises(ParamsError, match="did you mean 'epochs'"):
        Study().replace(epoch=1)


def test_to_dict_round_trips_through_yaml():
    study = Study.paper()
    assert Study.from_dict(yaml.safe_load(yaml.safe_dump(study.to_dict()))) == study


def test_rows_and_table_show_paper_values_and_reasons():
    rows = {name: (value, paper, why) for name, value, paper, why in Study().rows()}
    assert rows["epochs"] == (3, 14, "CPU: 14 epochs do not fit the budget")
    assert rows["loss.scale"][1] is SAME
    table = Study()._repr_markdown_()
    assert "| `loss.margin` | `0.5` | `1.0` | CPU: a smaller margin for the shorter schedule |" in table


def test_for_notebook_loads_files_or_the_tiny_profile(tmp_path):
    profile = tmp_path / "study.yaml"
    profile.write_text("epochs: 9\n")
    assert Study.for_notebook([]) == Study.tiny()
    assert Study.for_notebook([str(profile)]).epochs == 9
