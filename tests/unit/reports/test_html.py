"""report.html: the numbers match the evidence, hostile names stay text, nothing loads."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser

import pytest

from orgscan import evidence as codec
from orgscan.model import FindingState, ScanResult, split_ou_path
from orgscan.reports.html import HtmlRenderer, template_dirs
from tests.report_fixtures import (
    CAROL_NEWER,
    DEPLOYER_IN_USE,
    FORMULA_NAME,
    IMG_NAME,
    PARTIAL,
    PROD,
    SCP_DENIAL,
    SCRIPT_NAME,
    UNREADABLE_ARN,
    scan_result,
    without_open_findings,
)


@dataclass
class Page:
    """What html.parser saw: elements with attributes, text, and a few marked values."""

    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    cards: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, str]] = field(default_factory=list)
    control_statuses: list[str] = field(default_factory=list)

    @property
    def all_text(self) -> str:
        return "".join(self.text)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._in_script = False
        self._card: str | None = None
        self._value = False
        self._control_row = False
        self._badge = False
        self._section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.page.tags.append((tag, a))
        classes = a.get("class", "").split()
        if tag == "script":
            self._in_script = True
        if tag == "section":
            self._section = a.get("id")
        if "data-metric" in a:
            self._card = a["data-metric"]
        if self._card and "value" in classes:
            self._value = True
        if tag == "tr" and self._section == "findings" and "data-state" in a:
            self.page.rows.append(a)
        if tag == "tr" and "data-control" in a:
            self._control_row = True
        if self._control_row and "badge" in classes:
            self._badge = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "tr":
            self._control_row = False
        if tag == "span":
            self._badge = False
        if tag == "div" and self._value:
            self._value = False
            self._card = None

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.page.scripts.append(data)
            return
        self.page.text.append(data)
        if self._value and self._card:
            self.page.cards[self._card] = self.page.cards.get(self._card, "") + data.strip()
        if self._badge:
            self.page.control_statuses.append(data.strip())


def _parse(html: bytes) -> Page:
    parser = _Parser()
    parser.feed(html.decode("utf-8"))
    parser.close()
    return parser.page


@pytest.fixture(scope="module")
def result() -> ScanResult:
    return scan_result()


@pytest.fixture(scope="module")
def html(result: ScanResult) -> bytes:
    return HtmlRenderer().render(result)


@pytest.fixture(scope="module")
def page(html: bytes) -> Page:
    return _parse(html)


def test_cards_equal_the_evidence_summary(result: ScanResult, page: Page) -> None:
    summary = codec.document(result)["summary"]
    assert set(page.cards) == {
        "accounts_scanned",
        "accounts_partial",
        "accounts_failed",
        "accounts_skipped",
        "users",
        "findings_open",
        "findings_excepted",
    }
    for metric, value in page.cards.items():
        assert int(value) == summary[metric], metric
    assert page.cards["findings_open"] == "3"
    # Accounts are skipped by their lifecycle state (or a filter), not by the retired Status.
    assert "by state or filter" in page.all_text


def test_every_finding_is_a_row_and_every_open_arn_is_shown(result: ScanResult, page: Page) -> None:
    assert len(page.rows) == len(result.findings)
    assert sorted(r["data-state"] for r in page.rows) == sorted(
        str(f.state) for f in result.findings
    )
    for finding in result.findings_in(FindingState.OPEN):
        assert finding.arn in page.all_text


def test_hostile_account_names_render_as_text(html: bytes, page: Page) -> None:
    assert IMG_NAME in page.all_text
    assert SCRIPT_NAME in page.all_text
    assert FORMULA_NAME in page.all_text
    assert [t for t, _ in page.tags if t == "img"] == []
    assert len([t for t, _ in page.tags if t == "script"]) == 1  # ours, and no data in it
    assert not any("alert(1)" in s for s in page.scripts)
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)
    assert b"<img src=x" not in html
    assert b"<script>alert(1)" not in html
    assert b"&lt;img src=x onerror=alert(1)&gt;" in html


def test_self_contained_nothing_external(page: Page) -> None:
    for tag, attrs in page.tags:
        assert "src" not in attrs, tag
        assert tag != "link"
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs["href"]
    assert page.all_text  # the assertions above ran over a real page


def test_content_security_policy_allows_exactly_the_inline_script(page: Page) -> None:
    (csp,) = [
        a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in csp
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "unsafe-inline" not in csp


def test_incomplete_banner_and_no_control_passes(page: Page) -> None:
    (banner,) = [a for t, a in page.tags if a.get("id") == "scan-status"]
    assert banner["data-complete"] == "false"
    assert "INCOMPLETE" in page.all_text
    assert set(page.control_statuses) == {"FAIL"}


def test_one_control_row_per_mapping(result: ScanResult, page: Page) -> None:
    rows = [a["data-control"] for _, a in page.tags if "data-control" in a]
    assert rows == [f"{c.framework} {c.version} {c.id}" for c in result.controls]


def test_incomplete_without_open_findings_is_incomplete_not_pass() -> None:
    page = _parse(HtmlRenderer().render(without_open_findings(scan_result())))
    assert set(page.control_statuses) == {"INCOMPLETE"}


def test_complete_without_open_findings_passes() -> None:
    page = _parse(HtmlRenderer().render(without_open_findings(scan_result(complete=True))))
    assert set(page.control_statuses) == {"PASS"}
    (banner,) = [a for t, a in page.tags if a.get("id") == "scan-status"]
    assert banner["data-complete"] == "true"


def test_recommended_keys_shown(html: bytes) -> None:
    text = html.decode()
    # The kept key is rendered in the Keep column of its user's row.
    deployer = re.search(r'<tr data-account="222222222222".*?</tr>', text, re.S)
    carol = re.search(r"user/engineering/carol.*?</tr>", text, re.S)
    assert deployer and carol
    assert f'<span class="keep-id">{DEPLOYER_IN_USE}</span>' in deployer.group(0)
    assert f'<span class="keep-id">{CAROL_NEWER}</span>' in carol.group(0)


def test_coverage_lists_every_account_with_its_reason(
    result: ScanResult, page: Page, html: bytes
) -> None:
    rows = [a for t, a in page.tags if t == "tr" and "data-scan" in a]
    assert sorted(r["data-account"] for r in rows) == sorted(a.account.id for a in result.accounts)
    assert rows[0]["data-scan"] == "failed"  # failed accounts first
    assert "AccessDenied" in page.all_text
    assert "account state is SUSPENDED" in page.all_text
    # The lifecycle state has its own column, a closing account's included.
    text = html.decode()
    sandbox = re.search(r'<tr data-account="444444444444" data-scan.*?</tr>', text, re.S)
    assert sandbox and "<td>PENDING_CLOSURE</td>" in sandbox.group(0)
    assert "<th>Account state</th>" in text


def test_a_partly_scanned_account_is_counted_apart_and_names_its_unreadable_users(
    html: bytes, page: Page
) -> None:
    assert page.cards["accounts_partial"] == "1"
    assert page.cards["accounts_failed"] == "1"
    rows = [a for t, a in page.tags if t == "tr" and "data-scan" in a]
    assert [r["data-scan"] for r in rows[:2]] == ["failed", "partial"]
    assert rows[1]["data-account"] == PARTIAL
    (unreadable,) = [a["data-unreadable"] for _, a in page.tags if "data-unreadable" in a]
    assert unreadable == UNREADABLE_ARN
    assert SCP_DENIAL.message in page.all_text
    assert b"<b>vendor</b>" not in html  # AWS's message and the user's name stay text
    assert "1 account could be scanned only in part" in page.all_text
    # The controls table counts partly scanned accounts in a column of their own.
    assert "Accounts partly scanned" in page.all_text
    # The unreadable user is no finding; its readable neighbour is not one either.
    assert [r for r in page.rows if r["data-account"] == PARTIAL] == []


def test_exceptions_register_marks_expired_and_shows_coverage(page: Page) -> None:
    rows = [a for t, a in page.tags if t == "tr" and "data-expired" in a]
    assert sorted(r["data-expired"] for r in rows) == ["false", "false", "true"]
    assert "SEC-0999" in page.all_text
    assert "No finding matched" in page.all_text  # the unused exception


def test_provenance(result: ScanResult, page: Page) -> None:
    text = page.all_text
    for value in (
        result.run.config_digest,
        result.run.caller_arn,
        result.run.id,
        "exclude_accounts: 999999999999 is not in the organization",
        hashlib.sha256(codec.encode(result)).hexdigest(),
    ):
        assert value in text


def test_filter_options_are_escaped_data_attributes(html: bytes) -> None:
    assert b'data-account="333333333333"' in html
    assert b"&#34;&gt;&lt;script&gt;" in html  # the script-named account, inside an <option>


def test_the_ou_filter_offers_escaped_ou_names_and_their_real_ancestors() -> None:
    r"""An OU named `Legacy/Old` is `Root/Legacy\/Old`: the filter offers it and `Root`, never a
    `Root/Legacy\` cut at the escaped slash."""
    result = scan_result()
    result.accounts = [
        replace(a, account=replace(a.account, ou_path="Root/Legacy\\/Old"))
        if a.account.id == PROD
        else a
        for a in result.accounts
    ]
    html = HtmlRenderer().render(result).decode()
    select = re.search(r'<select id="f-ou">(.*?)</select>', html, re.S)
    assert select is not None
    offered = re.findall(r'<option value="([^"]+)"', select.group(1))
    assert "Root/Legacy\\/Old" in offered
    assert "Root/Legacy\\" not in offered and "Root/Legacy" not in offered
    rows = {split_ou_path(r.account.ou_path) for r in result.accounts}
    for path in offered:  # each one an OU, or the ancestor of one, name by name
        names = split_ou_path(path)
        assert any(row[: len(names)] == names for row in rows), path
    # A path orgscan did not write (hand-edited evidence) is offered as it is, not dropped.
    result.accounts = [
        replace(a, account=replace(a.account, ou_path="Root/a\\")) if a.account.id == PROD else a
        for a in result.accounts
    ]
    assert b'<option value="Root/a\\">' in HtmlRenderer().render(result)


def test_template_found_in_the_source_tree() -> None:
    assert any((d / "report.html.j2").is_file() for d in template_dirs())


def test_large_report_stays_lean() -> None:
    """5,000 findings render quickly and every row is one <tr> without inline handlers."""
    base = scan_result()
    data = json.loads(codec.encode(base))
    account = next(a for a in data["accounts"] if a["account"]["id"] == "222222222222")
    template = next(u for u in account["users"] if u["user_name"] == "deployer")
    finding = next(f for f in data["findings"] if f["user_name"] == "deployer")
    for n in range(5000):
        arn = f"arn:aws:iam::222222222222:user/bulk-{n:05d}"
        account["users"].append(template | {"user_name": f"bulk-{n:05d}", "arn": arn})
        data["findings"].append(finding | {"user_name": f"bulk-{n:05d}", "arn": arn})
    big = codec.decode(data, "big")
    html = HtmlRenderer().render(big)
    assert html.count(b"<tr data-account=") >= 5000
    assert b" onclick=" not in html
    assert len(html) / 5000 < 2000  # bytes per finding row, roughly


def test_crowded_accounts_are_shown_in_the_method_section() -> None:
    result = scan_result()
    rate = result.run.limits.account_rate_limit
    crowded, calm = result.accounts[0], result.accounts[1]
    crowded.rate_at_end, crowded.throttles = rate * 0.3, 17
    calm.rate_at_end, calm.throttles = rate * 0.9, 1
    text = HtmlRenderer().render(result).decode()
    table = re.search(r'<table id="crowded-accounts-table">.*?</table>', text, re.S)
    assert table
    assert crowded.account.id in table.group(0) and ">17<" in table.group(0)
    assert calm.account.id not in table.group(0)
    # Read back from the evidence, the same accounts are crowded.
    again = codec.decode(json.loads(codec.encode(result)), "findings.json")
    assert [(a.account.id, a.throttles) for a in again.accounts if a.rate_at_end] == [
        (crowded.account.id, 17),
        (calm.account.id, 1),
    ]


def test_no_crowded_section_when_every_account_kept_its_rate() -> None:
    assert b"crowded-accounts-table" not in HtmlRenderer().render(scan_result())
