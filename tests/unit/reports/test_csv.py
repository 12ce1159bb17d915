"""findings.csv: one row per user, a stable header, no formula a spreadsheet would run."""

from __future__ import annotations

import csv
import io

import pytest

from orgscan.model import ScanResult
from orgscan.reports.csv import HEADER, CsvRenderer, neutralise
from tests.report_fixtures import (
    DEV,
    FORMULA_NAME,
    PARTIAL,
    SANDBOX,
    SCP_DENIAL,
    UNREADABLE_ARN,
    scan_result,
)


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
    )


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
