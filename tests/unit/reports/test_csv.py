"""findings.csv: a row per finding and per user without one, a stable header, filterable by
rule, no formula a spreadsheet would run."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from orgscan.model import ScanResult
from orgscan.reports.csv import HEADER, CsvRenderer, neutralise
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, ROOT_KEY, UNUSED
from tests.report_fixtures import (
    CAROL_OLDER,
    DEPLOYER_IN_USE,
    DEV,
    FORMULA_NAME,
    MGMT,
    PARTIAL,
    PROD,
    SANDBOX,
    SCP_DENIAL,
    UNREADABLE_ARN,
    hygiene_result,
    scan_result,
)

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture(scope="module")
def result() -> ScanResult:
    return scan_result()


@pytest.fixture(scope="module")
def data(result: ScanResult) -> bytes:
    return CsvRenderer().render(result)


@pytest.fixture(scope="module")
def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_header_is_the_documented_one(data: bytes) -> None:
    assert data.split(b"\r\n", 1)[0].decode() == ",".join(HEADER)
    assert HEADER == (
        "account_id",
        "account_name",
        "ou_path",
        "user_name",
        "arn",
        "key_count",
        "active_key_count",
        "state",
        "exception_owner",
        "exception_expires",
        "exception_ticket",
        "account_scan_status",
        "error",
        "account_state",
        "rule_id",
        "severity",
        "resource_type",
        "resource_id",
        "access_key_id",
        "detail",
        "key_created_at",
        "key_last_used_at",
        "key_last_used_source",
        "key_last_used_as_of",
        "rules_incomplete",
    )
    # The README documents the header as it is, in order.
    assert "`" + ", ".join(HEADER) + "`" in " ".join(README.read_text(encoding="utf-8").split())


def test_one_row_per_user_including_passing_ones(
    result: ScanResult, rows: list[dict[str, str]]
) -> None:
    assert len(rows) == len(result.users) == 10
    assert sorted(r["arn"] for r in rows) == sorted(u.arn for u in result.users)
    assert [(r["account_id"], r["user_name"]) for r in rows] == sorted(
        (r["account_id"], r["user_name"]) for r in rows
    )


def test_states_and_counts(rows: list[dict[str, str]]) -> None:
    by_user = {r["user_name"]: r for r in rows}
    assert by_user["deployer"]["state"] == "open"
    assert by_user["ci-runner"]["state"] == "excepted"
    assert by_user["reporting"]["state"] == "pass"
    assert (by_user["reporting"]["key_count"], by_user["reporting"]["active_key_count"]) == (
        "2",
        "1",
    )
    assert by_user["no-keys"]["key_count"] == "0"
    assert sum(r["state"] == "open" for r in rows) == 3
    assert {r["account_scan_status"] for r in rows if r["account_id"] != PARTIAL} == {"scanned"}


def test_an_unreadable_user_is_an_error_row_never_a_pass(rows: list[dict[str, str]]) -> None:
    by_arn = {r["arn"]: r for r in rows}
    vendor = by_arn[UNREADABLE_ARN]
    assert vendor["state"] == "error"
    assert (vendor["key_count"], vendor["active_key_count"]) == ("", "")
    assert vendor["error"] == f"{SCP_DENIAL.code}: {SCP_DENIAL.message}"
    assert vendor["account_scan_status"] == "partial"
    # The account's readable user is evidence as usual, counted apart by its account's status.
    builder = next(r for r in rows if r["user_name"] == "builder")
    assert (builder["state"], builder["active_key_count"], builder["error"]) == ("pass", "1", "")
    assert builder["account_scan_status"] == "partial"


def test_account_state_column(rows: list[dict[str, str]]) -> None:
    # A closing account is scanned and its keys still work: its users say so.
    states = {r["account_id"]: r["account_state"] for r in rows}
    assert states[SANDBOX] == "PENDING_CLOSURE"
    assert states[DEV] == "ACTIVE"


def test_exception_columns(rows: list[dict[str, str]]) -> None:
    by_user = {r["user_name"]: r for r in rows}
    ci = by_user["ci-runner"]
    assert (ci["exception_owner"], ci["exception_expires"], ci["exception_ticket"]) == (
        "platform-team@example.com",
        "2099-12-31",
        "SEC-1001",
    )
    # An open user whose approval lapsed names it; the state says it no longer applies.
    carol = by_user["carol"]
    assert (carol["state"], carol["exception_ticket"], carol["account_id"]) == (
        "open",
        "SEC-0999",
        DEV,
    )
    assert by_user["deployer"]["exception_owner"] == ""


def test_formula_injection_neutralised(rows: list[dict[str, str]]) -> None:
    sandbox = [r for r in rows if r["account_id"] == SANDBOX]
    assert {r["account_name"] for r in sandbox} == {"'" + FORMULA_NAME}
    admin = next(r for r in sandbox if r["user_name"].endswith("@admin"))
    assert admin["user_name"] == "'@admin"
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2", "'-2"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise(cell: str, expected: str) -> None:
    assert neutralise(cell) == expected


def test_deterministic(result: ScanResult, data: bytes) -> None:
    assert CsvRenderer().render(result) == data


# --- Every rule (hygiene_result: all four rules) ---


@pytest.fixture(scope="module")
def hygiene() -> ScanResult:
    return hygiene_result()


@pytest.fixture(scope="module")
def hygiene_rows(hygiene: ScanResult) -> list[dict[str, str]]:
    data = CsvRenderer().render(hygiene).decode("utf-8")
    return list(csv.DictReader(io.StringIO(data, newline="")))


def test_a_filter_on_rule_id_gives_each_rules_findings(
    hygiene: ScanResult, hygiene_rows: list[dict[str, str]]
) -> None:
    for settings in hygiene.run.rules:
        findings = [f for f in hygiene.findings if f.rule_id == settings.id]
        rows = [r for r in hygiene_rows if r["rule_id"] == settings.id]
        assert findings, settings.id
        assert sorted((r["resource_id"], r["state"], r["detail"]) for r in rows) == sorted(
            (f.resource_id, str(f.state), f.detail) for f in findings
        )
    assert {r["rule_id"] for r in hygiene_rows} == {s.id for s in hygiene.run.rules} | {""}


def test_every_user_without_a_finding_keeps_one_row(
    hygiene: ScanResult, hygiene_rows: list[dict[str, str]]
) -> None:
    flagged = {f.arn for f in hygiene.findings}
    quiet = [r for r in hygiene_rows if r["rule_id"] == ""]
    assert sorted(r["arn"] for r in quiet) == sorted(
        u.arn for u in hygiene.users if u.arn not in flagged
    )
    assert {r["state"] for r in quiet} == {"pass", "error"}
    assert {r["arn"] for r in hygiene_rows} >= {u.arn for u in hygiene.users}
    # Rows stay sorted by account and user; a user's findings follow the run's rule order.
    keys = [(r["account_id"], r["user_name"].lstrip("'"), r["arn"]) for r in hygiene_rows]
    assert keys == sorted(keys)
    order = [s.id for s in hygiene.run.rules]
    deployer = [r["rule_id"] for r in hygiene_rows if r["user_name"] == "deployer"]
    assert deployer == sorted(deployer, key=order.index) and len(deployer) == 3


def test_a_key_finding_carries_its_keys_evidence(hygiene_rows: list[dict[str, str]]) -> None:
    by_rule_key = {(r["rule_id"], r["access_key_id"]): r for r in hygiene_rows}
    rotation = by_rule_key[("iam-access-key-not-rotated", DEPLOYER_IN_USE)]
    assert (rotation["resource_type"], rotation["resource_id"]) == ("access-key", DEPLOYER_IN_USE)
    assert rotation["state"] == "excepted" and rotation["exception_ticket"] == "SEC-1002"
    assert rotation["key_created_at"] == "2024-05-18T09:30:00Z"
    assert rotation["key_last_used_at"] == "2025-03-13T09:30:00Z"
    assert rotation["key_last_used_source"] == "credential-report"
    assert rotation["key_last_used_as_of"] == "2025-03-14T08:30:00Z"
    assert (rotation["account_id"], rotation["severity"]) == (PROD, "medium")
    unused = by_rule_key[(UNUSED, CAROL_OLDER)]
    assert (unused["account_id"], unused["key_last_used_at"]) == (DEV, "")
    assert "never used" in unused["detail"]
    # The user rule's row names no key, and its exception is not the rotation one.
    (user_row,) = [
        r
        for r in hygiene_rows
        if r["rule_id"] == MULTIPLE_ACTIVE_KEYS and r["user_name"] == "deployer"
    ]
    assert (user_row["access_key_id"], user_row["key_created_at"]) == ("", "")
    assert (user_row["state"], user_row["exception_ticket"]) == ("open", "")
    assert user_row["resource_id"] == user_row["arn"]


def test_a_root_finding_names_the_accounts_root(hygiene_rows: list[dict[str, str]]) -> None:
    (root,) = [r for r in hygiene_rows if r["rule_id"] == ROOT_KEY]
    assert (root["account_id"], root["user_name"], root["arn"]) == (
        MGMT,
        "<root_account>",
        f"arn:aws:iam::{MGMT}:root",
    )
    assert (root["resource_type"], root["severity"], root["key_count"]) == (
        "account",
        "critical",
        "",
    )


def test_rules_incomplete_names_the_rules_that_could_not_judge_the_account(
    hygiene_rows: list[dict[str, str]],
) -> None:
    partial = {r["rules_incomplete"] for r in hygiene_rows if r["account_id"] == PARTIAL}
    assert partial == {
        "iam-user-multiple-active-access-keys;iam-access-key-not-rotated;iam-access-key-unused"
    }
    assert {r["rules_incomplete"] for r in hygiene_rows if r["account_id"] != PARTIAL} == {""}


def test_no_formula_in_any_rules_row(hygiene_rows: list[dict[str, str]]) -> None:
    for row in hygiene_rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert "'@admin" in {r["user_name"] for r in hygiene_rows if r["rule_id"] == UNUSED}
