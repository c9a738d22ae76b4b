"""tools/browser_check.py in headless Chromium: a page with an image passes, a broken image or an empty page fails.

Skipped where Debian's chromium / chromium-driver are not installed (CI has neither).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
    pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)",
                allow_module_level=True)
pytest.importorskip("selenium")

# A 1x1 PNG, so the good page's image is a real file next to it.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def load_tool(load_script):
    """``load_tool(name)``: tools/<name>.py as a module (browser_check imports its sibling, so tools/ goes on the
    path)."""
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    return lambda name: load_script(ROOT / "tools" / f"{name}.py")


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pages")
    (root / "pixel.png").write_bytes(PIXEL)
    html = {
        "good": '<html><body><h1>Report</h1><img src="pixel.png" width="20"></body></html>',
        "broken": '<html><body><h1>Report</h1><img src="missing.png"></body></html>',
        "empty": "<html><body><div></div></body></html>",
    }
    for name, text in html.items():
        (root / f"{name}.html").write_text(text)
    return {name: root / f"{name}.html" for name in html}


@pytest.fixture(scope="module")
def tool(load_tool):
    return load_tool("browser_check")


@pytest.fixture(scope="module")
def driver(tool):
    drv = tool.make_driver()
    yield drv
    drv.quit()


def test_page_with_an_image_passes(tool, driver, pages, tmp_path):
    result = tool.check_page(driver, pages["good"].as_uri(), "good", tmp_path, expect_images=True)
    assert result.ok, result.line()
    assert result.images == 1 and result.text_chars > 0
    assert (tmp_path / "good.png").stat().st_size > 0  # screenshot saved


def test_broken_image_fails(tool, driver, pages):
    result = tool.check_page(driver, pages["broken"].as_uri(), "broken", None, expect_images=True)
    assert not result.ok
    assert "missing image" in result.reason and "missing.png" in result.reason


def test_empty_page_fails(tool, driver, pages):
    result = tool.check_page(driver, pages["empty"].as_uri(), "empty", None)
    assert not result.ok and "empty page" in result.reason


def test_no_image_where_one_is_expected_fails(tool, driver, pages, tmp_path):
    (tmp_path / "text.html").write_text("<html><body><p>only text</p></body></html>")
    result = tool.check_page(driver, (tmp_path / "text.html").as_uri(), "text", None, expect_images=True)
    assert not result.ok and "no image" in result.reason


def test_main_exits_1_on_a_fail_and_prints_a_line_per_page(tool, pages, tmp_path, capsys):
    code = tool.main(["--page", str(pages["good"]), "--page", str(pages["broken"]), "--expect-images",
                      "--out", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith("OK") and "good.html: 1 image(s)" in lines[0]
    assert lines[1].startswith("FAIL") and "broken.html" in lines[1]
    assert tool.main(["--page", str(pages["good"]), "--out", str(tmp_path)]) == 0


def test_plots_template_inlines_the_scripts_and_keeps_dvc_placeholders(load_tool, tmp_path):
    builders = load_tool("page_builders")
    js = {}
    for _, _, marker in builders.VEGA_JS:
        path = tmp_path / f"{len(js)}.js"
        path.write_text(f"window.lib{len(js)} = 1;")
        js[marker] = path
    out = builders.build_plots_template(builders.TEMPLATE, js, tmp_path / "template.html")
    html = out.read_text()
    assert "window.lib0 = 1;" in html and "window.lib2 = 1;" in html
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC fills the plots, writes no CDN tags
    assert "<script src=" not in html  # nothing loaded from the network
