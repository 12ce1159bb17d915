"""The rules and the approved exceptions: each account's evidence → findings and coverage."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from fnmatch import fnmatchcase

from orgscan.checks import CHECKS, Scanned, Violation
from orgscan.model import (
    UNKNOWN_STATE,
    Account,
    AccountResult,
    ApprovedException,
    Coverage,
    Finding,
    FindingState,
    RuleCoverage,
    RuleSettings,
    ScanStatus,
    UserKeys,
)
from orgscan.rules import rule_by_id


def exception_matches(
    exception: ApprovedException, rule_id: str, account_id: str, user_name: str, arn: str
) -> bool:
    """The exception names the rule, the account, and the user (by name, or a glob over its
    ARN; the root user is `<root_account>`, or its ARN `arn:<partition>:iam::<id>:root`)."""
    if rule_id not in exception.rules or exception.account != account_id:
        return False
    if exception.user.startswith("arn:") or any(ch in exception.user for ch in "*?["):
        return fnmatchcase(arn, exception.user)
    return exception.user == user_name


def _matching(
    exceptions: Iterable[ApprovedException], rule_id: str, account_id: str, user_name: str, arn: str
) -> list[ApprovedException]:
    return [e for e in exceptions if exception_matches(e, rule_id, account_id, user_name, arn)]


def governing_exception(
    exceptions: Iterable[ApprovedException],
    rule_id: str,
    account_id: str,
    user_name: str,
    arn: str,
    today: date,
) -> ApprovedException | None:
    """The valid exception on `today`: of several, the longest-lasting one governs."""
    valid = [
        e
        for e in _matching(exceptions, rule_id, account_id, user_name, arn)
        if not e.is_expired(today)
    ]
    return max(valid, key=lambda e: e.expires, default=None)


def _finding(
    rule_id: str,
    account_id: str,
    violation: Violation,
    exceptions: Sequence[ApprovedException],
    today: date,
) -> Finding:
    """An unexpired matching exception marks the finding excepted. An expired one leaves it
    open but is recorded on it (the latest), so the report can say the approval lapsed."""
    who = (rule_id, account_id, violation.user_name, violation.arn)
    exception = governing_exception(exceptions, *who, today)
    expired = [e for e in _matching(exceptions, *who) if e.is_expired(today)]
    return Finding(
        rule_id=rule_id,
        account_id=account_id,
        user_name=violation.user_name,
        arn=violation.arn,
        resource_type=violation.resource_type,
        resource_id=violation.resource_id,
        severity=rule_by_id(rule_id).severity,
        state=FindingState.EXCEPTED if exception else FindingState.OPEN,
        detail=violation.detail,
        active_key_count=violation.active_key_count,
        access_key_id=violation.access_key_id,
        exception=exception,
        expired_exception=None
        if exception
        else max(expired, key=lambda e: e.expires, default=None),
    )


def evaluate_account(
    account: AccountResult,
    rules: Sequence[RuleSettings],
    exceptions: Sequence[ApprovedException],
    scanned: Scanned,
) -> tuple[list[Finding], list[RuleCoverage]]:
    """The account's findings under each rule, and each rule's coverage there.

    An account that was not scanned (skipped, failed) is judged by no rule. A partial account
    is judged on what was read, and each rule says what it could not see: it is INCOMPLETE
    there, never a pass. Exceptions are judged on the day the account was scanned.
    """
    if account.scan_status not in (ScanStatus.SCANNED, ScanStatus.PARTIAL):
        return [], [RuleCoverage(rule.id, Coverage.NOT_SCANNED) for rule in rules]
    findings: list[Finding] = []
    coverage: list[RuleCoverage] = []
    for rule in rules:
        judgement = CHECKS[rule.id](
            account, rule_by_id(rule.id).parameters | rule.thresholds, scanned
        )
        findings.extend(
            _finding(rule.id, account.account.id, v, exceptions, scanned.at.date())
            for v in judgement.violations
        )
        coverage.append(
            RuleCoverage(
                rule.id,
                Coverage.INCOMPLETE if judgement.gaps else Coverage.COMPLETE,
                tuple(judgement.gaps),
            )
        )
    return findings, coverage


class Judge:
    """Judges accounts one at a time, and gives their findings in the order of the accounts.

    A scan judges each account as it finishes: at the end of a sweep, judging a thousand
    accounts at once took most of a second after the last answer, while the accounts still
    waiting for their reports leave the CPU idle."""

    def __init__(
        self,
        rules: Sequence[RuleSettings],
        exceptions: Iterable[ApprovedException],
        partition: str,
        started: datetime,
    ) -> None:
        self._rules = rules
        self._approved = list(exceptions)
        self._partition = partition
        self._started = started
        self._judged: dict[int, list[Finding]] = {}  # by id() of the AccountResult

    def judge(self, account: AccountResult) -> None:
        """Record the account's coverage on it, and keep its findings for `findings`."""
        scanned = Scanned(account.scanned_at or self._started, self._partition)
        own, account.coverage = evaluate_account(account, self._rules, self._approved, scanned)
        self._judged[id(account)] = own

    def findings(self, accounts: Iterable[AccountResult]) -> list[Finding]:
        """Every account's findings, in their order; those not judged yet are judged now."""
        findings: list[Finding] = []
        for account in accounts:
            if id(account) not in self._judged:
                self.judge(account)
            findings.extend(self._judged.pop(id(account)))
        return findings


def evaluate(
    accounts: Iterable[AccountResult],
    rules: Sequence[RuleSettings],
    exceptions: Iterable[ApprovedException],
    partition: str,
    started: datetime,
) -> list[Finding]:
    """Every account's findings; each account's coverage is recorded on it."""
    return Judge(rules, exceptions, partition, started).findings(accounts)


def evaluate_user(
    user: UserKeys,
    rules: Sequence[RuleSettings],
    exceptions: Sequence[ApprovedException],
    scanned: Scanned,
) -> list[Finding]:
    """One user's findings under user and key rules, as the watch judges a user it re-read."""
    alone = AccountResult(
        Account(user.account_id, "", "", UNKNOWN_STATE, ""), ScanStatus.SCANNED, users=[user]
    )
    return evaluate_account(alone, rules, exceptions, scanned)[0]
