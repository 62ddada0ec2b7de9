"""A real headless Chromium (the Debian package, driven by Playwright) against the live server.

Playwright never downloads a browser here: it launches the system ``chromium``. Without it the
browser tests are skipped on a developer machine but FAIL when GEMBUS_REQUIRE_BROWSER=1
(.ci/run sets it), so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "tests" / "artifacts" / "screenshots"
DESKTOP: Any = {"width": 1280, "height": 860}


def browser_required() -> bool:
    return os.environ.get("GEMBUS_REQUIRE_BROWSER", "") in ("1", "true", "yes")


def browser_unavailable(reason: str) -> None:
    """Fail in CI, skip on a developer machine without Chromium."""
    if browser_required():
        pytest.fail(f"{reason} (GEMBUS_REQUIRE_BROWSER=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        browser_unavailable("chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_context(
    browser: Browser, live_server: LiveServer
) -> Iterator[Callable[..., BrowserContext]]:
    """Independent browser profiles (own cookies) for the partners of one test."""
    opened: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(base_url=live_server.base_url, viewport=DESKTOP, **options)
        context.set_default_timeout(10_000)
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def page(new_context: Callable[..., BrowserContext]) -> Page:
    return new_context().new_page()


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Page, str], Path]:
    """Save a full-page PNG to tests/artifacts/screenshots/<name>.png for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
