"""The interactive point-to-pixel page of `simipu inspect --out FILE.html` works in a real browser: it loads
offline without console errors, and each of its traces is drawn (hiding a trace changes the pixels of its plot).

Needs Debian's chromium (scripts/test.sh installs it when run as root) and the pip package playwright (the dev
extra); Playwright drives that chromium, it never downloads a browser of its own. Skips with the reason otherwise.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest

from simipu.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage",        # a small /dev/shm (containers) must not crash the renderer
        "--enable-unsafe-swiftshader"]    # software WebGL without a GPU: newer chromiums need it said


@pytest.fixture
def browser_page(tmp_path):
    """A Playwright page in headless chromium with a fresh profile; collects console errors and page errors."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the pip package playwright is not installed "
                                                                  "(pip install 'simipu[dev]')")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: install Debian's chromium (apt-get install chromium; scripts/test.sh "
                    "does this when run as root) to run the browser test")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                       headless=True, args=ARGS,
                                                       viewport={"width": 1300, "height": 1000})
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: page.problems.append(f"request failed: {r.url}"))
        try:
            yield page
        finally:
            context.close()


def _pixels(page, box) -> np.ndarray:
    from io import BytesIO

    from PIL import Image
    png = page.screenshot(clip=box)
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)


def test_inspect_html_loads_without_errors_and_draws_every_trace(browser_page, tmp_path):
    out = tmp_path / "frame.html"
    assert main(["inspect", "--data-root", str(SAMPLES), "--frame", "000000", "--out", str(out)]) == 0
    page = browser_page
    page.goto(out.as_uri(), wait_until="load")
    page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                           " return gd && gd._fullData && gd._fullData.length === 3 }", timeout=120_000)
    page.wait_for_timeout(1500)  # WebGL traces draw on the next frames
    traces = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.map(t => t.type)")
    assert traces == ["scatter3d", "image", "scattergl"]
    assert page.locator(".no-webgl").count() == 0, "plotly reports that WebGL is unavailable"
    scene = page.locator(".gl-container #scene").bounding_box()
    xy = page.locator(".draglayer .xy .nsewdrag").bounding_box()
    assert scene["width"] > 500 and xy["width"] > 500
    before = {"scene": _pixels(page, scene), "xy": _pixels(page, xy)}
    for index, region in ((0, "scene"), (2, "xy"), (1, "xy")):   # hide 3D points, image markers, the image
        page.evaluate(f"() => Plotly.restyle(document.querySelector('.js-plotly-plot'), {{visible: false}}, [{index}])")
        for _ in range(50):                                      # WebGL redraws on a later frame: poll, ≤ 10 s
            page.wait_for_timeout(200)
            after = _pixels(page, scene if region == "scene" else xy)
            changed = (np.abs(after - before[region]).sum(-1) > 30).mean()
            if changed > 0.01:
                break
        assert changed > 0.01, f"hiding trace {index} ({traces[index]}) changed {changed:.2%} of its plot's pixels"
        before[region] = after
    assert not page.problems, page.problems
