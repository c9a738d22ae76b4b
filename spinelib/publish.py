"""The executed notebooks of a run, published for readers who will not run anything (``make publish``).

``dvc repro`` leaves each executed notebook, with its outputs, in its stage's results folder (DVC-cached, so not
in git). :func:`publish` copies them, in study order, to ``docs/notebooks/``: figures are shrunk (at most
``max_width`` px wide, as a 256-colour PNG or, where smaller, a JPEG: MRI montages are noise-like and compress poorly
as PNG) so that every copy stays small (under ``max_bytes`` at most), terminal noise on stderr is
dropped, and ``index.md`` links them with their titles. ``manifest.json`` records the md5 that ``dvc.lock`` holds
for each executed notebook, so a test can tell when the published copies are older than the committed run.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import yaml
from PIL import Image

MAX_BYTES = 1_000_000    # largest published notebook: GitHub renders bigger ones slowly or not at all
MAX_WIDTH = 900          # px; wider than the rendered notebook column gains nothing


def executed_notebooks(dvc_yaml: Path) -> list[Path]:
    """The executed notebooks the pipeline writes (one ``.ipynb`` out per stage), in the order of ``dvc.yaml``."""
    stages = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    found = []
    for stage in stages.values():
        for out in stage.get("outs", []):
            # An out is a plain path, or a one-key mapping {path: {cache: false, ...}} when it carries options.
            path = out if isinstance(out, str) else next(iter(out))
            if path.endswith(".ipynb"):
                found.append(Path(path))
    return found


def locked_md5(dvc_lock: Path) -> dict[str, str]:
    """md5 of every output file that ``dvc.lock`` records, by path."""
    stages = yaml.safe_load(Path(dvc_lock).read_text())["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", []) if "md5" in out}


def shrink_image(data: str, max_width: int = MAX_WIDTH) -> tuple[str, str]:
    """A base64 PNG resized to at most ``max_width`` px wide: (mime type, base64) of the smaller of a 256-colour PNG
    and a JPEG (quality 85). Line plots stay PNG (flat colours); image montages become JPEG."""
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    if image.mode in ("RGBA", "LA", "P"):
        # flatten transparency on white, as the notebook page shows it
        background = Image.new("RGB", image.size, "white")
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        image = background
    image = image.convert("RGB")
    # Only ever shrink (keeping the aspect ratio); LANCZOS keeps thin plot lines and text legible.
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    # Encode both ways and keep the smaller: deciding by content would need a heuristic, and this is cheap.
    png, jpeg = io.BytesIO(), io.BytesIO()
    image.quantize(256).save(png, format="PNG", optimize=True)
    image.save(jpeg, format="JPEG", quality=85, optimize=True)
    mime, best = min((("image/png", png.getvalue()), ("image/jpeg", jpeg.getvalue())), key=lambda pair: len(pair[1]))
    return mime, base64.b64encode(best).decode("ascii")


def clean_notebook(notebook: dict, max_width: int = MAX_WIDTH) -> dict:
    """A copy of an executed notebook for reading: figures shrunk, stderr streams (progress, warnings) dropped."""
    notebook = json.loads(json.dumps(notebook))      # a deep copy: the caller's notebook is left untouched
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream" and output["name"] == "stderr":
                continue
            data = output.get("data", {})
            if "image/png" in data:
                # nbformat allows a string or a list of line strings; the mime key changes when JPEG wins.
                png = data.pop("image/png")
                mime, encoded = shrink_image("".join(png) if isinstance(png, list) else png, max_width)
                data[mime] = encoded
                output.get("metadata", {}).pop("image/png", None)   # the original size no longer applies
            outputs.append(output)
        cell["outputs"] = outputs
    return notebook


def title(notebook: dict) -> str:
    """The first markdown heading of a notebook (its title), without the leading #."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def publish(root: Path, out_dir: Path, max_bytes: int = MAX_BYTES, max_width: int = MAX_WIDTH) -> list[Path]:
    """Copy the run's executed notebooks to ``out_dir`` with ``index.md`` and ``manifest.json``; returns the copies.

    Raises FileNotFoundError naming the notebooks that are missing (run ``make repro`` first) and ValueError when
    a copy is still over ``max_bytes`` after shrinking its figures.
    """
    # ---- find the executed notebooks, refusing to publish a partial set ----
    root, out_dir = Path(root), Path(out_dir)
    sources = executed_notebooks(root / "dvc.yaml")
    missing = [str(s) for s in sources if not (root / s).is_file()]
    if missing:
        raise FileNotFoundError(f"executed notebooks missing (run `make repro` first): {missing}")
    md5 = locked_md5(root / "dvc.lock")
    out_dir.mkdir(parents=True, exist_ok=True)
    # ---- clean and copy each notebook, checking its size ----
    written, entries = [], []
    for source in sources:
        notebook = clean_notebook(json.loads((root / source).read_text()), max_width)
        target = out_dir / source.name
        text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        if len(text.encode()) > max_bytes:
            raise ValueError(f"{target}: {len(text.encode()) / 1e6:.1f} MB after shrinking its figures "
                             f"(limit {max_bytes / 1e6:.1f} MB)")
        target.write_text(text)
        written.append(target)
        # md5 of the executed source (not of the cleaned copy), comparable with what dvc.lock records for it.
        actual = hashlib.md5((root / source).read_bytes()).hexdigest()
        entries.append({"notebook": target.name, "source": str(source), "title": title(notebook),
                        "md5": actual, "locked_md5": md5.get(str(source))})
    # ---- manifest (for the staleness test) and index page ----
    (out_dir / "manifest.json").write_text(json.dumps(entries, indent=1) + "\n")
    lines = ["# The study's executed notebooks", "",
             "The default run on the embedded phantom (`make repro`), with its outputs; refreshed by `make publish`.",
             "Figures are shrunk for the web; the full-size figures are in each stage's `results/<stage>/figures/`.",
             ""]
    lines += [f"{i}. [{e['title'] or e['notebook']}]({e['notebook']})" for i, e in enumerate(entries)]
    (out_dir / "index.md").write_text("\n".join(lines) + "\n")
    return written


def main() -> int:
    """``python -m spinelib.publish``: publish this checkout's executed notebooks to docs/notebooks/."""
    import sys

    root = Path.cwd()
    try:
        written = publish(root, root / "docs" / "notebooks")
    except (FileNotFoundError, ValueError) as err:
        print(f"cannot publish: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"{path.relative_to(root)}: {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
