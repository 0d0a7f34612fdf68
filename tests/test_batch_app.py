"""The Batch and Compare tabs in the running app: /compare through gradio_client, and in a real
browser a ZIP run to a table and a map, and a comparison of two setups (screenshots: artifacts/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_server import ASSETS, ROOT
from batch_data import make_folder, zip_folder

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def server(shared_app):
    return shared_app


def test_compare_endpoint(server):
    client = Client(server.url, verbose=False)
    out = client.predict(handle_file(str(ASSETS / "chelsea.png")),
                         "efficientnet_lite0; efficientnet_lite0 pretrained=no", True, 3, "auto",
                         "", api_name="/compare")  # fmt: skip
    first, second = out["models"]
    assert first["predictions"][0]["label"] == "tiger cat"  # the photo's known answer
    assert second["title"] == "efficientnet_lite0 (random weights)" and second["head_is_random"]
    assert out["strides"] == [8, 16, 32] and len(first["predictions"]) == 3
    with pytest.raises(Exception, match="Pick 2 to 4 models"):
        client.predict(handle_file(str(ASSETS / "chelsea.png")), "resnet18", True, 3, "auto", "",
                       api_name="/compare")  # fmt: skip


@pytest.mark.browser
def test_batch_and_compare_tabs_in_a_browser(server, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    archive = zip_folder(make_folder(tmp_path / "images"), tmp_path / "images.zip")
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        page.goto(server.url)
        page.get_by_text("3 channels × 300 × 451").wait_for()  # the example photo is loaded
        page.get_by_role("tab", name="Run a whole folder").click()
        page.locator("#mk-batch-zip input[type='file']").set_input_files(str(archive))
        page.locator("#mk-batch-run").click()
        page.locator("#mk-batch-map .js-plotly-plot").wait_for()
        page.locator("#mk-batch-answer", has_text="of 9 images").wait_for()
        assert page.locator("#mk-batch-table").get_by_text("cats/c0.png").count() >= 1
        page.screenshot(path=str(artifacts / "batch-tab.png"), full_page=True)
        page.get_by_role("tab", name="Compare models").click()
        page.locator("#mk-compare-run").click()
        page.locator("#mk-compare-maps .js-plotly-plot").wait_for()
        assert page.locator("#mk-compare-table").get_by_text("efficientnet_lite1").count() >= 1
        page.screenshot(path=str(artifacts / "compare-tab.png"), full_page=True)
        browser.close()
