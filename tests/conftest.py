"""Shared fixtures: a test cache for the zoo, trained once per machine, and skips that CI turns into failures."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The zoo trains into a cache inside the checkout: a fresh clone trains once per test session, later runs reuse it.
os.environ.setdefault("COMPRESSION_LAB_CACHE", str(ROOT / ".cache" / "test-cache"))
# Runs recorded by tests go to a history of their own, never the user's.
os.environ.setdefault("COMPRESSION_LAB_DATA", str(ROOT / ".cache" / "test-data"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip with a clear reason on a developer machine; fail in CI, where nothing may skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must not skip: {reason}")
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skip from anywhere (a skipif mark, pytest.skip, importorskip) is a failure: a test that cannot run
    there must be deselected by name (as `make test` does the `cuda` ones), never skipped silently."""
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome, report.longrepr = "failed", f"CI must not skip: {reason}"
    return report


@pytest.fixture(scope="session")
def fashion_available() -> None:
    from compression.data import fashion_mnist_available

    require(fashion_mnist_available(),
            "Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    require(Path(path).exists(), "Chromium is not installed (sudo apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        require(False, "playwright is not installed (pip install playwright)")
    return path


@pytest.fixture(scope="session")
def zoo():
    """Load (training on first use) a zoo model; each is trained at most once per cache."""
    from compression.models.loading import load_zoo

    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_zoo(name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def tiny_gpt():
    """The tiny GPT, trained into the test cache before any page needs it (a minute, once per cache): a page that
    trained it inside its own run would spend its AppTest timeout on training."""
    from compression.lm import load_tiny_gpt

    return load_tiny_gpt()


def state_checksum(module) -> float:
    """A number that changes if any parameter or buffer of `module` changes."""
    import torch

    with torch.no_grad():
        return float(sum((t.double() * (i + 1)).sum() for i, t in enumerate(module.state_dict().values())))


@contextlib.contextmanager
def serve_app():
    """The real app served by `streamlit run` on a free localhost port; yields its base URL."""
    import time

    from bench._server import serve

    (ROOT / ".cache").mkdir(exist_ok=True)
    try:
        with serve(ROOT / ".cache" / f"e2e-server-{time.time_ns()}.log") as (_, url):
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def app_server(chromium_path):
    with serve_app() as url:
        yield url


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    from bench._server import CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


# The one timeout of every browser wait (Playwright's expect and the page's own waits): generous, because a loaded
# 2-core machine stretches a page run 5-10x. A wait that needs it has found a hang, not a slow machine.
BROWSER_TIMEOUT_MS = 120_000


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield pg
    context.close()


def wait_idle(page) -> None:
    """Wait until Streamlit has finished running the script (what Streamlit's own e2e suite waits on).

    The page is also idle *before* a run starts, so call this only once something the run draws has been seen
    (wait for that first); on its own after an action it can return before the action's run has begun."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")


# Follows the messages between the page and the server from now on: once the page asks for a rerun (a BackMsg with
# rerun_script, field 11), the run that starts after it (a ForwardMsg with new_session, field 4) and ends in full
# (script_finished, field 6, = FINISHED_SUCCESSFULLY, 0) sets window.__run.ended. The page's own script-state
# attribute cannot tell: React may draw "running" and "notRunning" of a quick run in one render, or never leave
# "running" when a run takes over from the one under way.
_FOLLOW_A_RUN = """() => {
    const fields = bytes => {  // a protobuf message's top-level fields: {number: varint value, or true}
        const found = {};
        let i = 0;
        const varint = () => {
            let value = 0, shift = 0, byte;
            do { byte = bytes[i++]; value += (byte & 127) * 2 ** shift; shift += 7; } while (byte & 128);
            return value;
        };
        while (i < bytes.length) {
            const tag = varint(), wire = tag % 8, number = Math.floor(tag / 8);
            if (wire === 0) found[number] = varint();
            else if (wire === 2) { const length = varint(); i += length; found[number] = true; }
            else if (wire === 1 || wire === 5) { i += wire === 1 ? 8 : 4; found[number] = true; }
            else break;
        }
        return found;
    };
    window.__run = {asked: false, started: false, ended: false};
    if (window.__heard) return;  // the page is followed already
    window.__heard = new WeakSet();
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        if (!window.__heard.has(this)) {
            window.__heard.add(this);
            this.addEventListener('message', event => {
                const run = window.__run, message = fields(new Uint8Array(event.data));
                if (run.asked && message[4]) run.started = true;
                if (run.started && message[6] === 0) run.ended = true;
            });
        }
        if (fields(data instanceof ArrayBuffer ? new Uint8Array(data) : data)[11]) window.__run.asked = true;
        return send.call(this, data);
    };
}"""


@contextlib.contextmanager
def a_whole_run(page):
    """Wait, after the block, until the script run that a rerun asked for in the block has ended: for an action
    whose run changes nothing a test can see (a number typed into a box)."""
    page.evaluate(_FOLLOW_A_RUN)
    yield
    page.wait_for_function("() => window.__run.ended")


def open_page(page, url: str, shows) -> None:
    """Go to `url`, wait until `shows` (a locator of something that page's run draws) is visible, then until the
    run has ended."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(shows).to_be_visible()
    wait_idle(page)


def open_router(page, app_server: str, model: str = "mlp") -> None:
    """Open the app's router first, so st.navigation owns the URL paths: before any run has called it, Streamlit
    would serve a page's script as a legacy page without app.py. Its navigation drawn is the sign it ran."""
    navigation = page.get_by_test_id("stSidebarNav").get_by_text("Pruning", exact=True)
    open_page(page, f"{app_server}/?model={model}", navigation)


# Per chart: the x-axis titles and tick labels that a legend box covers.
LEGEND_OVERLAPS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(gd => {
    const legend = gd.querySelector('g.legend'), box = legend && legend.getBoundingClientRect();
    if (!box || !box.width) return [];
    return Array.from(gd.querySelectorAll('text.xtitle, text.x2title, .xtick text, .x2tick text')).filter(t => {
        const r = t.getBoundingClientRect();
        return r.width && r.left < box.right && box.left < r.right && r.top < box.bottom && box.top < r.bottom;
    }).map(t => `${gd._fullLayout.title?.text}: ${t.textContent}`);
})"""


def assert_legends_clear(page, where="") -> None:
    """No chart's legend covers an x-axis title or tick label (a legend placed in plot coordinates did, at 800 px)."""
    covered = page.evaluate(LEGEND_OVERLAPS)
    assert not covered, (where, covered)


SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def full_page_screenshot(page, name: str) -> None:
    """The whole page as a PNG under artifacts/screenshots: Streamlit scrolls inside its main section, so
    full_page alone stops at the window; the window is stretched to the content for the shot."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 16_000))})
    page.wait_for_timeout(700)  # charts resize to the new window
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
    page.set_viewport_size(size)


def pytest_configure(config):
    import torch

    # Tests run beside other work on a 2-core machine; one thread each avoids oversubscription.
    torch.set_num_threads(1)
    try:
        from playwright.sync_api import expect
    except ImportError:  # the browser tests skip (or fail in CI) through the chromium_path fixture
        return
    expect.set_options(timeout=BROWSER_TIMEOUT_MS)  # Playwright's default is 5 s, and page timeouts do not apply


def drain(generator) -> tuple[list, object]:
    """Run one of the engine's progress generators to the end: (every step it yielded, what it returned)."""
    from compression.core.progress import Drive

    run = Drive(generator)
    steps = list(run)
    return steps, run.result


def onnx_upload(model) -> tuple[bytes, bytes]:
    """A zoo model as an ONNX file (batch dimension dynamic) and its test split as an .npz with x and y."""
    import io
    import warnings

    import numpy as np
    import torch

    onnx_file, npz_file = io.BytesIO(), io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated, and needs no extra package
        torch.onnx.export(model.module, (model.dataset.x_test[:1],), onnx_file, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    np.savez(npz_file, x=model.dataset.x_test.numpy(), y=model.dataset.y_test.numpy())
    return onnx_file.getvalue(), npz_file.getvalue()
