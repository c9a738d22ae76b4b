"""The library's layers: a module imports only from its own layer or the layers below it (README, "Layout").

Lower layers never reach up, so the data readers run without torch models, the crop store without the studies,
and a study can be read top-down. Imports inside functions count too (they are still dependencies).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spinelib"

# Lowest first. A unit is a top-level module or sub-package of spinelib.
LAYERS = [
    ("foundation", {"constants", "progress", "parallel", "distributed"}),
    ("inputs", {"phantom", "data", "splits"}),
    ("crops", {"crops", "paths"}),
    ("learning", {"params", "tasks", "metrics", "bootstrap", "thresholds", "competition", "tta", "augment", "models",
                  "losses", "datasets", "train", "tables", "probe", "instrument", "provenance"}),
    ("figures", {"figures"}),
    ("studies and tools", {"studies", "grading", "converters", "examples", "publish", "cli", "phantom_cli"}),
]
LAYER_OF = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}


def unit_of(path: Path) -> str:
    """The top-level unit a file belongs to (``data`` for spinelib/data/rsna.py, ``train`` for spinelib/train.py)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_units(path: Path) -> set[str]:
    """The spinelib units a file imports (module level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "spinelib" else [f"spinelib.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("spinelib.")}
    return found


def test_every_unit_has_a_layer():
    units = {unit_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert units <= set(LAYER_OF), f"units without a layer (add them to LAYERS and the README): {units - set(LAYER_OF)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_reaches_a_higher_layer(path):
    unit = unit_of(path)
    if unit in ("__init__", "__main__"):
        return
    upward = {u for u in imported_units(path) - {unit} if LAYER_OF.get(u, -1) > LAYER_OF[unit]}
    assert not upward, (f"{path.relative_to(PACKAGE)} ({LAYERS[LAYER_OF[unit]][0]}) imports from a higher layer: "
                        + ", ".join(f"{u} ({LAYERS[LAYER_OF[u]][0]})" for u in sorted(upward)))
