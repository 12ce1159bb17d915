"""report.html: the numbers match the evidence, hostile names stay text, nothing loads."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from orgscan import evidence as codec
from orgscan import rules as rules_module
from orgscan.model import Coverage, FindingState, ScanResult, split_ou_path
from orgscan.reports import html as html_module
from orgscan.reports import view
from orgscan.reports.html import HtmlRenderer, template_dirs
from orgscan.reports.view import rule_status
from orgscan.rules import (
    MULTIPLE_ACTIVE_KEYS,
    NOT_ROTATED,
    ROOT_KEY,
    UNUSED,
    load_rules,
    rule_by_id,
    rule_ids,
)
from tests.report_fixtures import (
    CAROL_NEWER,
    DEPLOYER_IN_USE,
    FAILED,
    FORMULA_NAME,
    IMG_NAME,
    MGMT,
    PARTIAL,
    PROD,
    SCP_DENIAL,
    SCRIPT_NAME,
    UNREADABLE_ARN,
    hygiene_result,
    round_trip,
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
        if tag == "td" and "data-status" in a:
            self.page.control_statuses.append(a["data-status"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
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


def test_one_control_cell_per_mapping_of_the_runs_rules(result: ScanResult, page: Page) -> None:
    cells = [a["data-control"] for _, a in page.tags if "data-control" in a]
    # Old evidence evaluated one rule: only its mappings, none of the other rules'.
    assert sorted(cells) == sorted(
        f"{c.framework} {c.version} {c.id}"
        for c in result.controls
        if c.rule == MULTIPLE_ACTIVE_KEYS
    )


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
    deployer = re.search(
        rf'<tr data-rule="{MULTIPLE_ACTIVE_KEYS}" data-account="222222222222".*?</tr>', text, re.S
    )
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
    assert html.count(b"<tr data-rule=") >= 5000
    assert b" onclick=" not in html
    assert len(html) / 5000 < 2000  # bytes per finding row, roughly


# --- Every rule of the run (hygiene_result: all four rules) ---


@pytest.fixture(scope="module")
def hygiene() -> ScanResult:
    return hygiene_result()


@pytest.fixture(scope="module")
def hygiene_html(hygiene: ScanResult) -> str:
    return HtmlRenderer().render(hygiene).decode()


def _rule_parts(html: str) -> dict[str, str]:
    """Each rule's findings part of the page, by rule id, in page order."""
    findings = html[html.index('<section id="findings">') : html.index('<section id="coverage">')]
    pieces = findings.split('data-rule-section="')[1:]
    return {piece[: piece.index('"')]: piece for piece in pieces}


def _tag_attrs(html: str, tag: str, attr: str) -> list[dict[str, str]]:
    page = _parse(html.encode())
    return [a for t, a in page.tags if t == tag and attr in a]


def test_the_summary_per_rule_equals_the_evidence(hygiene: ScanResult, hygiene_html: str) -> None:
    rows = re.findall(
        r'<tr data-rule="([^"]+)">(.*?)</tr>',
        hygiene_html.split('id="rules-table"')[1].split("</table>")[0],
        re.S,
    )
    assert [rule_id for rule_id, _ in rows] == [r.id for r in hygiene.run.rules]
    summary = {s["rule_id"]: s for s in codec.document(hygiene)["summary"]["rules"]}
    for rule_id, row in rows:
        metrics = dict(re.findall(r'data-rule-metric="(\w+)">(\d+)<', row))
        assert metrics == {k: str(summary[rule_id][k]) for k in metrics}, rule_id
        assert set(metrics) == {
            "findings_open",
            "findings_excepted",
            "accounts_failing",
            "accounts_incomplete",
        }
        assert escape(rule_by_id(rule_id).title) in row


def test_the_control_matrix_maps_each_rule_per_framework_version(
    hygiene: ScanResult, hygiene_html: str
) -> None:
    """Each cell holds exactly the rule's controls in that version; a version without one says
    so (CIS v7.0.0 has no one-active-key control)."""
    table = hygiene_html.split('id="controls-table"')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-framework="([^"]+)">(.*?)</tr>', table, re.S)
    versions = {f"{c.framework} {c.version}" for c in hygiene.controls}
    assert {fv for fv, _ in rows} == versions
    for fv, row in rows:
        cells = re.findall(
            r'<td data-rule="([^"]+)" data-status="([^"]+)"[^>]*>(.*?)</td>', row, re.S
        )
        assert [rule_id for rule_id, _, _ in cells] == [r.id for r in hygiene.run.rules]
        for rule_id, status, cell in cells:
            expected = sorted(
                f"{c.framework} {c.version} {c.id}"
                for c in hygiene.controls
                if c.rule == rule_id and f"{c.framework} {c.version}" == fv
            )
            assert sorted(re.findall(r'data-control="([^"]+)"', cell)) == expected
            if expected:
                assert status == str(rule_status(hygiene, rule_id))
            else:
                assert (status, cell.strip()) == ("none", "no equivalent")
    (v7,) = [row for fv, row in rows if fv == "CIS AWS Foundations Benchmark 7.0.0"]
    assert f'data-rule="{MULTIPLE_ACTIVE_KEYS}" data-status="none"' in v7


def test_a_rule_passes_only_where_it_judged_every_account(hygiene: ScanResult) -> None:
    """Per rule: open → FAIL; nothing open and complete everywhere → PASS; nothing open but one
    account not fully judged → INCOMPLETE, though another rule passes in the same run."""
    result = hygiene_result(complete=True)
    result.findings = [f for f in result.findings if f.rule_id == NOT_ROTATED]
    # The unused rule could not read one key's last use in the management account.
    mgmt = next(a for a in result.accounts if a.account.id == MGMT)
    mgmt.coverage = [
        replace(c, coverage=Coverage.INCOMPLETE, gaps=("key AKIA…: last use unknown: Throttling",))
        if c.rule_id == UNUSED
        else c
        for c in mgmt.coverage
    ]
    html = HtmlRenderer().render(round_trip(result)).decode()
    statuses = {
        a["data-rule"]: a["data-status"]
        for a in _tag_attrs(html, "td", "data-status")
        if a["data-status"] != "none"
    }
    assert statuses == {
        MULTIPLE_ACTIVE_KEYS: "PASS",
        NOT_ROTATED: "FAIL",
        UNUSED: "INCOMPLETE",
        ROOT_KEY: "PASS",
    }
    parts = _rule_parts(html)
    assert "last use unknown: Throttling" in parts[UNUSED]
    assert "never PASS" in parts[UNUSED] and "never PASS" not in parts[ROOT_KEY]
    assert "not a clean result" in parts[UNUSED]


def test_each_rule_has_its_findings_part_with_only_its_findings(
    hygiene: ScanResult, hygiene_html: str
) -> None:
    parts = _rule_parts(hygiene_html)
    assert list(parts) == [r.id for r in hygiene.run.rules]
    for rule_id, part in parts.items():
        rule = rule_by_id(rule_id)
        for text in (rule.title, rule.full_description, rule.remediation.summary, rule.severity):
            assert escape(text) in part, (rule_id, text)
        rows = re.findall(r'<tr data-rule="([^"]+)"', part)
        own = [f for f in hygiene.findings if f.rule_id == rule_id]
        assert rows == [rule_id] * len(own) and own
        for f in own:
            assert escape(f.resource_id) in part


def test_a_key_finding_shows_the_key_its_user_and_its_last_use_with_source_and_age(
    hygiene_html: str,
) -> None:
    part = _rule_parts(hygiene_html)[UNUSED]
    row = re.search(r'<tr data-rule="[^"]+" data-account="444444444444".*?</tr>', part, re.S)
    assert row
    text = re.sub(r"<[^>]+>", " ", row.group(0))
    for expected in (
        "AKIASANDBOXADMIN0001",
        "@admin",
        "arn:aws:iam::444444444444:user/@admin",
        "created 2024-02-08",
        "(400 days before the scan)",
        "never used",
        "from the credential report, as of 2025-03-14 08:30:00 UTC (1 h before the scan)",
    ):
        assert expected in text, expected
    used = re.search(
        r'<tr data-rule="[^"]+" data-account="222222222222".*?</tr>',
        _rule_parts(hygiene_html)[NOT_ROTATED],
        re.S,
    )
    assert used and "last used 2025-03-13" in used.group(0) and "(1 day" not in used.group(0)
    assert "(24 h before the scan)" in used.group(0)


def test_the_root_finding_names_the_account_and_its_root_arn(hygiene_html: str) -> None:
    part = _rule_parts(hygiene_html)[ROOT_KEY]
    (row,) = re.findall(r"<tr data-rule=.*?</tr>", part, re.S)
    assert f'data-account="{MGMT}"' in row
    assert f"arn:aws:iam::{MGMT}:root" in row and "management" in row
    assert "from the credential report" in row


def test_each_rule_states_its_coverage(hygiene: ScanResult, hygiene_html: str) -> None:
    parts = _rule_parts(hygiene_html)
    for rule in hygiene.run.rules:
        gaps = re.findall(r'data-gap="(\d+)"', parts[rule.id])
        expected = [a.account.id for a in view.rule_gaps(hygiene, rule.id)]
        assert gaps == expected and FAILED in gaps, rule.id
    # The unreadable user keeps the user and key rules from judging its account, not the root rule.
    assert PARTIAL in re.findall(r'data-gap="(\d+)"', parts[UNUSED])
    assert PARTIAL not in re.findall(r'data-gap="(\d+)"', parts[ROOT_KEY])
    assert escape(SCP_DENIAL.message) in parts[UNUSED]


def test_the_exceptions_register_names_the_rules_each_covers(hygiene_html: str) -> None:
    rows = re.findall(r"<tr[^>]*data-expired=.*?</tr>", hygiene_html, re.S)
    (rotation,) = [r for r in rows if "SEC-1002" in r]
    assert escape(rule_by_id(NOT_ROTATED).title) in rotation
    assert escape(rule_by_id(MULTIPLE_ACTIVE_KEYS).title) not in rotation
    assert "AKIADEPLOYER00INUSE1" in rotation and "AKIADEPLOYER00NEWER2" in rotation
    (older,) = [r for r in rows if "SEC-1001" in r]
    assert escape(rule_by_id(MULTIPLE_ACTIVE_KEYS).title) in older


def test_the_rule_filter_offers_the_runs_rules_only(hygiene: ScanResult, page: Page) -> None:
    hygiene_page = _parse(HtmlRenderer().render(hygiene))
    offered = [
        a["value"]
        for t, a in hygiene_page.tags
        if t == "option" and a.get("value", "").startswith(("iam-", "root-"))
    ]
    assert offered == [r.id for r in hygiene.run.rules]
    # Old evidence, one rule: one option, one findings part, no other rule named anywhere.
    one = [a["value"] for t, a in page.tags if t == "option" and a.get("value") in rule_ids()]
    assert one == [MULTIPLE_ACTIVE_KEYS]
    for rule in load_rules()[1:]:
        assert rule.title not in page.all_text and rule.id not in page.all_text


def test_no_rule_is_written_into_the_renderer() -> None:
    """Adding a rule is data and a check: the template, the script and the renderer name none."""
    sources = [(d / name) for d in template_dirs() for name in ("report.html.j2", "report.js")]
    texts = [p.read_text() for p in sources if p.is_file()]
    renderer = Path(html_module.__file__).read_text()
    texts.append(renderer)
    for rule in load_rules():
        for text in texts:
            assert rule.id not in text and rule.title not in text
    # Nor does it name one through orgscan.rules' constants.
    constants = [n for n, v in vars(rules_module).items() if isinstance(v, str) and v in rule_ids()]
    assert constants and not [n for n in constants if re.search(rf"\b{n}\b", renderer)]


def test_crowded_accounts_are_shown_in_the_method_section() -> None:
    result = scan_result()
    rate = result.run.limits.account_rate_limit
    crowded, calm, started_low = result.accounts[0], result.accounts[1], result.accounts[2]
    crowded.rate_at_end, crowded.throttles = rate * 0.3, 17
    calm.rate_at_end, calm.throttles = rate * 0.9, 1
    # Started low where others found crowding, never throttled itself: not shown as crowded.
    started_low.rate_at_end, started_low.throttles = rate * 0.3, 0
    text = HtmlRenderer().render(result).decode()
    table = re.search(r'<table id="crowded-accounts-table">.*?</table>', text, re.S)
    assert table
    assert crowded.account.id in table.group(0) and ">17<" in table.group(0)
    assert calm.account.id not in table.group(0)
    assert started_low.account.id not in table.group(0)
    # Read back from the evidence, the same accounts are crowded.
    again = codec.decode(json.loads(codec.encode(result)), "findings.json")
    assert [(a.account.id, a.throttles) for a in again.accounts if a.rate_at_end] == [
        (crowded.account.id, 17),
        (calm.account.id, 1),
        (started_low.account.id, 0),
    ]


def test_no_crowded_section_when_every_account_kept_its_rate() -> None:
    result = scan_result()
    html = HtmlRenderer().render(result)
    assert b"crowded-accounts-table" not in html
    # The method section says whether the rates adapted.
    assert b"fixed rates" in html and b"each rate a ceiling" not in html
    result.run.limits = replace(result.run.limits, adaptive_rate=True)
    html = HtmlRenderer().render(result)
    assert b"each rate a ceiling, lowered where AWS throttled" in html
