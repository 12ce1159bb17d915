"""Changes since a previous scan: which findings are new, still open or resolved.

A finding that disappeared is only called resolved when somebody looked: its account was
entered this time (in full or in part), its user was not among those that could not be read,
and the user's keys were read after the baseline saw them. A user whose keys came from a
credential report generated before the baseline's scan of that account was not looked at
since. Otherwise the finding is unverified, with the reason. (`scan --baseline` re-reads the
baseline's flagged users live, so only `orgscan diff` over a scan made without it meets the
stale-report case.)
"""

from __future__ import annotations

from datetime import datetime

from orgscan.model import (
    AccountResult,
    Change,
    Coverage,
    Delta,
    Finding,
    FindingChange,
    KeySource,
    ResourceType,
    ScanResult,
    ScanStatus,
    UserKeys,
    iso,
)


class BaselineMismatch(Exception):
    """The baseline is not an earlier scan of the same organization."""


# Accounts entered and listed, in full or in part.
ENTERED = (ScanStatus.SCANNED, ScanStatus.PARTIAL)


def _scanned(result: ScanResult) -> set[str]:
    return {r.account.id for r in result.accounts if r.scan_status in ENTERED}


def _seen_at(baseline: ScanResult, account_id: str) -> datetime:
    """When the baseline read the account: its own scan time, else (1.0 evidence) the latest
    moment the run could have read it, so that an older report is never taken as newer."""
    for result in baseline.accounts:
        if result.account.id == account_id and result.scanned_at is not None:
            return result.scanned_at
    return baseline.run.finished_at or baseline.run.started_at


def _unverified_reason(
    finding: Finding,
    baseline: ScanResult,
    accounts: dict[str, AccountResult],
    users: dict[str, UserKeys],
) -> str | None:
    """Why the disappearance of `finding` cannot be called resolved; None when it can."""
    account = accounts.get(finding.account_id)
    if account is None:
        return "its account was not listed this time"
    if account.scan_status not in ENTERED:
        why = f": {account.error.code}" if account.error else ""
        return f"its account was not scanned this time ({account.scan_status}{why})"
    if finding.rule_id not in {c.rule_id for c in account.coverage}:
        return "its rule was not evaluated this time"
    if finding.resource_type is ResourceType.ACCOUNT:
        if account.coverage_of(finding.rule_id) is not Coverage.COMPLETE:
            return "the rule could not judge the account this time"
        return None
    user = users.get(finding.arn)
    if user is not None and user.error is not None:
        return f"the user could not be read this time ({user.error.code})"
    if (
        user is not None
        and finding.access_key_id is not None
        and account.coverage_of(finding.rule_id) is Coverage.INCOMPLETE
        and any(k.id == finding.access_key_id and k.active for k in user.access_keys)
    ):
        return "the key is still active, and the rule could not judge all it covers this time"
    if user is None or user.source is not KeySource.CREDENTIAL_REPORT:
        return None  # read live, or gone from ListUsers (deleted): somebody looked
    generated = account.credential_report_generated_at
    seen = _seen_at(baseline, finding.account_id)
    if generated is not None and generated >= seen:
        return None
    when = f"generated {iso(generated)}" if generated else "of unknown age"
    return (
        f"the user's keys come from a credential report {when}, older than the baseline's "
        f"read of the account ({iso(seen)}), and were not re-read live"
    )


def compare(baseline: ScanResult, current: ScanResult) -> Delta:
    if baseline.run.organization_id != current.run.organization_id:
        raise BaselineMismatch(
            f"the baseline {baseline.run.id} is of organization {baseline.run.organization_id}, "
            f"this scan is of {current.run.organization_id}"
        )
    before = {(f.rule_id, f.resource_id): f for f in baseline.findings}
    now = {(f.rule_id, f.resource_id): f for f in current.findings}
    scanned_now, scanned_before = _scanned(current), _scanned(baseline)
    accounts = {r.account.id: r for r in current.accounts}
    users = {u.arn: u for u in current.users}
    changes = [
        FindingChange(
            f.rule_id,
            f.account_id,
            f.user_name,
            f.arn,
            f.resource_type,
            f.resource_id,
            Change.UNCHANGED if key in before else Change.NEW,
            f.state,
        )
        for key, f in now.items()
    ]
    for key, f in before.items():
        if key in now:
            continue
        reason = _unverified_reason(f, baseline, accounts, users)
        change = Change.RESOLVED if reason is None else Change.UNVERIFIED
        changes.append(
            FindingChange(
                f.rule_id,
                f.account_id,
                f.user_name,
                f.arn,
                f.resource_type,
                f.resource_id,
                change,
                None,
                reason,
            )
        )
    ids_before = {r.account.id for r in baseline.accounts}
    ids_now = {r.account.id for r in current.accounts}
    # A listing that broke off says nothing about the accounts it never reached.
    removed = set() if current.run.errors else ids_before - ids_now
    return Delta(
        baseline_run_id=baseline.run.id,
        baseline_started_at=baseline.run.started_at,
        findings=sorted(changes, key=lambda c: (c.account_id, c.arn, c.rule_id, c.resource_id)),
        accounts_added=sorted(ids_now - ids_before),
        accounts_removed=sorted(removed),
        coverage_lost=sorted((scanned_before - scanned_now) & ids_now),
        coverage_gained=sorted((scanned_now - scanned_before) & ids_before),
    )
