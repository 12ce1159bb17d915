"""Each rule's evaluation: one function per rule over one scanned account.

A check sees the account's evidence, the rule's thresholds and the time the account was scanned,
and returns what fails (`Violation`) and what it could not judge (`gaps`, each with why). It
knows nothing of exceptions, reports or remediation; `orgscan.evaluate` applies the exceptions
and records the coverage. A new rule is a function here, registered in CHECKS, and its entry in
rules.yaml.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orgscan.model import NO_SUCH_ENTITY, AccessKey, AccountResult, ResourceType, UserKeys
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, ROOT_USER, UNUSED


@dataclass(frozen=True, slots=True)
class Violation:
    user_name: str
    arn: str
    resource_type: ResourceType
    resource_id: str
    detail: str
    active_key_count: int | None = None
    access_key_id: str | None = None


@dataclass(slots=True)
class Judgement:
    violations: list[Violation] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Scanned:
    """When the account was scanned (ages are counted to then) and its partition."""

    at: datetime
    partition: str


Check = Callable[[AccountResult, Mapping[str, int], Scanned], Judgement]


def _readable_users(account: AccountResult, judgement: Judgement) -> Iterator[UserKeys]:
    """The users whose keys were read; the others are the rule's gaps."""
    for user in account.users:
        if user.error is None:
            yield user
        else:
            judgement.gaps.append(
                f"user {user.arn}: keys unreadable: {user.error.code}: {user.error.message}"
            )


def _active_keys(user: UserKeys) -> Iterator[AccessKey]:
    """The user's Active keys that still exist: one deleted between its listing and the read of
    its last use (NoSuchEntity) is judged by no key rule."""
    for key in user.access_keys:
        gone = key.last_used_error is not None and key.last_used_error.code == NO_SUCH_ENTITY
        if key.active and not gone:
            yield key


def days_before(now: datetime, then: datetime) -> int:
    """Whole days from `then` to `now`, as CIS's audits and Prowler count a key's age: the one
    measure of every age limit (the rules, and remediation's re-check)."""
    return (now - then).days


def _aged(
    judgement: Judgement,
    user: UserKeys,
    key: AccessKey,
    since: datetime | None,
    what: str,
    limit: int,
    scanned: Scanned,
) -> None:
    """The key fails when `since` (its creation, or its last use) lies more than `limit` whole
    days before the scan: the age in days is counted as CIS's audits and Prowler count it, so
    a key `limit` days and some hours old still passes, and the detail never says otherwise."""
    if since is None:
        judgement.gaps.append(f"key {key.id} of user {user.arn}: {what} date unknown")
        return
    days = days_before(scanned.at, since)
    if days <= limit:
        return
    if key.id is None:
        # A credential-report row has no key id; the strategy re-reads every user a rule could
        # fail, so this is a row it did not: a gap, never a finding without its key.
        judgement.gaps.append(f"a key of user {user.arn}: not re-read live, its id is unknown")
        return
    judgement.violations.append(
        Violation(
            user.user_name,
            user.arn,
            ResourceType.ACCESS_KEY,
            key.id,
            f"active key {key.id} {what} {since:%Y-%m-%d}, {days} days before the scan "
            f"(limit {limit})",
            access_key_id=key.id,
        )
    )


def multiple_active_keys(account: AccountResult, _: Mapping[str, int], __: Scanned) -> Judgement:
    """More than one key whose Status is Active; inactive keys never count."""
    judgement = Judgement()
    for user in _readable_users(account, judgement):
        count = user.active_key_count or 0
        if count > 1:
            judgement.violations.append(
                Violation(
                    user.user_name,
                    user.arn,
                    ResourceType.USER,
                    user.arn,
                    f"{count} active access keys",
                    active_key_count=count,
                )
            )
    return judgement


def not_rotated(
    account: AccountResult, thresholds: Mapping[str, int], scanned: Scanned
) -> Judgement:
    """An Active key created more than max_age_days whole days before the scan."""
    limit = thresholds["max_age_days"]
    judgement = Judgement()
    for user in _readable_users(account, judgement):
        for key in _active_keys(user):
            _aged(judgement, user, key, key.created_at, "created", limit, scanned)
    return judgement


def unused(account: AccountResult, thresholds: Mapping[str, int], scanned: Scanned) -> Judgement:
    """An Active key last used more than max_unused_days whole days before the scan, or never
    used and created more than that before. A key whose last use is unknown is a gap, never a
    pass."""
    limit = thresholds["max_unused_days"]
    judgement = Judgement()
    for user in _readable_users(account, judgement):
        for key in _active_keys(user):
            if key.last_used_error is not None or key.last_used_source is None:
                why = (
                    f"{key.last_used_error.code}: {key.last_used_error.message}"
                    if key.last_used_error
                    else "not read"
                )
                judgement.gaps.append(f"key {key.id} of user {user.arn}: last use unknown: {why}")
            elif key.last_used_at is not None:
                _aged(judgement, user, key, key.last_used_at, "last used", limit, scanned)
            else:
                _aged(judgement, user, key, key.created_at, "never used, created", limit, scanned)
    return judgement


def root_access_key(account: AccountResult, _: Mapping[str, int], scanned: Scanned) -> Judgement:
    """The root user has an access key, active or not."""
    judgement = Judgement()
    root = account.root_keys
    if root is None or root.present is None:
        why = f"{root.error.code}: {root.error.message}" if root and root.error else "not read"
        judgement.gaps.append(f"the root user's access keys are unknown: {why}")
    elif root.present:
        arn = f"arn:{scanned.partition}:iam::{account.account.id}:root"
        active = "" if root.active is None else f", {root.active} of them active"
        judgement.violations.append(
            Violation(
                ROOT_USER,
                arn,
                ResourceType.ACCOUNT,
                arn,
                f"the root user has an access key{active} (source: {root.source})",
            )
        )
    return judgement


CHECKS: dict[str, Check] = {
    MULTIPLE_ACTIVE_KEYS: multiple_active_keys,
    NOT_ROTATED: not_rotated,
    UNUSED: unused,
    ROOT_KEY: root_access_key,
}
