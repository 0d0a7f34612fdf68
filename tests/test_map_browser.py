"""The task "Map my scene" as a new user does it, in chromium at 1366 x 768, on the shipped
Sentinel-2 example: three classes given by clicks on the scene, mapped, one suggested place
accepted with a click, mapped again; look-alikes of a water spot; a click off the scene refused
in words. Screenshots: artifacts/map-*.png (look at them)."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from browser_kit import browser_page, shot  # noqa: E402 (no chromium: skipped)
from scene_data import CLASSES, TILE, tile_truth  # noqa: E402

SCREEN = {"width": 1366, "height": 768}
# places on the 512 x 512 example (scene pixels): the bay, the fields, the marsh
PLACES = {
    "water": [(480, 400), (470, 300), (300, 480)],
    "vegetation": [(60, 60), (200, 60), (130, 120)],
    "other": [(40, 200), (120, 470), (70, 300)],
}
VIEW = "#mk-map-view img"
# the answer differs from `f` and no progress (gradio's status tracker) is shown in it
DONE_AND_NEW = """f => {
  const el = document.querySelector('#mk-map-answer');
  const busy = el.querySelector('.eta-bar, .progress-level, .meta-text, .meta-text-center');
  return !busy && el.innerText !== f && el.innerText.includes('of the scene');
}"""


@pytest.fixture(scope="module")
def page(shared_app):
    with browser_page(shared_app.url, timeout_ms=240_000, viewport=SCREEN) as page:
        page.locator("#mk-model-line", has_text="efficientnet_lite0").wait_for()
        page.get_by_role("tab", name="Map my scene").click()
        page.locator(VIEW).wait_for()
        yield page


def click_scene(page, x: int, y: int) -> None:
    """Click the scene's picture at scene pixel (x, y) (the picture shows every pixel of the
    512 x 512 example, scaled to fit)."""
    box = page.locator(VIEW).bounding_box()
    natural = page.evaluate(f"() => document.querySelector('{VIEW}').naturalWidth")
    scale = box["width"] / natural
    page.locator(VIEW).click(position={"x": x * scale + scale / 2, "y": y * scale + scale / 2})


def choose_class(page, name: str) -> None:
    box = page.locator("#mk-map-class input").first
    box.fill(name)
    box.press("Enter")


def test_label_by_clicks_map_accept_a_suggestion_and_map_again(page):
    run = page.locator("#mk-map-run").bounding_box()
    assert run["y"] + run["height"] <= SCREEN["height"]  # the button, without scrolling
    counts = page.locator("#mk-map-counts")
    for name, places in PLACES.items():
        choose_class(page, name)
        for i, (x, y) in enumerate(places, 1):
            click_scene(page, x, y)
            counts.get_by_text(re.compile(rf"{name}\*?\*? {i}")).wait_for()
    shot(page, "map-1-examples")
    page.locator("#mk-map-run").click()
    answer = page.locator("#mk-map-answer")
    answer.get_by_text("of the scene").wait_for()
    first = answer.inner_text()
    assert "covers" in first and "Right on" in first
    # the area table is the legend: each class name on its map colour (water blue, ...)
    water = page.locator("#mk-map-areas [role=gridcell]", has_text="water").first
    assert water.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(40, 110, 220)"
    shot(page, "map-2-mapped")

    page.locator("#mk-map-suggest").click()
    counts.get_by_text("worth labelling next").wait_for()
    shot(page, "map-3-suggestions")
    # accept the first suggestion: a click on its number labels it with the class chosen,
    # the one a person would see there (most of the tile's pixels, tests/scene_data.py)
    note = counts.inner_text()
    x, y = (int(v) for v in re.search(r"1 at x (\d+), y (\d+)", note).groups())
    seen = CLASSES[tile_truth()[1][y // TILE, x // TILE]]
    choose_class(page, seen)
    click_scene(page, x, y)
    counts.get_by_text(re.compile(rf"{seen}\*?\*? 4")).wait_for()  # its fourth example
    page.locator("#mk-map-run").click()
    # the old answer stays under the progress bar while the map runs: wait for a new one, done
    page.wait_for_function(DONE_AND_NEW, arg=first)
    again = answer.inner_text()
    assert "covers" in again and "Right on" in again and "%" in again
    shot(page, "map-4-mapped-again")


def test_look_alikes_of_a_water_spot_and_a_click_off_the_scene(page):
    page.locator("#mk-map-mode").get_by_text("find look-alikes").click()
    click_scene(page, 480, 400)
    page.locator("#mk-map-counts", has_text="most like the one clicked").wait_for()
    shot(page, "map-5-look-alikes")
    assert "Traceback" not in page.content()
