"""How browser_check.py gets its pages: a grading report, a notebook as HTML, the offline `dvc plots show` page.

The plots page uses ``tools/plots_template.html`` (given to ``dvc plots show --html-template``) with Vega, Vega-Lite
and vega-embed inlined from ``build/vega/`` (fetched once with ``npm pack``), so it draws without reaching a CDN.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEMPLATE = REPO / "tools" / "plots_template.html"
# The builds DVC's own page loads from jsdelivr (dvc_render.vega.SCRIPTS pins vega@5, vega-lite@5, vega-embed@6),
# as (npm spec, file inside the tarball, marker in tools/plots_template.html).
VEGA_JS = (
    ("vega@5", "package/build/vega.min.js", "/*VEGA_JS*/"),
    ("vega-lite@5", "package/build/vega-lite.min.js", "/*VEGA_LITE_JS*/"),
    ("vega-embed@6", "package/build/vega-embed.min.js", "/*VEGA_EMBED_JS*/"),
)

# Run in the page after load: visible text length, images (and the broken ones), charts drawn by Vega.

def run(cmd: list[str], cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command, raising with its stderr tail when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")
    return proc


def report_page(study: Path, out: Path) -> Path:
    """Grade one study with ``spinelib grade --report`` and return its HTML report page."""
    report_dir = out / "report"
    run([str(BIN / "spinelib"), "grade", str(study), "--out", str(out / "grades.csv"), "--report", str(report_dir)])
    page = report_dir / f"{study.name}.html"
    if not page.exists():
        raise FileNotFoundError(f"spinelib grade wrote no report page {page}")
    return page


def notebook_page(notebook: Path, out: Path) -> Path:
    """Convert an executed notebook to HTML with nbconvert (as a published page would be) and return the page."""
    if not notebook.exists():
        raise FileNotFoundError(f"notebook {notebook} does not exist")
    html_dir = out / "notebook_html"
    run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--output-dir", str(html_dir), str(notebook)])
    return html_dir / f"{notebook.stem}.html"


def fetch_vega(dest: Path) -> dict[str, Path]:
    """Vega, Vega-Lite and vega-embed builds in ``dest`` (an ignored folder), fetched with ``npm pack`` if missing.

    Returns marker -> local .js file. Raises RuntimeError when npm is absent or the registry cannot be reached.
    """
    files = {marker: dest / Path(member).name for _, member, marker in VEGA_JS}
    if all(f.exists() for f in files.values()):
        return files
    if shutil.which("npm") is None:
        raise RuntimeError("npm not found (needed once to fetch vega/vega-lite/vega-embed into build/vega/)")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = run(["npm", "pack", "--silent", *[spec for spec, _, _ in VEGA_JS]], cwd=Path(tmp), timeout=180)
        tarballs = proc.stdout.split()
        for (spec, member, marker), tarball in zip(VEGA_JS, tarballs):
            with tarfile.open(Path(tmp) / tarball) as tar:
                src = tar.extractfile(member)
                if src is None:
                    raise RuntimeError(f"{tarball} ({spec}) has no {member}")
                files[marker].write_bytes(src.read())
    return files


def build_plots_template(template: Path, js: dict[str, Path], out: Path) -> Path:
    """Write ``template`` with each marker replaced by the JS file's content (inline, so the page works offline)."""
    html = template.read_text()
    for marker, path in js.items():
        if marker not in html:
            raise ValueError(f"{template} lacks the marker {marker}")
        code = path.read_text(encoding="utf-8")
        if "</script" in code.lower():  # would end the inline <script> early
            raise ValueError(f"{path} contains '</script', cannot inline it")
        html = html.replace(marker, code)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def plots_page(template: Path, out: Path) -> Path | str:
    """``dvc plots show`` with the offline template; the page, or a reason string when there is nothing to show."""
    dvc = str(BIN / "dvc")
    shown = subprocess.run([dvc, "plots", "show", "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    try:
        data = json.loads(shown.stdout or "{}")
    except json.JSONDecodeError:
        data = {}
    # data: plot id -> list of rendered charts; an id whose files are missing maps to [] (and an error).
    n_charts = sum(len(v) for v in data.get("data", {}).values() if isinstance(v, list))
    if n_charts == 0:
        return (f"`dvc plots show --json` has no plot data in this workspace ({len(data.get('data', {}))} plot(s)"
                f" declared, {len(data.get('errors', []))} not loadable: the notebooks have not written"
                " results/*/plots/ yet; run make repro)")
    plots_dir = out / "dvc_plots"
    run([dvc, "plots", "show", "--html-template", str(template), "-o", str(plots_dir)], timeout=300)
    return plots_dir / "index.html"


def demo_plots_page(template: Path, out: Path) -> Path:
    """``dvc plots show`` of a demo CSV, in a scratch DVC repo outside the workspace, with the template.

    Checks the offline template itself where the workspace has no plot data yet; the page goes to out/plots_demo/.
    """
    rows = "\n".join(f"{e},{1.0 / (e + 1):.3f}" for e in range(10))
    page_dir = out / "plots_demo"
    shutil.rmtree(page_dir, ignore_errors=True)
    dvc = str(BIN / "dvc")
    with tempfile.TemporaryDirectory() as tmp:  # not under the repository: no nested DVC repo left in it
        (Path(tmp) / "curves.csv").write_text("epoch,train_loss\n" + rows + "\n")
        run([dvc, "init", "--no-scm", "--quiet"], cwd=Path(tmp))
        run([dvc, "plots", "show", "curves.csv", "-x", "epoch", "-y", "train_loss", "--title", "demo: training loss",
             "--html-template", str(template), "-o", str(page_dir)], cwd=Path(tmp))
    return page_dir / "index.html"


def default_notebook() -> Path:
    """First published notebook (docs/notebooks/*.ipynb); before `make publish`, the executed 09 MIL notebook."""
    published = sorted((REPO / "docs" / "notebooks").glob("*.ipynb"))
    return published[0] if published else REPO / "results" / "09_mil" / "09_mil_grading.ipynb"


def default_study() -> Path | None:
    """First study of the phantom's test images, or None when the phantom is absent."""
    root = REPO / "data" / "phantom" / "test_images"
    studies = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return studies[0] if studies else None
