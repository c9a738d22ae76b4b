"""The DVC pipeline and data.dvc are consistent with each other and with params/."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_stages_read_the_data_root_parameter():
    stages = _load("dvc.yaml")["stages"]
    for name in ("explore", "crops"):
        assert "${data_root}" in stages[name]["deps"], name
        assert any("params/data.yaml" in (p if isinstance(p, str) else next(iter(p))) for p in stages[name]["params"])


def test_data_dvc_tracks_a_real_directory():
    (out,) = _load("data.dvc")["outs"]
    assert out["path"] == "data/raw"
    assert out["md5"].endswith(".dir") and len(out["md5"]) == 36
    assert out["nfiles"] > 1000 and out["size"] > 100_000_000


def test_data_dvc_pins_the_default_phantom_the_pipeline_writes():
    """As committed, data/raw is the default phantom: the same hash as the phantom stage's output in dvc.lock."""
    if _load("params/data.yaml")["data_root"] != "data/phantom":
        pytest.skip("the pipeline runs on other data; data.dvc tracks that download")
    lock = _load("dvc.lock")["stages"]["phantom"]
    (phantom_out,) = lock["outs"]
    assert lock["params"]["params/phantom.yaml"]["phantom"] == _load("params/phantom.yaml")["phantom"]
    (raw,) = _load("data.dvc")["outs"]
    assert raw["md5"] == phantom_out["md5"], "regenerate data/raw (README: Running on the real data) and dvc commit"


def _imported_modules(source: str) -> set[str]:
    """The ``spinelib`` modules a piece of Python source imports (absolute imports only, as the library uses)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spinelib"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)   # `from spinelib.x import y`
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("spinelib"))
    return found


def _module_file(module: str) -> Path | None:
    """The file of a spinelib module (package → its __init__.py); None for a name that is not a module."""
    path = ROOT.joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _files_used(sources: list[str]) -> set[Path]:
    """Every spinelib file that running ``sources`` imports, transitively, with the packages' __init__.py."""
    todo = set().union(*(_imported_modules(s) for s in sources))
    seen: set[Path] = set()
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            file = _module_file(".".join(parts[:i]))
            if file is not None and file not in seen:
                seen.add(file)
                todo |= _imported_modules(file.read_text())
    return seen


def test_every_stage_lists_the_library_files_its_notebook_imports():
    """A change to any spinelib file a notebook runs makes its stage stale: the deps cover the import closure."""
    import json

    for name, stage in _load("dvc.yaml")["stages"].items():
        notebook = next((d for d in stage["deps"] if str(d).endswith(".ipynb")), None)
        if notebook is None:
            continue
        cells = json.loads((ROOT / notebook).read_text())["cells"]
        code = ["\n".join(line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
                for c in cells if c["cell_type"] == "code"]
        deps = [ROOT / d for d in stage["deps"] if str(d).startswith("spinelib")]
        missing = sorted(str(f.relative_to(ROOT)) for f in _files_used(code)
                         if f.name != "__init__.py" or f.parent != ROOT / "spinelib"
                         if not any(f == d or d in f.parents for d in deps))
        assert not missing, f"stage {name}: {notebook} imports {missing}, which dvc.yaml does not list as deps"


def test_every_library_dependency_exists():
    """A module moved or removed leaves no stale path in dvc.yaml (DVC would stop on a missing dependency)."""
    for name, stage in _load("dvc.yaml")["stages"].items():
        stale = [d for d in stage["deps"] if str(d).startswith(("spinelib", "notebooks")) and not (ROOT / d).exists()]
        assert not stale, f"stage {name}: dvc.yaml lists {stale}, which do not exist"


def test_the_phantom_stage_runs_phantom_cli_and_lists_exactly_its_imports():
    """dvc.yaml's phantom stage: not spinelib/cli.py, and its deps are the import closure of its command."""
    stage = _load("dvc.yaml")["stages"]["phantom"]
    argv = shlex.split(stage["cmd"])
    assert argv[:3] == ["python", "-m", "spinelib.phantom_cli"]
    entry = ROOT / "spinelib" / "phantom_cli.py"
    # `python -m spinelib.phantom_cli` runs spinelib/__init__.py, then the module
    used = _files_used([entry.read_text()]) | {entry}
    used.discard(ROOT / "spinelib" / "__init__.py")     # as for the notebook stages: the version string only
    deps = [ROOT / d for d in stage["deps"] if str(d).startswith("spinelib")]
    missing = sorted(str(f.relative_to(ROOT)) for f in used if not any(f == d or d in f.parents for d in deps))
    unused = sorted(str(d.relative_to(ROOT)) for d in deps if not any(f == d or d in f.parents for f in used))
    assert not missing, f"the phantom stage imports {missing}, which dvc.yaml does not list as deps"
    assert not unused, f"the phantom stage lists {unused} as deps, which its command does not import"
