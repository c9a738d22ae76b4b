"""The packaging, environment.yml, params files and notebooks agree with each other."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_packaging_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    from_env = {r.strip() for r in pip_section if not r.startswith("-e")}
    assert from_env == set(project["dependencies"]), "environment.yml and pyproject.toml list different requirements"


def test_console_command_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["spinelib"] == "spinelib.cli:main"


def _parameters(notebook: Path) -> dict:
    book = nbformat.read(notebook, as_version=4)
    cells = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{notebook.name}: expected one cell tagged 'parameters'"
    names = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign):
            names[node.targets[0].id] = node
    return names


NOTEBOOK_PARAMS = {
    "00_data_exploration.ipynb": ["data.yaml", "explore.yaml"],
    "01_crop_extraction.ipynb": ["data.yaml", "crops.yaml"],
    "02_contrastive_pretraining.ipynb": ["contrastive.yaml"],
    "03_finetune_and_localise.ipynb": ["finetune.yaml"],
    "04_ranking_training.ipynb": ["ranking.yaml"],
    "05_threshold_fitting.ipynb": ["thresholds.yaml"],
    "06_evaluation_tables.ipynb": ["evaluation.yaml"],
    "07_score_ordered_figure.ipynb": ["score_figure.yaml"],
    "08_localisation.ipynb": ["localisation.yaml"],
    "09_mil_grading.ipynb": ["mil.yaml"],
}


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_PARAMS))
def test_parameters_cell_names_only_the_profile_files_and_the_next_cell_loads_them(notebook):
    """One style everywhere: ``params_files = []`` (papermill passes the files dvc.yaml names), then the notebook's
    class loads them strictly, once (:meth:`spinelib.params.Params.for_notebook`)."""
    from spinelib.params import PROFILES

    assert set(_parameters(ROOT / "notebooks" / notebook)) == {"params_files"}
    book = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    assert ast.literal_eval(code[first].source.split("=", 1)[1].split("#")[0].strip()) == []
    cls = PROFILES[NOTEBOOK_PARAMS[notebook][-1].removesuffix(".yaml")].split(":")[1]
    assert f"{cls}.for_notebook(params_files)" in code[first + 1].source, f"{notebook}: next cell must load {cls}"
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    command = next(s["cmd"] for s in stages.values() if f"notebooks/{notebook}" in s["cmd"])
    passed = "params_files: [" + ", ".join(f"params/{f}" for f in NOTEBOOK_PARAMS[notebook]) + "]"
    assert f'-y "{passed}"' in command, f"{notebook}: dvc.yaml must pass {passed}"


def test_every_notebook_is_a_dvc_stage_with_the_kernel():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    commands = " ".join(" ".join(s["cmd"]) if isinstance(s["cmd"], list) else s["cmd"] for s in stages.values())
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"papermill notebooks/{notebook.name}" in commands, notebook.name
        book = nbformat.read(notebook, as_version=4)
        assert book.metadata["kernelspec"]["name"] == "spinelib"
        assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), f"{notebook.name} has outputs"
