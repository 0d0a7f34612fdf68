"""Sensor weights in a real browser: a Sentinel-2 stack suggests SSL4EO-S12 weights; picking one
fills the channel picker and in_chans with the file's bands in the weights' order (matched by
name, whatever the file's order), says so, and a run uses the weights as published; the other
order (weights first, then files with all, missing or unnamed bands) and the user's own pick.
The app reads a sensor checkpoint with the published key layout from a Hugging Face cache made
for the test (random values, offline). Screenshots go to artifacts/ (gitignored)."""

from __future__ import annotations

import pytest
from sensor_files import SHUFFLED, fake_sensor_hub, write_stack

from modelkit.models.sensors import SENTINEL2_L1C

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from browser_kit import ASSETS, app_page, shot, upload  # noqa: E402 (no chromium: skipped)

S12 = "timm/resnet18.ssl4eo_s12_all_moco"
NOTE = "#mk-band-note"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The test's folder: the Hugging Face cache, the stacks (and the app's own folders)."""
    tmp = tmp_path_factory.mktemp("sensor-browser")
    fake_sensor_hub(tmp / "hub", S12)
    write_stack(tmp / "shuffled.tif", SHUFFLED)
    write_stack(tmp / "no_swir.tif", SHUFFLED[:11])  # B11, B12 and SCL left out
    return tmp


@pytest.fixture(scope="module")
def page(files):
    env = {"HF_HUB_CACHE": str(files / "hub")}
    with app_page(files, env=env, timeout_ms=180_000) as (_, page):
        page.locator("#mk-model-line", has_text="efficientnet_lite0").wait_for()
        page.get_by_text("3 channels × 300 × 451").wait_for()  # the example photo is loaded
        page.get_by_text("Model settings", exact=True).click()  # the picker and the note
        yield page


def chips(page) -> list[str]:
    return page.locator("#mk-channels .token span").all_text_contents()


def wait_value(page, elem_id: str, value: str) -> None:
    page.wait_for_function(
        "([id, v]) => document.querySelector(`#${id} input, #${id} textarea`).value === v",
        arg=[elem_id, value],
    )


def note(page, *parts: str) -> str:
    """Wait until the band note holds every part; return it."""
    for part in parts:
        page.locator(NOTE, has_text=part).wait_for()
    return page.locator(NOTE).inner_text()


def test_file_first_then_the_suggested_weights(page, files):
    upload(page, files / "shuffled.tif", "14 channels × 256 × 256")
    use = page.locator("#mk-use-weights input").first
    use.click()
    page.get_by_role("option", name=S12, exact=True).click()
    page.locator("h3", has_text="timm/resnet18").wait_for()  # model, tag and card follow
    page.get_by_text("Bands 13, in this order").wait_for()
    wait_value(page, "mk-tag", "ssl4eo_s12_all_moco")
    text = note(page, "Bands matched by name", "native 13-band weights, no adaptation")
    assert "→ channels 4, 0, 1, 2, 5, 6, 7, 3, 8, 9, 10, 11, 12" in text
    assert "Left out: channel 13 SCL" in text
    wait_value(page, "mk-in-chans", "")  # empty: the model's input follows the 13 picked
    order = [4, 0, 1, 2, 5, 6, 7, 3, 8, 9, 10, 11, 12]
    assert chips(page) == [f"{i}: {SHUFFLED[i]}" for i in order]  # "4: B01", "0: B02", ...
    shot(page, "sensor-01-matched")

    # a run with the form as filled: the weights as published (a head of 2 classes, as these
    # weights have none; the run says so)
    classes = page.locator("#mk-classes input, #mk-classes textarea").first
    classes.fill("2")
    classes.press("Tab")
    page.locator("#mk-run").click()
    page.get_by_text("Details: what was adapted").click()  # what was adapted waits there
    adapted = page.locator("ul", has_text="native 13-band weights (B1, B2")
    adapted.wait_for()
    lines = adapted.locator("li").all_text_contents()
    assert lines[1] == ("native 13-band weights (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, "
                        "B11, B12): no adaptation")  # fmt: skip
    assert "resnet18_sentinel2_all_moco" in lines[0] and lines[2] == "fc: new head for 2 classes"
    assert not any("->" in line for line in lines)  # nothing adapted the first layer
    page.locator("#mk-chart .js-plotly-plot").wait_for()
    shot(page, "sensor-02-run")
    classes.fill("")
    classes.press("Tab")

    # the user's own pick afterwards: B01 goes; the note says what that does, nothing refills it
    page.locator("#mk-channels .token", has_text="4: B01").locator(".token-remove").click()
    note(page, "Your channel pick has 12 channels", "first layer will be adapted")
    wait_value(page, "mk-in-chans", "")
    page.wait_for_timeout(1500)  # time for any refill to arrive (none may)
    assert len(chips(page)) == 12 and chips(page)[0] == "0: B02"


def test_weights_first_then_files(page, files):
    # the shipped 13-band scene: its bands, named, in the weights' order
    upload(page, ASSETS / "sentinel2_13band.tif", "13 channels × 256 × 256")
    note(page, "→ channels 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12; native 13-band weights")
    assert chips(page) == [f"{i}: {b}" for i, b in enumerate(SENTINEL2_L1C)]
    # two bands missing: named, and the picker is left as the upload set it (all, in order)
    upload(page, files / "no_swir.tif", "11 channels × 256 × 256")
    note(page, "missing B11, B12", "left as it is")
    assert chips(page) == []
    shot(page, "sensor-03-missing")
    # no names, but 7 bands: the page takes them as Landsat OLI's (and says so), so the
    # Landsat SR weights match them by name
    upload(page, ASSETS / "landsat8_7band.npy", "7 channels")
    page.locator("#mk-image-info", has_text="they are taken to be Landsat").wait_for()
    note(page, "do not match", "missing B8, B8A")  # the Sentinel-2 weights still chosen
    tag = page.locator("#mk-tag input").first
    tag.click()
    page.get_by_role("option", name="ssl4eo_l_oli_sr_moco", exact=True).click()
    note(page, "Bands matched by name: B1, B2, B3, B4, B5, B6, B7", "native 7-band weights")
    page.get_by_text("Bands 7, in this order").wait_for()  # the card of the chosen tag
    shot(page, "sensor-04-assumed")
    # no weights wanted: no note
    page.locator("label", has_text="Pretrained weights").locator("input").uncheck()
    page.wait_for_function(f"() => !document.querySelector('{NOTE}').innerText.trim()")
    assert "Traceback" not in page.content()
