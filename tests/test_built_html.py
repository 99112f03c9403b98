"""After a build: the pilot chapters' and the vision and sequence chapters' plotly figures (those
chapters with three or more) render in headless Chromium,
in light and dark mode, without JavaScript errors.

Needs `_build/html` (from `make book`) and Debian's chromium (installed by
`make setup`). Without them the test is skipped, unless SCRATCH_REQUIRE_BUILD=1
(as in CI), where a missing build or browser is a failure.
"""
import functools
import http.server
import os
import shutil
import threading

import pytest

from conftest import ROOT

HTML = ROOT / "_build" / "html"
PILOTS = ["book/foundations/autograd.html", "book/vision/lenet.html"] + [
    f"book/vision/{name}.html"
    for name in ("features", "alexnet", "resnet", "unet", "adversarial", "allcnn")] + [
    f"book/sequences/{name}.html"
    for name in ("bigram", "mlp_lm", "rnn", "lstm", "forecasting", "attention", "transformer",
                 "tokenization", "text_classification", "vit")]
# Pages with a figure whose second subplot has an axis title (plots.training_curves).
SECOND_SUBPLOT_TITLES = ["book/vision/lenet.html", "book/vision/unet.html"]
REQUIRED = os.environ.get("SCRATCH_REQUIRE_BUILD") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def need(condition, why):
    if not condition:
        (pytest.fail if REQUIRED else pytest.skip)(why)


@pytest.fixture(scope="module")
def server():
    need((HTML / "index.html").exists(), "no built book: run `make book` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    need(CHROMIUM, "Debian's chromium is not installed: run `make setup`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("page_path", PILOTS)
def test_figures_render(server, browser, page_path, mode, tmp_path):
    need((HTML / page_path).exists(), f"{page_path} was not built")
    context = browser.new_context(color_scheme=mode, viewport={"width": 1280, "height": 900})
    # The theme stores the reader's choice in localStorage; set it before any script runs.
    context.add_init_script(f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")
    page = context.new_page()
    errors, offsite = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Requests off this machine are refused (as offline); only MathJax, which the theme
    # loads from its CDN, may ask. Plotly must come from the book itself.
    page.route(lambda url: not url.startswith(server), lambda route: (
        offsite.append(route.request.url), route.abort()))
    page.on("console", lambda msg: msg.type == "error" and "Failed to load resource" not in msg.text
            and errors.append(msg.text))
    page.goto(f"{server}/{page_path}", wait_until="load")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0", timeout=20_000)
    assert page.evaluate("document.documentElement.dataset.theme") == mode
    plots = page.evaluate("""() => [...document.querySelectorAll('.plotly-graph-div')].map(div => ({
        id: div.id, svg: div.querySelectorAll('svg.main-svg').length,
        traces: div.querySelectorAll('.trace, .heatmaplayer image, .imagelayer image, .contourlayer path, '
                                     + '.table .cell-text').length,
        width: div.getBoundingClientRect().width}))""")
    assert len(plots) >= 3, f"expected the chapter's figures, found {len(plots)}"
    for plot in plots:
        assert plot["svg"] >= 1, f"figure {plot['id']} has no SVG: it did not render"
        assert plot["traces"] >= 1, f"figure {plot['id']} drew no data"
        assert plot["width"] > 200
    assert not errors, f"JavaScript errors: {errors}"
    offsite = [url for url in offsite if "mathjax" not in url and not url.startswith("data:")]
    assert not offsite, f"the page fetched from outside the book (a CDN?): {offsite[:3]}"
    if mode == "dark":  # tick labels and axis titles are recoloured to stay readable on the dark background
        fill = page.evaluate("getComputedStyle(document.querySelector('.js-plotly-plot .xtick text')).fill")
        assert fill == "rgb(214, 214, 214)"
        # Of every axis of every subplot: plotly names the groups after the axis (x2tick,
        # g-x2title, ...), so a rule written for the first subplot's names misses the others.
        texts = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot g text')]
            .filter(t => /^([xy][0-9]*tick|g-[xy][0-9]*title)$/.test(t.parentNode.getAttribute('class'))
                         && t.textContent.trim())
            .map(t => ({cls: t.parentNode.getAttribute('class'), text: t.textContent,
                        fill: getComputedStyle(t).fill}))""")
        dark = [f"{t['cls']} {t['text']!r}: {t['fill']}" for t in texts if t["fill"] != "rgb(214, 214, 214)"]
        assert not dark, f"axis text left in the light-mode colour: {dark[:5]}"
        if page_path in SECOND_SUBPLOT_TITLES:  # training curves: loss | metrics, "epoch" under both
            assert any(t["cls"] == "g-x2title" for t in texts), "no axis title of a second subplot found"
    page.screenshot(path=str(tmp_path / f"{mode}.png"), full_page=False)
    context.close()
