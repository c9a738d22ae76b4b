"""dvc.yaml's top-level `plots:` agree with the stage outputs and with what the notebooks write.

Each plot names a folder (one chart per CSV) under a stage's ``results/<NN>/plots`` output, declared with
``cache: false`` so the CSVs live in git and ``dvc plots diff`` compares commits and experiments. Its x/y
fields must be among the ``*_COLUMNS`` lists of the notebook cell that writes that folder; those cells pass
the lists to ``plot_data.write_tables``, which fails the notebook run (nbval, ``make test``) when a table
lacks one.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = {"simple", "linear", "confusion", "confusion_normalized", "scatter", "scatter_jitter", "smooth",
             "bar_horizontal", "bar_horizontal_sorted"}   # `dvc plots templates`


def _dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _plots() -> dict[str, dict]:
    out = {}
    for entry in _dvc().get("plots", []):
        (path, props), = entry.items()
        assert path not in out, f"plot {path} defined twice"
        out[path] = props or {}
    return out


def _plot_outs() -> dict[str, tuple[str, dict]]:
    """Every declared stage output named ``.../plots``: path → (stage, its options)."""
    found = {}
    for name, stage in _dvc()["stages"].items():
        for out in stage.get("outs", []):
            path, options = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            if Path(path).name == "plots":
                found[path] = (name, options or {})
    return found


def _fields(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _writer_columns(notebook: Path, folder: str) -> set[str] | None:
    """The ``*_COLUMNS`` lists of the code cells that write ``"plots" / "<folder>"``; None when no cell does."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    pattern = re.compile(r'"plots"\s*/\s*"' + re.escape(folder) + '"')
    writers = ["".join(c["source"]) for c in cells if pattern.search("".join(c["source"]))]
    if not writers:
        return None
    columns: set[str] = set()
    for source in writers:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_COLUMNS")
                                                    for t in node.targets):
                columns |= set(ast.literal_eval(node.value))
    return columns


def test_there_are_plots_and_plot_outputs():
    assert len(_plots()) >= 10
    assert {stage for stage, _ in _plot_outs().values()} == {
        "contrastive", "finetune", "ranking", "evaluation", "score_figure", "localisation", "mil"}


def test_plot_outputs_are_kept_in_git():
    for path, (stage, options) in _plot_outs().items():
        assert options.get("cache") is False, f"stage {stage}: {path} needs cache: false (plots diff reads git)"
        assert re.fullmatch(r"results/\d\d_[a-z_]+/plots", path), f"stage {stage}: {path} is not results/<NN>/plots"


@pytest.mark.parametrize("path", sorted(_plots()))
def test_each_plot_lies_in_a_plots_output_and_names_its_fields(path):
    props = _plots()[path]
    parents = [out for out in _plot_outs() if Path(out) in Path(path).parents]
    assert len(parents) == 1, f"plot {path} is not inside exactly one declared results/<NN>/plots output"
    assert props.get("template") in TEMPLATES, f"plot {path}: template {props.get('template')!r}"
    assert isinstance(props.get("x"), str) and props["x"], f"plot {path}: x must name one field"
    assert _fields(props.get("y")) and all(isinstance(f, str) for f in _fields(props["y"])), f"plot {path}: no y"
    assert props.get("title"), f"plot {path}: no title"
    if props["template"].startswith("confusion"):
        assert (props["x"], props["y"]) == ("actual", "predicted"), f"plot {path}: confusion takes actual/predicted"


@pytest.mark.parametrize("path", sorted(_plots()))
def test_plot_fields_are_columns_the_notebook_writes(path):
    props = _plots()[path]
    stage, _ = _plot_outs()[str(Path(path).parent)]
    notebook = next(d for d in _dvc()["stages"][stage]["deps"] if str(d).endswith(".ipynb"))
    columns = _writer_columns(ROOT / notebook, Path(path).name)
    assert columns is not None, f"plot {path}: no cell of {notebook} writes \"plots\" / \"{Path(path).name}\""
    missing = {props["x"], *_fields(props["y"])} - columns
    assert not missing, f"plot {path}: {sorted(missing)} not among the columns {notebook} writes ({sorted(columns)})"


def test_every_plot_folder_a_notebook_writes_is_declared():
    declared = set(_plots())
    for out, (stage, _) in _plot_outs().items():
        notebook = ROOT / next(d for d in _dvc()["stages"][stage]["deps"] if str(d).endswith(".ipynb"))
        source = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
        for folder in re.findall(r'"plots"\s*/\s*"([^"]+)"', source):
            assert f"{out}/{folder}" in declared, f"{notebook.name} writes {out}/{folder}, which dvc.yaml does not plot"


def test_the_checks_can_fail(tmp_path):
    """The column check finds a writer's lists, and misses a field no list names."""
    book = {"cells": [{"cell_type": "code", "source": ['COLS_COLUMNS = ["epoch", "auc"]\n',
                                                       'write(t, report / "plots" / "curves", COLS_COLUMNS)\n']}]}
    (tmp_path / "n.ipynb").write_text(json.dumps(book))
    assert _writer_columns(tmp_path / "n.ipynb", "curves") == {"epoch", "auc"}
    assert _writer_columns(tmp_path / "n.ipynb", "roc") is None


def test_plot_outputs_are_not_git_ignored():
    """cache: false keeps the CSVs out of the DVC cache, so git has to take them: .gitignore must not hide them."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in _plot_outs():
        probe = f"{path}/curves/probe.csv"   # need not exist
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=ROOT).returncode == 0
        assert not ignored, f"{path} is git-ignored: .gitignore needs `!/results/*/plots` after `/results/*/*`"
