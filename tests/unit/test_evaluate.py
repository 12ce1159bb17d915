"""The rule and exceptions, directly: counting, matching and the expiry boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime

from orgscan.checks import Scanned
from orgscan.evaluate import evaluate_user, exception_matches
from orgscan.model import (
    AccessKey,
    ApprovedException,
    Finding,
    FindingState,
    RuleSettings,
    UserKeys,
)
from orgscan.rules import MULTIPLE_ACTIVE_KEYS

TODAY = date(2026, 11, 22)


def evaluate(
    users: list[UserKeys], exceptions: list[ApprovedException], today: date
) -> list[Finding]:
    """The one-active-key rule over each user, judged on `today`."""
    at = Scanned(datetime(today.year, today.month, today.day, tzinfo=UTC), "aws")
    rules = [RuleSettings(MULTIPLE_ACTIVE_KEYS)]
    return [f for u in users for f in evaluate_user(u, rules, exceptions, at)]


def user(name: str, *statuses: str, account: str = "111122223333", path: str = "/") -> UserKeys:
    return UserKeys(
        account_id=account,
        user_name=name,
        arn=f"arn:aws:iam::{account}:user{path}{name}",
        path=path,
        access_keys=tuple(AccessKey(f"AKIA{name}{i}", s, None) for i, s in enumerate(statuses)),
    )


def approval(user_glob: str, expires: date, account: str = "111122223333") -> ApprovedException:
    return ApprovedException(account, user_glob, "rotation", "team@example.com", expires, "SEC-1")


def test_only_more_than_one_active_key_fails():
    users = [
        user("none"),
        user("one", "Active"),
        user("one-off", "Active", "Inactive"),
        user("two-off", "Inactive", "Inactive"),
        user("two", "Active", "Active"),
    ]
    assert [f.user_name for f in evaluate(users, [], TODAY)] == ["two"]


def test_an_exception_applies_through_its_expiry_day_and_not_after():
    two = user("two", "Active", "Active")
    (on_the_day,) = evaluate([two], [approval("two", TODAY)], TODAY)
    assert on_the_day.state is FindingState.EXCEPTED
    (day_after,) = evaluate([two], [approval("two", TODAY)], date(2026, 11, 23))
    assert day_after.state is FindingState.OPEN
    assert day_after.expired_exception == approval("two", TODAY)
    assert day_after.exception is None


def test_a_valid_exception_wins_over_an_expired_one():
    two = user("two", "Active", "Active")
    (finding,) = evaluate(
        [two], [approval("two", date(2020, 1, 1)), approval("two", date(2099, 1, 1))], TODAY
    )
    assert finding.state is FindingState.EXCEPTED
    assert finding.expired_exception is None


def test_exception_matching_by_name_glob_and_account():
    u = user("deployer", "Active", "Active", path="/ci/")
    ci = (MULTIPLE_ACTIVE_KEYS, u.account_id, u.user_name, u.arn)
    assert exception_matches(approval("deployer", TODAY), *ci)
    assert exception_matches(approval("arn:aws:iam::*:user/ci/*", TODAY), *ci)
    assert not exception_matches(approval("arn:aws:iam::*:user/prod/*", TODAY), *ci)
    assert not exception_matches(approval("deploy", TODAY), *ci)  # a name is matched whole
    assert not exception_matches(approval("deployer", TODAY, account="999999999999"), *ci)
    # An exception covers only the rules it names.
    assert not exception_matches(approval("deployer", TODAY), "iam-access-key-unused", *ci[1:])
