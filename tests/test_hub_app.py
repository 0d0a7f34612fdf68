"""The app downloading weights it does not have, from a loopback Hub (tests/fake_hub.py) that
serves them slowly: the download's progress (file, MB, percent) reaches the caller before the
result, through gradio_client (/predict) and in the page (Explore's Run, in chromium)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import timm
import torch
from app_server import ASSETS, ROOT, api_args, start_app
from fake_hub import FakeHub, state_dict_bytes

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
FILE = "model.safetensors"
DOWNLOADING = re.compile(r"Downloading model\.safetensors of (timm/resnet18\.\w+): "
                         r"([\d.]+) of ([\d.]+) MB")  # fmt: skip


@pytest.fixture(scope="module")
def hub():
    """resnet18's checkpoint under two tags, sent in 1 MB pieces 40 ms apart (~2 s each)."""
    torch.manual_seed(5)
    data = state_dict_bytes(timm.create_model("resnet18").state_dict())
    server = FakeHub(chunk=1 << 20, delay=0.04).start()
    for tag in ("a1_in1k", "a2_in1k"):
        server.add(f"timm/resnet18.{tag}", FILE, data)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app(hub, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub-app")
    env = {
        "MODELKIT_OFFLINE": "0",
        "HF_HUB_OFFLINE": "0",  # the app downloads from the fake Hub whatever the caller's says
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(tmp / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1",  # no fetch of huggingface_hub's agent list
        "NO_PROXY": "127.0.0.1,localhost",
    }
    server = start_app(tmp, env=env)
    yield server
    server.stop()


def test_predict_reports_the_download_before_the_result(app, hub):
    client = Client(app.url, verbose=False)
    job = client.submit(handle_file(str(ASSETS / "chelsea.png")),
                        *api_args(model="timm/resnet18.a2_in1k", top_k=3),
                        api_name="/predict")  # fmt: skip
    seen: list[tuple[str, float | None]] = []  # (desc, fraction) as the status updates came
    while not job.done():
        for unit in job.status().progress_data or []:
            if unit.desc and (not seen or seen[-1] != (unit.desc, unit.progress)):
                seen.append((unit.desc, unit.progress))
        time.sleep(0.02)
    result = job.result()
    assert result["model"] == "timm/resnet18.a2_in1k" and len(result["predictions"]) == 3
    steps = [(m, fraction) for desc, fraction in seen if (m := DOWNLOADING.fullmatch(desc))]
    assert len(steps) >= 2, seen  # the bytes moved while we watched
    assert {m.group(1) for m, _ in steps} == {"timm/resnet18.a2_in1k"}
    size = len(hub.repos["timm/resnet18.a2_in1k"].files[FILE].data)
    assert {float(m.group(3)) for m, _ in steps} == {round(size / 1e6, 1)}
    for m, fraction in steps:  # the bar's fraction is the bytes' share
        assert fraction == pytest.approx(float(m.group(2)) / float(m.group(3)), abs=0.01)
    fractions = [f for _, f in steps]
    assert fractions == sorted(fractions) and fractions[0] < 1
    assert hub.repos["timm/resnet18.a2_in1k"].files[FILE].gets == 1
    # weights on disk now: a second call is answered without the Hub
    before = hub.count()
    again = client.predict(handle_file(str(ASSETS / "chelsea.png")),
                           *api_args(model="timm/resnet18.a2_in1k", top_k=3),
                           api_name="/predict")  # fmt: skip
    assert again["predictions"] == result["predictions"] and hub.count() == before


@pytest.mark.browser
def test_explore_run_shows_the_download_then_the_result(app, hub):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(app.url)
        page.locator("#mk-model-line", has_text="efficientnet_lite0").wait_for()
        page.get_by_text("3 channels × 300 × 451").wait_for()  # the example photo is loaded
        page.get_by_text("Model settings", exact=True).click()  # the card and the search
        page.get_by_text("Find a model in the registry").click()
        search = page.locator("#mk-search textarea, #mk-search input").first
        search.fill("resnet18")
        search.press("Enter")
        dropdown = page.locator("#mk-model input").first
        dropdown.click()
        dropdown.fill("timm/resnet18")
        page.get_by_role("option", name="timm/resnet18", exact=True).click()
        page.locator("h3", has_text="timm/resnet18").wait_for()  # its card; default tag a1_in1k
        page.get_by_text("a1_in1k").first.wait_for()
        assert page.get_by_text("not here: downloaded on first use").count() == 1  # the card
        page.locator("#mk-model-line", has_text="weights downloaded on first use").wait_for()
        page.locator("#mk-run").click()
        # while the bytes come, the page says which file and how far
        progress = page.get_by_text(DOWNLOADING).first
        progress.wait_for()
        text = progress.text_content()
        page.screenshot(path=str(ARTIFACTS / "hub-download-progress.png"), full_page=True)
        first = DOWNLOADING.search(text)
        mb = f"{len(hub.repos['timm/resnet18.a1_in1k'].files[FILE].data) / 1e6:.1f}"
        assert first.group(1) == "timm/resnet18.a1_in1k" and first.group(3) == mb
        assert float(first.group(2)) < float(mb) and re.search(r" - [\d.]+%", text)  # gradio's %
        # then the result
        page.locator("#mk-chart .js-plotly-plot").wait_for()
        labels = page.locator("#mk-chart .yaxislayer-above .ytick text").all_text_contents()
        assert len(labels) == 5  # top-5 of the served (random) weights: any labels
        assert page.get_by_text(DOWNLOADING).count() == 0  # the bar is gone with the result
        assert "Traceback" not in page.content()
        # the card follows: the weights are on this machine now
        card_line = page.locator("p", has_text="Pretrained tags")  # "... · Weights <where>"
        card_line.filter(has_text="on this machine").first.wait_for()
        assert page.get_by_text("not here: downloaded on first use").count() == 0
        page.locator("#mk-model-line", has_text="weights on this machine").wait_for()
        page.screenshot(path=str(ARTIFACTS / "hub-download-done.png"), full_page=True)
        browser.close()
    assert hub.repos["timm/resnet18.a1_in1k"].files[FILE].gets == 1
