"""Each task as a new user does it, in chromium at 1366 x 768, from a fresh page: its primary
button is in the first screen, it completes with the number of actions written here (choosing
the task's tab is not counted), its answer starts with a sentence, and no message shown is in
code syntax. Screenshots: artifacts/task-*.png (look at them)."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

from browser_kit import browser_page, shot  # noqa: E402 (no chromium: skipped)

SCREEN = {"width": 1366, "height": 768}
CODE = re.compile(r"\w=\S|\[\d|\(e\.g\. \w+=")  # in_chans=3, channels=[0], (e.g. channels=...


@pytest.fixture(scope="module")
def page(shared_app):
    with browser_page(shared_app.url, timeout_ms=240_000, viewport=SCREEN) as page:
        page.locator("#mk-model-line", has_text="efficientnet_lite0").wait_for()
        yield page


def open_task(page, name: str, button: str) -> None:
    """Choose a task; its primary button must be in the first screen, without scrolling."""
    page.get_by_role("tab", name=name).click()
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator(button).bounding_box()
    assert box is not None and box["y"] + box["height"] <= SCREEN["height"], (name, box)


def no_code_syntax(page) -> None:
    shown = page.locator("#mk-status").inner_text() + " ".join(
        page.locator("[id$='-answer']").all_inner_texts()
    )
    assert not CODE.search(shown), shown
    assert "Traceback" not in page.content()


LISTEN = """() => { window.said = []; new MutationObserver(() => document.querySelectorAll(
    '[role=status][aria-live]').forEach(e => e.textContent && window.said.push(e.textContent)))
    .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def test_1_what_is_in_this_image_takes_one_click(page):
    open_task(page, "What is in this image?", "#mk-run")
    page.evaluate(LISTEN)  # what the page says to screen readers meanwhile
    page.locator("#mk-run").click()  # action 1
    answer = page.locator("#mk-answer")
    answer.get_by_text("It looks most like").wait_for()
    assert "tiger cat" in answer.inner_text()
    page.locator("#mk-chart .js-plotly-plot").wait_for()
    shot(page, "task-1-what-is-in-it")
    page.wait_for_function("() => window.said.includes('Done.')")
    assert not any("common." in text for text in page.evaluate("window.said"))  # a raw key once
    no_code_syntax(page)


def test_2_teach_from_the_example_takes_two(page):
    open_task(page, "Teach it my classes", "#mk-teach-train")
    page.get_by_text("Example: textures").locator("..").get_by_role("button").first.click()  # 1
    page.locator("#mk-teach-counts", has_text="gravel").wait_for()
    page.locator("#mk-teach-train").click()  # action 2
    answer = page.locator("#mk-teach-answer")
    answer.get_by_text("of every 100").wait_for()
    assert "guessing would get 33" in answer.inner_text()
    shot(page, "task-2-teach")
    no_code_syntax(page)


def test_3_a_folder_with_the_taught_classes_takes_two(page):
    open_task(page, "Run a whole folder", "#mk-batch-run")
    page.get_by_text("Example: 24 textures").locator("..").get_by_role("button").first.click()
    page.locator("#mk-batch-run").click()  # action 2 (the taught classes are chosen already)
    answer = page.locator("#mk-batch-answer")
    answer.get_by_text("Labelled").wait_for()
    assert "24 of 24 images" in answer.inner_text()
    assert "taught classes (brick, grass, gravel)" in answer.inner_text()
    page.locator("#mk-batch-map .js-plotly-plot").wait_for()
    shot(page, "task-3-folder")
    no_code_syntax(page)


def test_4_compare_takes_one_click(page):
    open_task(page, "Compare models", "#mk-compare-run")
    page.locator("#mk-compare-run").click()  # action 1
    page.locator("#mk-compare-answer", has_text="efficientnet_lite1").wait_for()
    page.locator("#mk-compare-topk .js-plotly-plot").wait_for()
    shot(page, "task-4-compare")
    no_code_syntax(page)


def test_5_why_this_answer_takes_one_click(page):
    open_task(page, "Why this answer?", "#mk-explain")
    page.locator("#mk-explain-use-head input").uncheck()  # the photo: the model's own classes
    page.locator("#mk-explain").click()  # action 1
    answer = page.locator("#mk-explain-answer")
    answer.get_by_text("rests most on").wait_for()
    page.locator("#mk-explain-bands .js-plotly-plot").wait_for()
    shot(page, "task-5-why")
    no_code_syntax(page)


def test_a_mistake_is_said_in_the_pages_words_and_clears_old_results(page):
    open_task(page, "What is in this image?", "#mk-run")
    page.locator("#mk-settings").click()  # open Model settings
    classes = page.locator("#mk-classes textarea, #mk-classes input").first
    classes.fill("-3")
    classes.press("Tab")
    page.locator("#mk-run").click()
    error = page.locator("#mk-status .mk-error")
    error.wait_for()
    assert "Number of classes -3" in error.inner_text()
    assert page.locator("#mk-answer").inner_text().strip() == ""  # no old answer beside it
    no_code_syntax(page)
    shot(page, "task-6-mistake")
    classes.fill("")
    classes.press("Tab")
    page.locator("#mk-settings").click()  # close it again
