"""A scan compared with its baseline: only a scanned account can show a finding resolved."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orgscan.delta import BaselineMismatch, compare
from orgscan.model import Change, ScanStatus
from tests.report_fixtures import scan_result, without_open_findings


def test_findings_gone_from_a_scanned_account_are_resolved_and_new_ones_new():
    baseline = scan_result(complete=True)
    fixed = without_open_findings(scan_result(run_id="20250315T000000Z-2b3c4d5e", complete=True))
    delta = compare(baseline, fixed)
    assert delta.baseline_run_id == baseline.run.id
    assert delta.of(Change.RESOLVED) and not delta.of(Change.NEW)
    assert {c.arn for c in delta.of(Change.RESOLVED)} <= {f.arn for f in baseline.findings}

    back = compare(fixed, baseline)
    assert {c.arn for c in back.of(Change.NEW)} == {c.arn for c in delta.of(Change.RESOLVED)}


def test_a_finding_of_an_account_not_scanned_this_time_is_unverified_not_resolved():
    baseline = scan_result(complete=True)
    arn = baseline.findings[0].arn
    account_id = baseline.findings[0].account_id
    current = without_open_findings(scan_result(complete=True))
    current.accounts = [
        replace(a, scan_status=ScanStatus.FAILED, users=[]) if a.account.id == account_id else a
        for a in current.accounts
    ]
    delta = compare(baseline, current)
    [change] = [c for c in delta.findings if c.arn == arn]
    assert change.change is Change.UNVERIFIED
    assert change.reason
    assert account_id in delta.coverage_lost


def test_a_baseline_of_another_organization_is_refused():
    baseline = scan_result()
    other = scan_result()
    other.run = replace(other.run, organization_id="o-zzzzzzzzzz")
    with pytest.raises(BaselineMismatch, match="o-zzzzzzzzzz"):
        compare(baseline, other)
