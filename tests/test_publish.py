"""Published notebooks: small, in study order, and not older than the committed run (dvc.lock)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spinelib import publish

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "docs" / "notebooks"


def _png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 30, 30, 255)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _notebook(png: str) -> dict:
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# 01 · A title\n", "why"]},
                      {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": ["x"],
                       "outputs": [{"output_type": "stream", "name": "stderr", "text": ["epoch 1/3 ...\r"]},
                                   {"output_type": "stream", "name": "stdout", "text": ["kept\n"]},
                                   {"output_type": "display_data", "metadata": {"image/png": {"width": 2000}},
                                    "data": {"image/png": png, "text/plain": ["<Figure>"]}}]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_publish_shrinks_figures_drops_stderr_and_indexes_in_stage_order(tmp_path):
    (tmp_path / "results" / "01").mkdir(parents=True)
    (tmp_path / "results" / "01" / "01_a.ipynb").write_text(json.dumps(_notebook(_png(2000, 1000))))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": {"cmd": "x", "outs": [
        "results/01/01_a.ipynb", {"results/01/table.md": {"cache": False}}]}}}))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"a": {"cmd": "x", "outs": [
        {"path": "results/01/01_a.ipynb", "md5": "abc", "size": 1}]}}}))
    (copy,) = publish.publish(tmp_path, tmp_path / "docs")
    outputs = json.loads(copy.read_text())["cells"][1]["outputs"]
    assert [o.get("name") for o in outputs] == ["stdout", None]                  # stderr noise gone
    image = Image.open(io.BytesIO(base64.b64decode(outputs[1]["data"]["image/png"])))
    assert image.width == publish.MAX_WIDTH and image.height == publish.MAX_WIDTH // 2
    (entry,) = json.loads((tmp_path / "docs" / "manifest.json").read_text())
    assert entry["locked_md5"] == "abc" and entry["title"] == "01 · A title"
    assert "[01 · A title](01_a.ipynb)" in (tmp_path / "docs" / "index.md").read_text()


def test_publish_names_missing_notebooks(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": {"cmd": "x", "outs": ["r/a.ipynb"]}}}))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {}}))
    with pytest.raises(FileNotFoundError, match="r/a.ipynb"):
        publish.publish(tmp_path, tmp_path / "docs")


def test_committed_copies_match_the_committed_run():
    """docs/notebooks holds every stage's executed notebook, each under 2 MB, published from the run in dvc.lock."""
    manifest = json.loads((PUBLISHED / "manifest.json").read_text())
    locked = publish.locked_md5(ROOT / "dvc.lock")
    sources = [str(p) for p in publish.executed_notebooks(ROOT / "dvc.yaml")]
    assert [e["source"] for e in manifest] == sources, "run `make publish` after `make repro`"
    for entry in manifest:
        assert entry["md5"] == locked[entry["source"]], f"{entry['notebook']} is stale: run `make publish`"
        assert (PUBLISHED / entry["notebook"]).stat().st_size < publish.MAX_BYTES


def test_a_noise_like_figure_is_published_as_the_smaller_jpeg():
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(out, format="PNG")
    mime, data = publish.shrink_image(base64.b64encode(out.getvalue()).decode())
    assert mime == "image/jpeg" and len(base64.b64decode(data)) < len(out.getvalue())
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (400, 300)   # narrower than the limit: kept
