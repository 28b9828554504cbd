"""`egsynth demo` in a real browser: Debian's chromium, headless, driven by Playwright (which downloads nothing here).

The app runs as the command a user types, in a subprocess on a free local port, on untrained generators and a few
procedural scenes made here (`tests/demo_tree.py`). Two variables point it elsewhere:
- EGSYNTH_DEMO_ROOT: a repo after `make repro`, whose models/ and data/eval/ the page then serves;
- EGSYNTH_DEMO_SCREENSHOT: where the page's screenshot goes (default: the test's tmp dir). The README's
  `docs/demo.png` is this test's screenshot.
Deselect it with `-m "not browser"`.
"""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egsynth.demo.core import list_scenes
from egsynth.models.generator import load_generator
from tests.demo_tree import make_demo_tree

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SRC = Path(__file__).resolve().parents[1] / "src"
START_TIMEOUT_S = 120  # importing torch and loading the model, on a busy machine
WAIT_MS = 30_000  # for an answer of the app on a busy machine
VIEWPORT = {"width": 1440, "height": 960}


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sync_api():
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; `make test` does it as root)")
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[browser]'")


@pytest.fixture(scope="module")
def served(sync_api, tmp_path_factory):
    """(URL of the running `egsynth demo`, its generator file, its eval dir)."""
    if "EGSYNTH_DEMO_ROOT" in os.environ:
        root = Path(os.environ["EGSYNTH_DEMO_ROOT"]).resolve()
        models, eval_dir = root / "models", root / "data" / "eval"
    else:
        tree = make_demo_tree(tmp_path_factory.mktemp("demo"), size=64)
        root, models, eval_dir = tree.root, tree.models, tree.eval_dir
    model, port = models / "full" / "generator.pt", free_port()
    command = [sys.executable, "-c", "from egsynth.cli import app; app()", "demo", "--port", str(port)]
    command += ["--model", str(model), "--models", str(models), "--eval-dir", str(eval_dir), "--device", "cpu"]
    command += ["--parser", str(root / "models" / "parser.pt")]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"egsynth demo exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"egsynth demo did not answer on {url} within {START_TIMEOUT_S} s")
            time.sleep(0.25)
    yield url, model, eval_dir
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(sync_api):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def rgba_png(eval_dir: Path) -> bytes:
    scene = next(iter(list_scenes(eval_dir).values()))
    with Image.open(scene.photo) as photo:
        rgba = photo.convert("RGBA")
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_page_synthesizes_shows_where_a_clicked_pixel_drew_from_and_names_a_bad_upload(
    sync_api, served, browser, tmp_path
):
    expect = sync_api.expect
    url, model, eval_dir = served
    scales = load_generator(model).num_scales + 1
    first = next(iter(list_scenes(eval_dir).values()))
    with Image.open(first.labels) as labels:
        width, height = labels.size

    page = browser.new_page(viewport=VIEWPORT)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))

    def local_only(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            problems.append(f"request outside the app: {route.request.url}")
            route.abort()

    page.route("**/*", local_only)
    page.goto(url)

    # a synthesis through the page: the first scenes are synthesized on load, the button does it again
    expect(page.locator("#status")).to_contain_text("in the style of", timeout=WAIT_MS)
    page.click("#synthesize")
    expect(page.locator("#status")).to_contain_text(f"{width}x{height} by full", timeout=WAIT_MS)
    natural = page.eval_on_selector("#output", "image => [image.naturalWidth, image.naturalHeight]")
    assert natural == [width, height]

    # a click on an output pixel: the exemplar under that pixel's attention, one overlay per scale
    box = page.locator("#output").bounding_box()
    x, y = width // 2, height * 4 // 5
    page.locator("#output").click(
        position={"x": (x + 0.5) / width * box["width"], "y": (y + 0.5) / height * box["height"]}
    )
    expect(page.locator("#scales figure")).to_have_count(scales, timeout=WAIT_MS)
    expect(page.locator("#pixel")).to_contain_text(f"Pixel ({x}, {y}) of target class", timeout=WAIT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#scales img')].every(image => image.complete && image.naturalWidth > 0)",
        timeout=WAIT_MS,
    )
    overlay_sizes = page.eval_on_selector_all(
        "#scales img", "images => images.map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert overlay_sizes == [list(Image.open(first.photo).size)] * scales
    expect(page.locator("#marker")).to_be_visible()
    expect(page.locator("#scales figcaption").first).to_contain_text("%")

    # the slider: all the way to exemplar B
    page.eval_on_selector("#t", "slider => { slider.value = '1'; slider.dispatchEvent(new Event('change')); }")
    expect(page.locator("#mix-status")).to_contain_text("t = 1: 0 % exemplar A, 100 % exemplar B", timeout=WAIT_MS)
    expect(page.locator("#error")).to_be_hidden()

    screenshot = Path(os.environ.get("EGSYNTH_DEMO_SCREENSHOT", tmp_path / "demo.png"))
    page.screenshot(path=screenshot, full_page=True)
    with Image.open(screenshot) as shot:
        pixels = np.asarray(shot.convert("RGB"))
    assert pixels.shape[1] == VIEWPORT["width"] and pixels.std() > 10, "a page, not a blank screen"

    # a bad upload: the CLI's line on the page, and the page goes on
    page.set_input_files(
        "#exemplar-file", files=[{"name": "rgba.png", "mimeType": "image/png", "buffer": rgba_png(eval_dir)}]
    )
    page.click("#synthesize")
    expect(page.locator("#error")).to_have_text(
        "error: rgba.png: expected an 8-bit RGB image, got RGBA (with alpha)", timeout=WAIT_MS
    )
    page.select_option("#exemplar-scene", index=0)  # a scene again, in place of the upload
    page.click("#synthesize")
    expect(page.locator("#error")).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator("#status")).to_contain_text(f"in the style of {first.name}", timeout=WAIT_MS)

    # the model picker: a variant without MSCA says it has no attention to show and no slider
    page.select_option("#model", "gap")
    page.click("#synthesize")
    expect(page.locator("#status")).to_contain_text(f"{width}x{height} by gap", timeout=WAIT_MS)
    expect(page.locator("#pixel")).to_have_text("The gap generator has no spatial and channel attention to show.")
    expect(page.locator("#mix-status")).to_contain_text("cannot interpolate styles")
    assert problems == ["console: Failed to load resource: the server responded with a status of 400 (Bad Request)"]
