"""Debian's Chromium, driven by selenium through Debian's chromedriver, for tests of report.html.

Both binaries are named by path, so Selenium Manager (which would look for, and could download,
a browser or a driver) never runs: `SE_OFFLINE` forbids it the network should anything reach
it, and the session fails at once if it is called at all. When a binary is missing the test
fails under CI (`CI=true`; `.ci/run` installs `chromium` and `chromium-driver`) and is skipped
elsewhere, with the command that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.selenium_manager import SeleniumManager

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Wide enough for the filters on one line, narrow enough that the wide tables scroll, so the
# accessibility rules about scrolling regions apply to them.
WINDOW = (800, 900)

# Installed before any script of the page runs: the page's Content-Security-Policy violations,
# as the browser reports them to the document.
_RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def require_browser() -> None:
    """Fail under CI, skip elsewhere, when Chromium or its driver is not installed."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not missing:
        return
    message = (
        f"the browser tests need Debian's Chromium and chromedriver; missing {', '.join(missing)}"
        " (apt-get install chromium chromium-driver; .ci/run does)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _never_selenium_manager(*args: Any, **kwargs: Any) -> dict[str, str]:
    raise AssertionError("Selenium Manager was called: it may download a browser or a driver")


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """One headless Chromium session; its console log is kept (`get_log("browser")`)."""
    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",  # containers often have a small /dev/shm
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        patch.setattr(SeleniumManager, "binary_paths", _never_selenium_manager)
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_CSP})
        yield driver
    finally:
        driver.quit()


def open_page(driver: webdriver.Chrome, path: Path) -> None:
    """Load a file as a person opens a saved report; earlier pages' log lines are dropped."""
    driver.get_log("browser")
    driver.get(path.as_uri())


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The console's errors and warnings since the last call (CSP refusals are among them)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] in ("SEVERE", "WARNING")
    ]


def csp_violations(driver: webdriver.Chrome) -> list[str]:
    violations: list[str] = driver.execute_script("return window.__cspViolations")
    return violations
