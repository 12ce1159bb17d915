"""Changes since a previous scan: which findings are new, still open or resolved.

A finding that disappeared is only called resolved when its user was looked at this time: its
account scanned, and the user not among those that could not be read (in a partly scanned
account). Otherwise nobody looked, and it is reported as unverified instead.
"""

from __future__ import annotations

from orgscan.model import Change, Delta, FindingChange, ScanResult, ScanStatus


class BaselineMismatch(Exception):
    """The baseline is not an earlier scan of the same organization."""


def _scanned(result: ScanResult) -> set[str]:
    """Accounts entered and listed, in full or in part."""
    entered = (ScanStatus.SCANNED, ScanStatus.PARTIAL)
    return {r.account.id for r in result.accounts if r.scan_status in entered}


def compare(baseline: ScanResult, current: ScanResult) -> Delta:
    if baseline.run.organization_id != current.run.organization_id:
        raise BaselineMismatch(
            f"the baseline {baseline.run.id} is of organization {baseline.run.organization_id}, "
            f"this scan is of {current.run.organization_id}"
        )
    before = {(f.rule_id, f.arn): f for f in baseline.findings}
    now = {(f.rule_id, f.arn): f for f in current.findings}
    scanned_now, scanned_before = _scanned(current), _scanned(baseline)
    unread_now = {user.arn for user in current.users if user.error}
    changes = [
        FindingChange(
            f.rule_id,
            f.account_id,
            f.user_name,
            f.arn,
            Change.UNCHANGED if key in before else Change.NEW,
            f.state,
        )
        for key, f in now.items()
    ] + [
        FindingChange(
            f.rule_id,
            f.account_id,
            f.user_name,
            f.arn,
            Change.RESOLVED
            if f.account_id in scanned_now and f.arn not in unread_now
            else Change.UNVERIFIED,
            None,
        )
        for key, f in before.items()
        if key not in now
    ]
    ids_before = {r.account.id for r in baseline.accounts}
    ids_now = {r.account.id for r in current.accounts}
    # A listing that broke off says nothing about the accounts it never reached.
    removed = set() if current.run.errors else ids_before - ids_now
    return Delta(
        baseline_run_id=baseline.run.id,
        baseline_started_at=baseline.run.started_at,
        findings=sorted(changes, key=lambda c: (c.account_id, c.arn, c.rule_id)),
        accounts_added=sorted(ids_now - ids_before),
        accounts_removed=sorted(removed),
        coverage_lost=sorted((scanned_before - scanned_now) & ids_now),
        coverage_gained=sorted((scanned_now - scanned_before) & ids_before),
    )
