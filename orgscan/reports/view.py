"""Facts derived from the result that more than one report shows, computed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date
from enum import StrEnum
from typing import Any

from orgscan.model import (
    AccountResult,
    ApprovedException,
    Change,
    Control,
    Coverage,
    Finding,
    FindingState,
    ResourceType,
    ScanResult,
    ScanStatus,
    UserKeys,
)
from orgscan.rules import Rule, rule_by_id


class UserState(StrEnum):
    PASS = "pass"
    OPEN = "open"
    EXCEPTED = "excepted"
    # The user's keys could not be read: neither a pass nor a finding, and its account is
    # partial, so no control over it passes.
    ERROR = "error"


class ControlStatus(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    # Not FAIL, since nothing failed, but never PASS: unscanned accounts may hold failures.
    INCOMPLETE = "INCOMPLETE"


def evaluation_days(result: ScanResult) -> tuple[date, date]:
    """The first and last day exceptions were judged on: each account's on the day it was
    scanned (a resumed run spans days), or in 1.0 evidence the scan's start."""
    start = result.run.started_at
    days = {(a.scanned_at or start).astimezone(UTC).date() for a in result.accounts if a.users}
    first = start.astimezone(UTC).date()
    return min(days, default=first), max(days, default=first)


def user_state(finding: Finding | None, user: UserKeys | None = None) -> UserState:
    if user is not None and user.error is not None:
        return UserState.ERROR
    if finding is None:
        return UserState.PASS
    return UserState.EXCEPTED if finding.state is FindingState.EXCEPTED else UserState.OPEN


def accounts_by_id(result: ScanResult) -> dict[str, AccountResult]:
    return {account.account.id: account for account in result.accounts}


# An account whose IAM rate ended below this share of the configured one was crowded: other
# tools took much of its IAM limit, so it scanned slower than the others.
CROWDED_SHARE = 0.5


def crowded_accounts(result: ScanResult) -> list[AccountResult]:
    """Accounts throttled themselves that ended far below the configured IAM rate, slowest
    first (an account that only started low, where others had found crowding, is not shown)."""
    floor = result.run.limits.account_rate_limit * CROWDED_SHARE
    crowded = [
        a
        for a in result.accounts
        if a.throttles and a.rate_at_end is not None and a.rate_at_end < floor
    ]
    return sorted(crowded, key=lambda a: (a.rate_at_end or 0.0, a.account.id))


def sorted_users(result: ScanResult) -> list[UserKeys]:
    return sorted(result.users, key=lambda u: (u.account_id, u.user_name, u.arn))


def sorted_findings(result: ScanResult) -> list[Finding]:
    return sorted(result.findings, key=lambda f: (f.account_id, f.user_name, f.arn))


@dataclass(frozen=True, slots=True)
class Reported:
    """A finding as the dashboards' formats (OCSF, ASFF) carry it: open or excepted now, or
    resolved since the baseline (`state` None)."""

    rule_id: str
    account_id: str
    user_name: str
    arn: str
    resource_type: ResourceType
    resource_id: str  # with rule_id, the finding's identity across runs
    state: FindingState | None
    exception: ApprovedException | None  # the approval in force, for an excepted finding
    detail: str | None  # the evidence in one line; None for a finding resolved since


def reported_findings(result: ScanResult) -> list[Reported]:
    """Open and excepted findings, then the findings resolved since the baseline."""
    now = [
        Reported(
            f.rule_id,
            f.account_id,
            f.user_name,
            f.arn,
            f.resource_type,
            f.resource_id,
            f.state,
            f.exception if f.state is FindingState.EXCEPTED else None,
            f.detail,
        )
        for f in sorted_findings(result)
    ]
    resolved = result.delta.of(Change.RESOLVED) if result.delta else []
    return now + [
        Reported(
            c.rule_id,
            c.account_id,
            c.user_name,
            c.arn,
            c.resource_type,
            c.resource_id,
            None,
            None,
            None,
        )
        for c in sorted(
            resolved, key=lambda c: (c.account_id, c.user_name, c.arn, c.rule_id, c.resource_id)
        )
    ]


def findings_by_exception(result: ScanResult) -> dict[ApprovedException, list[Finding]]:
    """Findings each exception excepts, or would have excepted had it not expired."""
    covered: dict[ApprovedException, list[Finding]] = {e: [] for e in result.exceptions}
    for finding in sorted_findings(result):
        for exception in (finding.exception, finding.expired_exception):
            if exception is not None:
                covered.setdefault(exception, []).append(finding)
    return covered


def subject(resource_type: ResourceType, user_name: str, arn: str, resource_id: str) -> str:
    """What a finding is about, in words: the user, the key and its user, or the root user."""
    if resource_type is ResourceType.ACCESS_KEY:
        return f"Access key {resource_id} of IAM user {user_name} ({arn})"
    if resource_type is ResourceType.ACCOUNT:
        return f"The root user ({arn})"
    return f"IAM user {user_name} ({arn})"


def exception_text(exception: ApprovedException) -> str:
    """An approved exception in one sentence, as OCSF, ASFF and OSCAL state it."""
    ticket = f", ticket {exception.ticket}" if exception.ticket else ""
    return (
        f"Excepted until {exception.expires.isoformat()} by {exception.owner}{ticket}: "
        f"{exception.reason}"
    )


def exception_data(exception: ApprovedException) -> dict[str, Any]:
    """An approved exception as SARIF's suppression properties and OCSF's unmapped data show it."""
    return {
        "owner": exception.owner,
        "expires": exception.expires.isoformat(),
        "ticket": exception.ticket,
        "reason": exception.reason,
    }


# --- Per rule: the rules a run evaluated, their controls, findings and coverage (SARIF, CSV) ---


def run_rules(result: ScanResult) -> list[Rule]:
    """The rules the run evaluated, in report order: no output lists any other."""
    return [rule_by_id(settings.id) for settings in result.run.rules]


def rule_controls(result: ScanResult, rule_id: str) -> list[Control]:
    """The controls mapped to one rule, in the order the mappings list them."""
    return [control for control in result.controls if control.rule == rule_id]


def findings_by_user(result: ScanResult) -> dict[str, list[Finding]]:
    """Each principal's findings (by its ARN: a user's, or the root's), in the run's rule order,
    then by resource."""
    order = {settings.id: index for index, settings in enumerate(result.run.rules)}
    grouped: dict[str, list[Finding]] = {}
    for finding in sorted(
        result.findings, key=lambda f: (order.get(f.rule_id, len(order)), f.resource_id)
    ):
        grouped.setdefault(finding.arn, []).append(finding)
    return grouped


def incomplete_rules(result: ScanResult, account: AccountResult) -> list[str]:
    """The run's rules that could not judge everything in the account, in report order."""
    return [
        settings.id
        for settings in result.run.rules
        if account.coverage_of(settings.id) is Coverage.INCOMPLETE
    ]


# --- Per rule (issue 11): a rule's status, its controls and where it could not judge. ---


def rule_status(result: ScanResult, rule_id: str) -> ControlStatus:
    """FAIL with an open finding of the rule; PASS only where the rule judged every account in
    scope completely and the run had no error of its own; INCOMPLETE otherwise."""
    if any(f.rule_id == rule_id and f.state is FindingState.OPEN for f in result.findings):
        return ControlStatus.FAIL
    if result.run.errors or result.run.interrupted or rule_gaps(result, rule_id):
        return ControlStatus.INCOMPLETE
    return ControlStatus.PASS


def rule_gaps(result: ScanResult, rule_id: str) -> list[AccountResult]:
    """The accounts in scope (not skipped) where the rule's coverage is not complete."""
    return [
        a
        for a in result.accounts
        if a.scan_status is not ScanStatus.SKIPPED
        and a.coverage_of(rule_id) is not Coverage.COMPLETE
    ]


def run_controls(result: ScanResult) -> list[Control]:
    """The control mappings of the rules this run evaluated, in the evidence's order."""
    evaluated = {rule.id for rule in result.run.rules}
    return [c for c in result.controls if c.rule in evaluated]
