"""report.html in a real browser: its filters and sorting used as a person would, its script
allowed by its Content-Security-Policy and nothing else, and the page accessible (axe-core).

Debian's Chromium and chromedriver drive it (see browser.py): one browser session for the
module, the page reloaded from its file for every test. When either binary is missing these
tests FAIL under CI (`CI=true`, where `.ci/run` installs them) and are SKIPPED elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from orgscan.evaluate import evaluate
from orgscan.model import ScanResult, ScanStatus
from orgscan.reports.html import HtmlRenderer
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, rule_by_id
from tests.integration.reports import browser
from tests.integration.reports.browser import chromium, console_errors, csp_violations, open_page
from tests.report_fixtures import (
    CAROL_NEWER,
    DEV,
    IMG_NAME,
    PROD,
    STARTED,
    _account,
    _key,
    _user,
    hygiene_result,
    round_trip,
)

AXE = Path(__file__).parents[2] / "fixtures" / "axe-core" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"  # 4.14.1
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

# An OU whose path starts with another's characters but is not inside it: choosing
# Root/Workloads must not show it.
ARCHIVE = "888888888888"
EVERYONE = {"deployer", "carol", "ci-runner", "bob.smith@corp", "legacy-etl"}


def _result() -> ScanResult:
    """The shared report fixture under all four rules (hostile account names, a rotation
    exception, the management account's root key) plus an account in Root/WorkloadsArchive
    whose one user has two old, never-used keys."""
    base = hygiene_result()
    archive = _account(
        ARCHIVE,
        "archive",
        "Root/WorkloadsArchive",
        ScanStatus.SCANNED,
        [_user(ARCHIVE, "legacy-etl", _key("AKIALEGACYETL0000001"), _key("AKIALEGACYETL0000002"))],
    )
    accounts = [*base.accounts, archive]
    findings = evaluate(accounts, base.run.rules, base.exceptions, "aws", STARTED)
    return round_trip(replace(base, accounts=accounts, findings=findings))


RESULT = _result()
RULES = [rule.id for rule in RESULT.run.rules]
TOTAL = len(RESULT.findings)


def _of(rule_id: str, account: str | None = None) -> int:
    return sum(
        1
        for f in RESULT.findings
        if f.rule_id == rule_id and (account is None or f.account_id == account)
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "report.html"
    path.write_bytes(HtmlRenderer().render(RESULT))
    return path


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    with chromium() as session:
        yield session


@pytest.fixture
def page(driver: webdriver.Chrome, report: Path) -> webdriver.Chrome:
    open_page(driver, report)
    return driver


def _shown(page: webdriver.Chrome, rule_id: str = MULTIPLE_ACTIVE_KEYS) -> list[str]:
    """The names (user, or the root user) of one rule's findings rows a person sees, top to
    bottom: rows the browser lays out (a hidden row, or a row of a hidden part, has no box),
    read in one round trip."""
    names: list[str] = page.execute_script(
        "return Array.from(document.querySelectorAll("
        "'[data-rule-section=\"' + arguments[0] + '\"] table.findings tbody tr'))"
        ".filter(function (r) { return r.getClientRects().length > 0; })"
        ".map(function (r) { return r.querySelector('strong').innerText; });",
        rule_id,
    )
    return names


def _parts_shown(page: webdriver.Chrome) -> list[str]:
    """The rules whose findings part is laid out."""
    shown: list[str] = page.execute_script(
        "return Array.from(document.querySelectorAll('[data-rule-section]'))"
        ".filter(function (s) { return s.getClientRects().length > 0; })"
        ".map(function (s) { return s.getAttribute('data-rule-section'); });"
    )
    return shown


def _part_count(page: webdriver.Chrome, rule_id: str) -> str:
    return page.find_element(By.CSS_SELECTOR, f'[data-rule-section="{rule_id}"] [data-count]').text


def _count(page: webdriver.Chrome) -> str:
    return page.find_element(By.ID, "f-count").text


def _print_note(page: webdriver.Chrome) -> str:
    return page.find_element(By.ID, "f-print-note").text


def _choose(page: webdriver.Chrome, select_id: str, value: str) -> None:
    Select(page.find_element(By.ID, select_id)).select_by_value(value)


def _search(page: webdriver.Chrome) -> WebElement:
    return page.find_element(By.ID, "f-text")


def _clear(field: WebElement) -> None:
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)


def test_the_filter_panel_shows_every_finding_before_anything_is_chosen(
    page: webdriver.Chrome,
) -> None:
    assert page.find_element(By.ID, "finding-filters").is_displayed()
    assert set(_shown(page)) == EVERYONE
    assert _parts_shown(page) == RULES
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "5 findings"
    assert _count(page) == f"Showing {TOTAL} of {TOTAL} findings"
    assert _print_note(page) == ""


def test_the_account_filter_shows_only_that_accounts_findings(page: webdriver.Chrome) -> None:
    _choose(page, "f-account", DEV)
    assert set(_shown(page)) == {"carol", "ci-runner"}
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "2 of 5 findings"
    dev = sum(_of(rule, DEV) for rule in RULES)
    assert _print_note(page) == f"Filtered view: Showing {dev} of {TOTAL} findings."
    _choose(page, "f-account", PROD)
    assert _shown(page) == ["deployer"]
    # The option names the account by its free-text name, shown as text.
    option = page.find_element(By.CSS_SELECTOR, f"#f-account option[value='{PROD}']")
    assert option.text == f"{PROD} · {IMG_NAME}"
    _choose(page, "f-account", "")
    assert set(_shown(page)) == EVERYONE
    assert _print_note(page) == ""


def test_the_ou_filter_covers_the_subtree_and_nothing_beside_it(page: webdriver.Chrome) -> None:
    options = [o.get_attribute("value") for o in Select(page.find_element(By.ID, "f-ou")).options]
    assert options == [
        "",
        "Root",
        "Root/Sandbox",
        "Root/Workloads",
        "Root/Workloads/Dev",
        "Root/Workloads/Prod",
        "Root/WorkloadsArchive",
    ]
    _choose(page, "f-ou", "Root/Workloads")
    assert set(_shown(page)) == {"deployer", "carol", "ci-runner"}
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "3 of 5 findings"
    _choose(page, "f-ou", "Root/Workloads/Prod")
    assert _shown(page) == ["deployer"]
    _choose(page, "f-ou", "Root/WorkloadsArchive")
    assert _shown(page) == ["legacy-etl"]
    _choose(page, "f-ou", "Root")
    assert set(_shown(page)) == EVERYONE


def test_the_state_filter_separates_open_from_excepted(page: webdriver.Chrome) -> None:
    _choose(page, "f-state", "excepted")
    assert _shown(page) == ["ci-runner"]
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "1 of 5 findings"
    _choose(page, "f-state", "open")
    assert set(_shown(page)) == EVERYONE - {"ci-runner"}
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "4 of 5 findings"


def test_the_search_box_matches_what_the_row_shows_as_it_is_typed(page: webdriver.Chrome) -> None:
    field = _search(page)
    field.send_keys("BOB")  # any case
    assert _shown(page) == ["bob.smith@corp"]
    _clear(field)
    assert set(_shown(page)) == EVERYONE
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "5 findings"
    field.send_keys(CAROL_NEWER.lower())  # a key id
    assert _shown(page) == ["carol"]
    _clear(field)
    field.send_keys(f"arn:aws:iam::{ARCHIVE}:user/")  # an ARN
    assert _shown(page) == ["legacy-etl"]
    _clear(field)
    field.send_keys("<script>")  # an account's hostile name is text, and searchable
    assert set(_shown(page)) == {"carol", "ci-runner"}
    field.send_keys("no such user")
    assert _shown(page) == []
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "0 of 5 findings"


def test_filters_combine_and_reset_restores_every_row(page: webdriver.Chrome) -> None:
    _choose(page, "f-account", DEV)
    _choose(page, "f-state", "open")
    assert _shown(page) == ["carol"]
    _search(page).send_keys("ci-runner")
    assert _shown(page) == []
    page.find_element(By.ID, "f-reset").click()
    assert set(_shown(page)) == EVERYONE
    assert _parts_shown(page) == RULES
    assert _part_count(page, MULTIPLE_ACTIVE_KEYS) == "5 findings"
    assert _count(page) == f"Showing {TOTAL} of {TOTAL} findings"
    assert _print_note(page) == ""
    assert _search(page).get_attribute("value") == ""
    for select_id in ("f-rule", "f-account", "f-ou", "f-state"):
        assert Select(page.find_element(By.ID, select_id)).first_selected_option.text.startswith(
            "All "
        )


def test_the_rule_filter_shows_only_that_rules_findings(page: webdriver.Chrome) -> None:
    options = [o.get_attribute("value") for o in Select(page.find_element(By.ID, "f-rule")).options]
    assert options == ["", *RULES]
    _choose(page, "f-rule", NOT_ROTATED)
    assert _parts_shown(page) == [NOT_ROTATED]
    for rule in RULES:
        if rule != NOT_ROTATED:
            assert _shown(page, rule) == [], rule
    assert len(_shown(page, NOT_ROTATED)) == _of(NOT_ROTATED)
    assert _count(page) == f"Showing {_of(NOT_ROTATED)} of {TOTAL} findings"
    assert _print_note(page) == f"Filtered view: Showing {_of(NOT_ROTATED)} of {TOTAL} findings."
    _choose(page, "f-rule", ROOT_KEY)
    assert _parts_shown(page) == [ROOT_KEY]
    assert _shown(page, ROOT_KEY) == ["<root_account>"]
    _choose(page, "f-rule", "")
    assert _parts_shown(page) == RULES
    assert _count(page) == f"Showing {TOTAL} of {TOTAL} findings"


def test_the_rule_filter_combines_with_account_ou_state_and_search(
    page: webdriver.Chrome,
) -> None:
    _choose(page, "f-rule", NOT_ROTATED)
    _choose(page, "f-account", DEV)
    assert _shown(page, NOT_ROTATED) == ["carol"]
    _choose(page, "f-account", "")
    _choose(page, "f-ou", "Root/Workloads")
    assert set(_shown(page, NOT_ROTATED)) == {"deployer", "carol", "builder"}
    _choose(page, "f-state", "excepted")  # the rotation exception covers both deployer keys
    assert _shown(page, NOT_ROTATED) == ["deployer", "deployer"]
    _choose(page, "f-state", "")
    _search(page).send_keys("akiabuilder")  # a key id, any case
    assert _shown(page, NOT_ROTATED) == ["builder"]
    assert _parts_shown(page) == [NOT_ROTATED]
    assert _count(page) == f"Showing 1 of {TOTAL} findings"
    page.find_element(By.ID, "f-reset").click()
    assert _parts_shown(page) == RULES
    assert _count(page) == f"Showing {TOTAL} of {TOTAL} findings"


def test_each_rules_count_follows_the_filters(page: webdriver.Chrome) -> None:
    for rule in RULES:
        n = _of(rule)
        assert _part_count(page, rule) == f"{n} finding{'s' if n != 1 else ''}", rule
    _choose(page, "f-account", DEV)
    for rule in RULES:
        n, here = _of(rule), _of(rule, DEV)
        assert _part_count(page, rule) == f"{here} of {n} finding{'s' if n != 1 else ''}", rule
        assert len(_shown(page, rule)) == here, rule
    assert _count(page) == f"Showing {sum(_of(r, DEV) for r in RULES)} of {TOTAL} findings"


def test_headers_sort_by_click_and_by_keyboard_and_search_still_finds_the_right_rows(
    page: webdriver.Chrome,
) -> None:
    table = f"//table[@id='findings-{MULTIPLE_ACTIVE_KEYS}']"
    user = page.find_element(By.XPATH, f"{table}//th[text()='User']")
    user.click()
    assert _shown(page) == sorted(EVERYONE)
    assert user.get_attribute("aria-sort") == "ascending"
    user.send_keys(Keys.ENTER)
    assert _shown(page) == sorted(EVERYONE, reverse=True)
    assert user.get_attribute("aria-sort") == "descending"
    # Typed before and after a sort: the search must follow the rows to their new places.
    field = _search(page)
    field.send_keys("carol")
    assert _shown(page) == ["carol"]
    user.click()
    _clear(field)
    field.send_keys("bob")
    assert _shown(page) == ["bob.smith@corp"]
    account = page.find_element(By.XPATH, f"{table}//th[text()='Account']")
    account.send_keys(" ")
    assert account.get_attribute("aria-sort") == "ascending"
    assert user.get_attribute("aria-sort") is None
    _clear(field)
    assert _shown(page) == ["deployer", "carol", "ci-runner", "bob.smith@corp", "legacy-etl"]


def test_the_page_runs_with_no_console_error_and_no_csp_violation(
    page: webdriver.Chrome,
) -> None:
    for select_id in ("f-rule", "f-account", "f-ou", "f-state"):
        select = Select(page.find_element(By.ID, select_id))
        for option in select.options:
            select.select_by_value(option.get_attribute("value") or "")
    _search(page).send_keys("a")
    page.find_element(By.ID, "f-reset").click()
    for th in page.find_elements(By.CSS_SELECTOR, "table.findings th.sortable"):
        th.click()
    assert console_errors(page) == []
    assert csp_violations(page) == []
    # The hostile account names stayed text: no element was made of them, no dialog opened.
    assert page.find_elements(By.TAG_NAME, "img") == []
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert.text  # noqa: B018


def test_a_script_the_policy_does_not_allow_is_refused_and_seen(
    driver: webdriver.Chrome, report: Path, tmp_path: Path
) -> None:
    """The checks above can see a violation: one changed byte of the script breaks its hash,
    and the browser refuses it; the table is then complete and plain."""
    html = report.read_bytes()
    assert html.count(b'"use strict";') == 1
    altered = tmp_path / "altered.html"
    altered.write_bytes(html.replace(b'"use strict";', b'"use strict"; ', 1))
    open_page(driver, altered)
    assert any(v.startswith("script-src") for v in csp_violations(driver))
    assert any("Content Security Policy" in line for line in console_errors(driver))
    assert not driver.find_element(By.ID, "finding-filters").is_displayed()
    assert set(_shown(driver)) == EVERYONE


def test_every_scrolling_region_is_named_reached_by_tab_and_scrolled_by_arrow_keys(
    page: webdriver.Chrome,
) -> None:
    """WCAG 2.1.1: a region that scrolls must be reachable and scrollable by keyboard alone."""
    regions: list[WebElement] = page.execute_script(
        "return Array.from(document.querySelectorAll('body *')).filter(function (e) {"
        " var s = getComputedStyle(e); return /auto|scroll/.test(s.overflowX + s.overflowY); });"
    )
    titles = [rule_by_id(rule).title for rule in RULES]
    assert sorted(r.accessible_name for r in regions) == sorted(
        [
            "Summary per rule",
            "Control status",
            "Account coverage",
            "Exceptions register",
            *[f"Findings: {title}" for title in titles],
            *[f"AWS CLI commands: {title}" for title in titles],
        ]
    )
    assert all(r.aria_role == "region" and r.get_attribute("tabindex") == "0" for r in regions)
    coverage = page.find_element(By.CSS_SELECTOR, "#coverage [role=region]")
    # As a keyboard user would: follow the contents' link, which moves where Tab starts from.
    page.find_element(By.CSS_SELECTOR, "nav.toc a[href='#coverage']").send_keys(Keys.ENTER)
    for _ in range(60):
        if page.switch_to.active_element == coverage:
            break
        ActionChains(page).send_keys(Keys.TAB).perform()
    assert page.switch_to.active_element == coverage, "Tab never reached the coverage table"
    assert coverage.value_of_css_property("outline-style") == "solid"  # the page's focus ring
    assert page.execute_script("return arguments[0].scrollLeft", coverage) == 0
    ActionChains(page).send_keys(Keys.ARROW_RIGHT).perform()
    WebDriverWait(page, 5).until(
        lambda d: d.execute_script("return arguments[0].scrollLeft", coverage) > 0,
        "the focused coverage table did not scroll with the arrow key",
    )


def test_axe_core_finds_no_wcag_2_a_or_aa_violation(page: webdriver.Chrome) -> None:
    source = AXE.read_bytes()
    assert hashlib.sha256(source).hexdigest() == AXE_SHA256, "tests/fixtures/axe-core changed"
    page.execute_script(source.decode("utf-8"))
    results = page.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
        ".then(done, function (e) { done({error: String(e)}); });",
        WCAG_A_AA,
    )
    assert "error" not in results, results
    violations = [(v["id"], [n["target"] for n in v["nodes"]]) for v in results["violations"]]
    assert violations == []
    # The rule applied (the wide tables scroll in this window) and passed.
    assert "scrollable-region-focusable" in {rule["id"] for rule in results["passes"]}


def test_without_a_browser_the_tests_fail_under_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium chromium-driver"):
        browser.require_browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=str(tmp_path / "chromium")):
        browser.require_browser()
