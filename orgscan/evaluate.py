"""The rule and the approved exceptions: users → findings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from fnmatch import fnmatchcase

from orgscan.model import ApprovedException, Finding, FindingState, UserKeys
from orgscan.rules import RULE_ID, SEVERITY


def violates(user: UserKeys) -> bool:
    """More than one key whose Status is Active; inactive keys never count. A user whose keys
    could not be read violates nothing known: it is reported as unreadable, never as a pass."""
    count = user.active_key_count
    return count is not None and count > 1


def exception_matches(exception: ApprovedException, user: UserKeys) -> bool:
    if exception.account != user.account_id:
        return False
    if exception.user.startswith("arn:") or any(ch in exception.user for ch in "*?["):
        return fnmatchcase(user.arn, exception.user)
    return exception.user == user.user_name


def governing_exception(
    exceptions: Iterable[ApprovedException], user: UserKeys, today: date
) -> ApprovedException | None:
    """The user's valid exception on `today`: of several, the longest-lasting one governs."""
    valid = [e for e in exceptions if exception_matches(e, user) and not e.is_expired(today)]
    return max(valid, key=lambda e: e.expires, default=None)


def evaluate(
    users: Iterable[UserKeys], exceptions: Iterable[ApprovedException], today: date
) -> list[Finding]:
    """One finding per failing user; an unexpired matching exception marks it excepted.

    An expired exception leaves the finding open but is recorded on it, so the report can say
    the approval lapsed rather than pretend it never existed. Users that could not be read get
    no finding: the evidence lists them with their error, and their account is partial.
    """
    approved = list(exceptions)
    findings = []
    for user in users:
        if not violates(user):
            continue
        exception = governing_exception(approved, user, today)
        # Of expired approvals, the latest is recorded.
        expired = [e for e in approved if exception_matches(e, user) and e.is_expired(today)]
        findings.append(
            Finding(
                rule_id=RULE_ID,
                account_id=user.account_id,
                user_name=user.user_name,
                arn=user.arn,
                active_key_count=user.active_key_count or 0,  # known: violates() checked it
                severity=SEVERITY,
                state=FindingState.EXCEPTED if exception else FindingState.OPEN,
                exception=exception,
                expired_exception=None
                if exception
                else max(expired, key=lambda e: e.expires, default=None),
            )
        )
    return findings
