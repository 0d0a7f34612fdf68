"""The Teach tab in a real browser: ZIP of texture folders ► train ► confusion matrix ► predict an
unseen tile with the taught classes; and the /teach and /predict_with_head endpoints.
Screenshots go to artifacts/ (gitignored)."""

from __future__ import annotations

from pathlib import Path

import pytest
from teach_data import png, texture_tiles, texture_zip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from browser_kit import browser_page, shot  # noqa: E402 (no chromium: skipped)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teach-browser")
    (tmp / "textures.zip").write_bytes(texture_zip(per_class=5))
    tile = next(t for t in texture_tiles(per_class=7) if t[1] == "gravel_6.png")[2]
    (tmp / "unseen_gravel.png").write_bytes(png(tile))
    return tmp


def test_zip_train_confusion_and_predict_with_the_taught_classes(shared_app, files):
    with browser_page(shared_app.url, timeout_ms=240_000) as page:
        page.locator("#mk-model-line", has_text="efficientnet_lite0").wait_for()
        page.get_by_role("tab", name="Teach it my classes").click()
        page.locator("#mk-teach-zip input[type=file]").set_input_files(str(files / "textures.zip"))
        counts = page.locator("#mk-teach-counts")
        page.wait_for_function(
            "() => document.querySelector('#mk-teach-counts').innerText.includes('gravel')"
        )
        assert "brick 5" in counts.inner_text() and "grass 5" in counts.inner_text()
        page.locator("#mk-teach-train").click()
        page.locator("#mk-teach-answer", has_text="of every 100").wait_for()
        assert "guessing would get 33" in page.locator("#mk-teach-answer").inner_text()
        page.get_by_text("Details: the numbers").click()  # the statistics wait there
        page.locator("#mk-teach-confusion .js-plotly-plot").wait_for()
        summary = page.locator("#mk-teach-summary").inner_text()
        assert "Out-of-fold accuracy" in summary and "chance 33.3%" in summary
        keep = page.locator("#mk-teach-keep").inner_text()  # the head and its code, in sight
        assert "3classes\n.safetensors" in keep and "3classes-predict\n.py" in keep
        ticks = page.locator("#mk-teach-confusion .xtick text").all_text_contents()
        assert {"brick", "grass", "gravel"} <= set(ticks)
        shot(page, "teach-01-trained")

        page.locator("#mk-teach-image input[type=file]").set_input_files(
            str(files / "unseen_gravel.png")
        )
        page.locator("#mk-teach-predict").click()
        page.locator("#mk-teach-chart .js-plotly-plot").wait_for()
        labels = page.locator("#mk-teach-chart .yaxislayer-above .ytick text").all_text_contents()
        assert labels[-1] == "gravel"  # plotly lists ticks bottom-up: the best is last
        assert set(labels) <= {"brick", "grass", "gravel"}
        page.get_by_text("Answered by the taught head").wait_for()
        assert "Traceback" not in page.content()
        shot(page, "teach-02-predicted")


def test_teach_and_predict_with_head_endpoints(shared_app, files):
    from gradio_client import Client, handle_file

    client = Client(shared_app.url, verbose=False)
    metrics, head_file = client.predict(
        handle_file(str(files / "textures.zip")), "efficientnet_lite0", True, "auto", "none",
        api_name="/teach",
    )  # fmt: skip
    assert metrics["classes"] == ["brick", "grass", "gravel"] and metrics["cv_accuracy"] >= 0.8
    assert Path(head_file).name.endswith(".safetensors")
    answer = client.predict(
        handle_file(str(files / "unseen_gravel.png")), handle_file(head_file), 3,
        api_name="/predict_with_head",
    )  # fmt: skip
    assert answer["predictions"][0]["label"] == "gravel" and len(answer["predictions"]) == 3
    with pytest.raises(Exception, match="holds no modelkit head|taught head"):
        client.predict(handle_file(str(files / "unseen_gravel.png")),
                       handle_file(str(files / "unseen_gravel.png")), 3,
                       api_name="/predict_with_head")  # fmt: skip
