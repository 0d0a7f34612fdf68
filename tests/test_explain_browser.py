"""The Explain tab in a real browser, on the 13-band Sentinel-2 example with efficientnet_lite0 (its
weights ship offline): band importance with two baselines, Grad-CAM over the composite and its
opacity, another target, integrated gradients, and mistakes answered in words.
Screenshots go to artifacts/ (gitignored)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from browser_kit import ASSETS, browser_page, shot, upload  # noqa: E402 (no chromium: skipped)

from modelkit.explanations.bandsets import band_labels  # noqa: E402

S2 = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
BANDS = "#mk-explain-bands .js-plotly-plot"
MAP = "#mk-explain-map .js-plotly-plot"


@pytest.fixture(scope="module")
def page(shared_app):
    with browser_page(shared_app.url, timeout_ms=180_000) as page:
        page.locator("#mk-model-line", has_text="efficientnet_lite0").wait_for()
        upload(page, ASSETS / "sentinel2_13band.tif", "13 channels × 256 × 256")
        page.get_by_role("tab", name="Why this answer?").click()
        page.get_by_text("More choices").click()  # target, baseline, band names, steps
        page.get_by_text("Details", exact=True).click()  # the notes
        yield page


def pick(page, elem_id: str, option: str) -> None:
    """Choose ``option`` (its label, or the start of it) in the dropdown ``elem_id``."""
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option).first.click()


def plot_data(page, selector: str) -> list[dict]:
    """The traces plotly drew in ``selector`` (what the figure holds, not a guess from pixels)."""
    return page.evaluate(
        """sel => document.querySelector(sel)._fullData.map(t => ({type: t.type,
        x: t.x && Array.from(t.x), y: t.y && Array.from(t.y), opacity: t.opacity,
        rows: t.z ? t.z.length : 0, zmin: t.zmin, zmax: t.zmax}))""",
        selector,
    )


# what both charts show now (their text and values), to see that an answer came in
STATE = f"""() => ['{BANDS}', '{MAP}'].map(sel => {{ const p = document.querySelector(sel);
    if (!p || !p._fullData) return '';
    return JSON.stringify([p.textContent, p._fullData.map(t => [t.y && Array.from(t.y),
                                                              t.opacity])]);
    }}).join('|')"""


def explain(page, title_part: str) -> None:
    """Click Explain; wait until the charts changed and the map shows ``title_part``."""
    before = page.evaluate(STATE)
    page.locator("#mk-explain").click()
    page.wait_for_function(
        f"""([before, part]) => {{ const now = ({STATE})(), map = document.querySelector('{MAP}');
        return now !== before && !!map?.textContent.includes(part); }}""",
        arg=[before, title_part],
    )


def test_band_importance_one_bar_per_band_in_band_order(page):
    explain(page, "no map")  # band importance draws no map, and says so
    bars = plot_data(page, BANDS)[0]
    assert bars["type"] == "bar" and bars["x"] == band_labels(S2, 13)
    assert bars["x"][8] == "B8A narrow NIR (865 nm)" and len(bars["y"]) == 13
    assert page.locator(f"{BANDS} .bars .point").count() == 13
    ticks = page.locator(f"{BANDS} .xtick text").all_text_contents()
    assert ticks == bars["x"]  # every band named on the axis, in the file's order
    assert "Band importance for" in page.locator(BANDS).inner_text()
    notes = page.locator("#mk-explain-notes").inner_text()
    assert "each band's mean over the image" in notes and "repeating its RGB filters" in notes
    shot(page, "explain-01-bands")

    # another baseline: the same bands, other values, and the note names it
    pick(page, "mk-explain-baseline", "zero")
    explain(page, "no map")
    page.locator("#mk-explain-notes", has_text="zero after normalisation").wait_for()
    zero = plot_data(page, BANDS)[0]
    assert zero["x"] == bars["x"] and zero["y"] != bars["y"]
    pick(page, "mk-explain-baseline", "mean: each")


def test_gradcam_over_the_composite_and_its_opacity(page):
    pick(page, "mk-explain-method", "Grad-CAM")
    explain(page, "Grad-CAM: ")
    image, heat = plot_data(page, MAP)
    assert image["type"] == "image" and heat["type"] == "heatmap"
    assert heat["rows"] == 256 and heat["opacity"] == 0.5  # the whole 256-pixel scene
    assert len(plot_data(page, BANDS)[0]["y"]) == 13
    assert "Grad-CAM at level" in page.locator("#mk-explain-notes").inner_text()
    assert "estimated score drop" in page.locator(BANDS).text_content()  # the bars' own measure
    shot(page, "explain-02-gradcam")

    # the opacity redraws the map at once, without explaining again
    box = page.locator("#mk-explain-opacity input[type=number]")
    box.fill("0.9")
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelector('{MAP}')._fullData[1].opacity === 0.9")
    shot(page, "explain-03-opacity")

    # another target class: the map and the bars answer for it
    target = page.locator("#mk-explain-target input").first
    top = target.input_value()
    target.click()
    second = page.get_by_role("option").nth(1)
    label = second.inner_text().rsplit(" (", 1)[0]
    second.click()
    explain(page, f"Grad-CAM: {label}")
    assert label not in top and f"'{label}'" in page.locator(BANDS).inner_text()
    assert plot_data(page, MAP)[1]["opacity"] == 0.9  # the chosen opacity stays


def test_integrated_gradients_map_is_signed(page):
    pick(page, "mk-explain-method", "Integrated gradients")
    explain(page, "Integrated gradients: ")
    heat = plot_data(page, MAP)[1]
    assert heat["rows"] == 256 and heat["zmin"] == -heat["zmax"] < 0  # signed, around zero
    assert "add up to the score change" in page.locator("#mk-explain-notes").inner_text()
    shot(page, "explain-04-integrated-gradients")


def test_mistakes_are_answered_in_words(page):
    error = page.locator("#mk-status .mk-error")
    pick(page, "mk-explain-method", "Grad-CAM")
    pick(page, "mk-explain-preset", "Landsat-8 OLI (bands 1-7)")  # 7 names for 13 bands
    page.locator("#mk-explain").click()
    error.wait_for()
    assert "has 7 bands but the model sees 13" in error.inner_text()
    shot(page, "explain-05-error")
    pick(page, "mk-explain-preset", "names from the file")
    page.locator("#mk-explain-use-head input").check()  # no head taught yet
    page.locator("#mk-explain").click()
    page.locator("#mk-status .mk-error", has_text="No taught head yet").wait_for()
    assert "Traceback" not in page.content()
    page.locator("#mk-explain-use-head input").uncheck()
    page.locator("#mk-explain").click()  # the page still works: the error line goes
    page.wait_for_function("() => !document.querySelector('#mk-status .mk-error')")
