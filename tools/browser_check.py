"""Render the study's reader-facing pages in headless Debian Chromium and fail on an empty page or a missing image.

Pages (issue 14, part 5):

1. the grading report: ``spinelib grade <study> --report DIR`` then ``DIR/<study>.html`` (images expected);
2. a published notebook: ``jupyter nbconvert --to html`` of an executed notebook (images expected);
3. the ``dvc plots show`` page, built with ``tools/plots_template.html`` so that Vega, Vega-Lite and vega-embed are
   inlined from a local copy (``npm pack`` into ``build/vega/``) instead of loaded from a CDN (SVG/canvas expected);
4. optionally (``--lab``) JupyterLab opening ``09_mil_grading.ipynb`` with the ``Python (spinelib)`` kernel.

A page fails when ``document.body`` has no visible text, when any ``<img>`` has ``naturalWidth == 0`` (missing or
broken image), or when it has no image (or no chart) where one is expected. One line per page; exit status 1 on any
FAIL. Selenium drives ``/usr/bin/chromedriver`` directly (Selenium Manager never downloads anything).

    .venv/bin/python tools/browser_check.py [--notebook NB] [--study DIR] [--out build/browser_check] [--lab]
    .venv/bin/python tools/browser_check.py --page a.html --page b.html [--expect-images]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Run as a script, tools/ is on sys.path and its sibling module imports plainly.
from page_builders import (BIN, REPO, TEMPLATE, build_plots_template, default_notebook, default_study,
                           demo_plots_page, fetch_vega, notebook_page, plots_page, report_page)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
KERNEL_DISPLAY_NAME = "Python (spinelib)"

# Run in the page after load: visible text length, images (and the broken ones), charts drawn by Vega.
PAGE_PROBE_JS = """
const imgs = Array.from(document.images);
return {
  ready: document.readyState,
  text: document.body ? document.body.innerText.trim().length : 0,
  images: imgs.length,
  pending: imgs.filter(i => !i.complete).length,
  broken: imgs.filter(i => i.complete && i.naturalWidth === 0).map(i => (i.getAttribute('src') || '').slice(0, 80)),
  // Vega draws into svg.marks / canvas.marks; a chart counts only when it has a size (an empty spec draws 0x0).
  charts: Array.from(document.querySelectorAll('svg.marks, canvas.marks'))
    .filter(c => c.getBoundingClientRect().width > 0 && c.getBoundingClientRect().height > 0).length,
  // innerText leaves out SVG <text>; add the charts' titles and axis labels so a page of SVG charts is not 'empty'.
  svgText: Array.from(document.querySelectorAll('svg text')).map(t => t.textContent.trim()).join('').length,
  height: document.documentElement.scrollHeight,
};
"""


@dataclass
class PageResult:
    """Outcome of one rendered page."""

    name: str
    ok: bool
    images: int = 0
    text_chars: int = 0
    charts: int = 0
    reason: str = ""
    skipped: bool = False

    def line(self) -> str:
        """One line for the terminal: OK/FAIL/SKIP, images, text size, why."""
        if self.skipped:
            return f"SKIP  {self.name}: skipped ({self.reason})"
        status = "OK  " if self.ok else "FAIL"
        extra = f", {self.charts} chart(s)" if self.charts else ""
        why = f" -- {self.reason}" if self.reason else ""
        return f"{status}  {self.name}: {self.images} image(s){extra}, {self.text_chars} chars of text{why}"


def make_driver(width: int = 1280, height: int = 900):
    """Headless Chromium through Debian's chromedriver (no Selenium Manager download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.binary_location = str(CHROMIUM)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def check_page(driver, url: str, name: str, shots: Path | None, expect_images: bool = False,
               expect_charts: bool = False, timeout: float = 30.0) -> PageResult:
    """Load ``url``, wait for load (and for images / Vega charts), judge it and save a full-page screenshot.

    Fails on: no visible body text; any <img> with naturalWidth == 0; no <img> when ``expect_images``;
    no Vega svg/canvas when ``expect_charts``.
    """
    driver.get(url)
    deadline = time.monotonic() + timeout
    while True:
        probe = driver.execute_script(PAGE_PROBE_JS)
        settled = probe["ready"] == "complete" and probe["pending"] == 0
        if expect_charts:
            settled = settled and probe["charts"] > 0
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        # Grow the window to the page's height (capped) so the screenshot shows the whole page, not the viewport.
        driver.set_window_size(1280, max(600, min(int(probe["height"]), 12000)))
        driver.save_screenshot(str(shots / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_')}.png"))
        driver.set_window_size(1280, 900)
    problems = []
    if probe["ready"] != "complete":
        problems.append(f"page not loaded after {timeout:.0f} s")
    probe["text"] += probe["svgText"]
    if probe["text"] == 0:
        problems.append("empty page (no visible text)")
    if probe["broken"]:
        problems.append(f"{len(probe['broken'])} missing image(s): {', '.join(probe['broken'][:3])}")
    if probe["pending"]:
        problems.append(f"{probe['pending']} image(s) still loading after {timeout:.0f} s")
    if expect_images and probe["images"] == 0:
        problems.append("no image where images are expected")
    if expect_charts and probe["charts"] == 0:
        problems.append("no Vega chart (svg/canvas) drawn")
    return PageResult(name, not problems, probe["images"], probe["text"], probe["charts"], "; ".join(problems))

def check_lab(driver, notebook_dir: Path, notebook: str, port: int, shots: Path, timeout: float = 120) -> PageResult:
    """Start JupyterLab headless, open ``notebook`` and wait for the spinelib kernel's name in the kernel indicator."""
    name = "jupyterlab"
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.token=", "--ServerApp.password=",
           f"--notebook-dir={notebook_dir}"]
    if os.geteuid() == 0:  # containers run as root; jupyter refuses without this
        cmd.append("--allow-root")
    log = open(shots.parent / "jupyterlab.log", "w") if shots.parent.exists() else subprocess.DEVNULL
    # Own session so that the server and the kernels it starts can be stopped together by this process group id.
    checkpoints = notebook_dir / ".ipynb_checkpoints"
    had_checkpoints = checkpoints.exists()  # JupyterLab writes one on opening a notebook; leave none behind
    # stdin closed: on a signal the server must not wait for a "Shutdown this Jupyter server (y/[n])?" answer.
    server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://localhost:{port}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    return PageResult(name, False, reason=f"jupyter lab did not start (exit {server.poll()})")
                time.sleep(0.5)
        driver.get(f"http://localhost:{port}/lab/tree/{notebook}")
        probe = {}
        while time.monotonic() < deadline:
            probe = driver.execute_script(
                "const q = s => Array.from(document.querySelectorAll(s)).map(e => e.innerText || e.textContent);"
                "return {kernel: q('.jp-Toolbar-kernelName, .jp-KernelName').join(' | '),"
                " status: q('#jp-main-statusbar').join(' '), dialog: q('.jp-Dialog').join(' '),"
                " text: document.body ? document.body.innerText.trim().length : 0};")
            # The name alone comes from the notebook's metadata; "Idle" in the status bar means the kernel is up.
            if KERNEL_DISPLAY_NAME in probe["kernel"] + probe["status"] and "Idle" in probe["status"] \
                    and not probe["dialog"]:
                break
            time.sleep(0.5)
        shots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shots / "jupyterlab.png"))
        named = KERNEL_DISPLAY_NAME in probe.get("kernel", "") + probe.get("status", "")
        idle = "Idle" in probe.get("status", "")
        problems = ([] if named else [f"kernel indicator shows {probe.get('kernel')!r}, not {KERNEL_DISPLAY_NAME!r}"]) \
            + ([] if idle else [f"kernel not idle after {timeout:.0f} s (status bar: {probe.get('status', '')!r})"]) \
            + ([f"dialog: {probe['dialog'][:120]!r}"] if probe.get("dialog") else [])
        status = " ".join(probe.get("status", "").split())
        shown = status[status.find(KERNEL_DISPLAY_NAME):].split(" Mode:")[0] if KERNEL_DISPLAY_NAME in status \
            else status[:60]
        return PageResult(f"{name} {notebook} [status bar: {shown}]", not problems,
                          text_chars=probe.get("text", 0), reason="; ".join(problems))
    finally:
        # The kernels run in sessions of their own: ask the server to shut them and itself down (POST /api/shutdown,
        # with the page's XSRF cookie), then SIGTERM, then SIGKILL; only this server's process id is signalled.
        try:
            driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const m = document.cookie.match(/_xsrf=([^;]+)/);"
                "fetch('/api/shutdown', {method: 'POST', headers: m ? {'X-XSRFToken': m[1]} : {}})"
                ".then(r => done(r.status), e => done(String(e)));")
        except Exception:  # noqa: BLE001 -- the page may be gone; the signals below still stop the server
            pass
        for sig, wait in ((None, 20), (signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            if sig is not None:
                server.send_signal(sig)
            try:
                server.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if log is not subprocess.DEVNULL:
            log.close()
        if not had_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)

def guarded(name: str, make_page) -> Path | PageResult | str:
    """Build a page; a failure to build it is a FAIL line of its own, not a crash of the whole check."""
    try:
        page = make_page()
    except Exception as exc:  # noqa: BLE001 -- reported as that page's FAIL
        return PageResult(name, False, reason=f"could not build the page: {exc}")
    return page


def main(argv: list[str] | None = None) -> int:
    """Check the pages; print one line each; 0 when all pass (skips allowed), 1 on any FAIL, 2 without Chromium."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebook", type=Path, default=None,
                    help="executed notebook (default: first docs/notebooks/*.ipynb)")
    ap.add_argument("--study", type=Path, default=None,
                    help="study folder to grade (default: first phantom test study)")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "browser_check", help="pages and screenshots")
    ap.add_argument("--vega-dir", type=Path, default=REPO / "build" / "vega",
                    help="local Vega JS (fetched by npm pack)")
    ap.add_argument("--lab", action="store_true", help="also open JupyterLab headless and check the kernel name")
    ap.add_argument("--port", type=int, default=8899)
    ap.add_argument("--page", type=Path, action="append", default=[], help="only check these HTML files")
    ap.add_argument("--expect-images", action="store_true", help="with --page: fail a page without images")
    ap.add_argument("--write-plots-template", type=Path, default=None, metavar="OUT",
                    help="only write the offline `dvc plots show --html-template` file to OUT and exit")
    args = ap.parse_args(argv)
    if args.write_plots_template is not None:
        path = build_plots_template(TEMPLATE, fetch_vega(args.vega_dir), args.write_plots_template)
        print(f"wrote {path}: dvc plots show --html-template {path}")
        return 0
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        print(f"{CHROMIUM} or {CHROMEDRIVER} missing: sudo apt-get install -y chromium chromium-driver",
              file=sys.stderr)
        return 2
    out = args.out.resolve()
    shots = out / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)  # only this run's screenshots
    out.mkdir(parents=True, exist_ok=True)
    # (name, page or result, expect_images, expect_charts)
    todo: list[tuple[str, Path | PageResult, bool, bool]] = []
    if args.page:
        todo = [(p.name, p.resolve(), args.expect_images, False) for p in args.page]
    else:
        study = args.study or default_study()
        if study is None:
            todo.append(("report page", PageResult("report page", False, reason="no study: data/phantom absent "
                                                   "(dvc repro make_phantom) and no --study"), True, False))
        else:
            todo.append((f"report page {study.name}", guarded("report page", lambda: report_page(study, out)),
                         True, False))
        nb = args.notebook or default_notebook()
        todo.append((f"notebook page {nb.name}", guarded("notebook page", lambda: notebook_page(nb, out)), True, False))
        try:
            template = build_plots_template(TEMPLATE, fetch_vega(args.vega_dir), out / "plots_template_inline.html")
        except Exception as exc:  # noqa: BLE001 -- no local Vega: the plots page is skipped with its reason
            template = None
            todo.append(("plots page", PageResult("plots page", True, skipped=True,
                                                  reason=f"offline Vega template not built: {exc}"), False, False))
        if template is not None:
            plots = guarded("plots page", lambda: plots_page(template, out))
            if isinstance(plots, str):  # nothing to draw in this workspace: skip it, check the template on a demo
                todo.append(("plots page", PageResult("plots page", True, reason=plots, skipped=True), False, False))
                todo.append(("plots page (demo CSV, offline template)",
                              guarded("plots page (demo CSV)", lambda: demo_plots_page(template, out)), False, True))
            else:
                todo.append(("plots page dvc_plots/index.html", plots, False, True))
    results: list[PageResult] = []
    driver = make_driver()
    try:
        for name, page, expect_images, expect_charts in todo:
            if isinstance(page, PageResult):
                result = page
            elif not page.exists():
                result = PageResult(name, False, reason=f"{page} does not exist")
            else:
                result = check_page(driver, page.as_uri(), name, shots, expect_images, expect_charts)
            results.append(result)
            print(result.line(), flush=True)
        if args.lab:
            result = check_lab(driver, REPO / "notebooks", "09_mil_grading.ipynb", args.port, shots)
            results.append(result)
            print(result.line(), flush=True)
    finally:
        driver.quit()
    print(f"screenshots: {shots}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
