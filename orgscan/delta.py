"""Changes since a previous scan: which findings are new, still open or resolved, per rule.

Findings are matched by rule and resource (a user's ARN, a key's id, the account's root ARN).
A finding that disappeared is only called resolved when its rule could judge it this time: the
rule was evaluated, with the thresholds the baseline used; its account was entered (in full or
in part); for a user or key, the user was not among those that could not be read; for a key
still active, what the rule reads of it (its creation date, its last use) was read; for the
account's root user, its keys were read; and the user's keys were read after the baseline saw
them. A rule the baseline did not evaluate (a 2.0 baseline knew one) has no findings there, so
its findings now are new and none of it is resolved. A user whose keys came from a
credential report generated before the baseline's scan of that account was not looked at
since. Otherwise the finding is unverified, with the reason. (`scan --baseline` re-reads the
baseline's flagged users live, so only `orgscan diff` over a scan made without it meets the
stale-report case.)
"""

from __future__ import annotations

from datetime import datetime

from orgscan.model import (
    AccessKey,
    AccountResult,
    Change,
    Coverage,
    Delta,
    Finding,
    FindingChange,
    FindingState,
    KeySource,
    ResourceType,
    ScanResult,
    ScanStatus,
    UserKeys,
    iso,
)
from orgscan.rules import rule_by_id


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


def _changed_thresholds(baseline: ScanResult, current: ScanResult) -> dict[str, str]:
    """Per rule both runs evaluated with different thresholds, how they changed: a finding gone
    because a limit was raised was not remedied."""
    before = {rule.id: rule.thresholds for rule in baseline.run.rules}
    changed = {}
    for rule in current.run.rules:
        then = before.get(rule.id)
        if then is not None and then != rule.thresholds:
            changed[rule.id] = ", ".join(
                f"{name} {then.get(name)} → {rule.thresholds.get(name)}"
                for name in sorted(then.keys() | rule.thresholds.keys())
                if then.get(name) != rule.thresholds.get(name)
            )
    return changed


def _key_unread(key: AccessKey, needs: frozenset[str]) -> str | None:
    """What a key rule reads of the still-active key that this scan could not read."""
    if key.created_at is None:
        return "the key's creation date could not be read this time"
    if "key_last_use" in needs and (key.last_used_error or key.last_used_source is None):
        why = f" ({key.last_used_error.code})" if key.last_used_error else ""
        return f"the key's last use could not be read this time{why}"
    return None


def _unverified_reason(
    finding: Finding,
    baseline: ScanResult,
    accounts: dict[str, AccountResult],
    users: dict[str, UserKeys],
    evaluated: dict[str, str | None],
) -> str | None:
    """Why the disappearance of `finding` cannot be called resolved; None when it can.
    `evaluated`: the rules of this run, each with how its thresholds changed (None: not)."""
    if finding.rule_id not in evaluated:
        return "its rule was not evaluated this time"
    if changed := evaluated[finding.rule_id]:
        return f"its rule's thresholds changed since the baseline ({changed})"
    account = accounts.get(finding.account_id)
    if account is None:
        return "its account was not listed this time"
    if account.scan_status not in ENTERED:
        why = f": {account.error.code}" if account.error else ""
        return f"its account was not scanned this time ({account.scan_status}{why})"
    if finding.rule_id not in {c.rule_id for c in account.coverage}:
        return "its rule was not evaluated this time"
    try:
        needs = rule_by_id(finding.rule_id).needs
    except KeyError:  # evidence of a rule this orgscan does not know: judged on coverage alone
        needs = frozenset()
    if finding.resource_type is ResourceType.ACCOUNT:
        root = account.root_keys
        if "root_keys" in needs and (root is None or root.present is None):
            why = f" ({root.error.code})" if root and root.error else ""
            return f"the root user's access keys could not be read this time{why}"
        if account.coverage_of(finding.rule_id) is not Coverage.COMPLETE:
            return "the rule could not judge the account this time"
        return None
    user = users.get(finding.arn)
    if user is not None and user.error is not None:
        return f"the user could not be read this time ({user.error.code})"
    if user is not None and finding.resource_type is ResourceType.ACCESS_KEY:
        key = next((k for k in user.access_keys if k.id == finding.access_key_id), None)
        if key is not None and key.active and (unread := _key_unread(key, needs)):
            return unread
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


def _change(
    finding: Finding, change: Change, state: FindingState | None, reason: str | None = None
) -> FindingChange:
    return FindingChange(
        finding.rule_id,
        finding.account_id,
        finding.user_name,
        finding.arn,
        finding.resource_type,
        finding.resource_id,
        change,
        state,
        reason,
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
    changed = _changed_thresholds(baseline, current)
    evaluated = {rule.id: changed.get(rule.id) for rule in current.run.rules}
    changes = [
        _change(f, Change.UNCHANGED if key in before else Change.NEW, f.state)
        for key, f in now.items()
    ]
    for key, f in before.items():
        if key in now:
            continue
        reason = _unverified_reason(f, baseline, accounts, users, evaluated)
        change = Change.RESOLVED if reason is None else Change.UNVERIFIED
        changes.append(_change(f, change, None, reason))
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
