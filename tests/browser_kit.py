"""What the browser tests share: Debian chromium through Playwright (the test module is skipped
when either is missing), the app started for them, a page on it, and screenshots in artifacts/
(gitignored).

    from browser_kit import app_page, browser_page, shot   # in a test module, at the top

    with app_page(tmp) as (server, page): ...     # the app in tmp (offline) and a page on it
    with browser_page(server.url) as page: ...    # a page on an app started otherwise
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from app_server import ASSETS, ROOT, AppServer, start_app

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Debian chromium is not installed (/usr/bin/chromium); ./run.sh test installs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")

ARTIFACTS = ROOT / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}
__all__ = ["ASSETS", "ARTIFACTS", "app_page", "browser_page", "shot", "upload"]


@contextmanager
def browser_page(url: str, timeout_ms: int = 120_000, viewport: dict | None = None) -> Iterator:
    """A chromium page open on ``url`` (``viewport``: its size, 1400 x 1000 unless given);
    every wait on it times out after ``timeout_ms``."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport=viewport or VIEWPORT)
            page.set_default_timeout(timeout_ms)
            page.goto(url)
            yield page
        finally:
            browser.close()


@contextmanager
def app_page(
    tmp: Path, env: dict[str, str] | None = None, timeout_ms: int = 120_000
) -> Iterator[tuple[AppServer, object]]:
    """The app started with its folders in ``tmp`` (``env`` added) and a page on it."""
    server = start_app(tmp, env=env)
    try:
        with browser_page(server.url, timeout_ms) as page:
            yield server, page
    finally:
        server.stop()


def shot(page, name: str) -> Path:
    """A full-page screenshot in artifacts/<name>.png."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def upload(page, path: Path | str, channels_text: str) -> None:
    """Replace the form's file with ``path``; wait for its summary ('13 channels × 256 × 256')."""
    page.locator("#mk-upload button[aria-label='Clear']").click()  # the current file goes
    page.locator("#mk-upload input[type=file]").set_input_files(str(path))
    page.get_by_text(channels_text).first.wait_for()
