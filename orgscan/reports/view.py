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
    Finding,
    FindingState,
    ScanResult,
    UserKeys,
)


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


def findings_by_arn(result: ScanResult) -> dict[str, Finding]:
    return {finding.arn: finding for finding in result.findings}


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
    """Accounts that ended far below the configured IAM rate, slowest first."""
    floor = result.run.limits.account_rate_limit * CROWDED_SHARE
    crowded = [a for a in result.accounts if a.rate_at_end is not None and a.rate_at_end < floor]
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
    state: FindingState | None
    exception: ApprovedException | None  # the approval in force, for an excepted finding


def reported_findings(result: ScanResult) -> list[Reported]:
    """Open and excepted findings, then the findings resolved since the baseline."""
    now = [
        Reported(
            f.rule_id,
            f.account_id,
            f.user_name,
            f.arn,
            f.state,
            f.exception if f.state is FindingState.EXCEPTED else None,
        )
        for f in sorted_findings(result)
    ]
    resolved = result.delta.of(Change.RESOLVED) if result.delta else []
    return now + [
        Reported(c.rule_id, c.account_id, c.user_name, c.arn, None, None)
        for c in sorted(resolved, key=lambda c: (c.account_id, c.user_name, c.arn))
    ]


def control_status(result: ScanResult) -> ControlStatus:
    """One rule maps to every control, so all of them share its status."""
    if result.findings_in(FindingState.OPEN):
        return ControlStatus.FAIL
    return ControlStatus.PASS if result.run.complete else ControlStatus.INCOMPLETE


def findings_by_exception(result: ScanResult) -> dict[ApprovedException, list[Finding]]:
    """Findings each exception excepts, or would have excepted had it not expired."""
    covered: dict[ApprovedException, list[Finding]] = {e: [] for e in result.exceptions}
    for finding in sorted_findings(result):
        for exception in (finding.exception, finding.expired_exception):
            if exception is not None:
                covered.setdefault(exception, []).append(finding)
    return covered


def exception_data(exception: ApprovedException) -> dict[str, Any]:
    """An approved exception as SARIF's suppression properties and OCSF's unmapped data show it."""
    return {
        "owner": exception.owner,
        "expires": exception.expires.isoformat(),
        "ticket": exception.ticket,
        "reason": exception.reason,
    }
