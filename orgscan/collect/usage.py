"""The last use of access keys and the root user's keys: what the rules beyond the count need.

Both come free with the account's credential report: its rows carry each key slot's last use,
and its `<root_account>` row the root user's keys. A report row carries no key id, so a slot is
matched to a key by its `last_rotated`, which is the key's CreateDate to the second. Where the
report cannot say (no report, a key created since it was generated, two keys created in the
same second), a key's last use is read with GetAccessKeyLastUsed, one call per key, and the
root user's keys with GetAccountSummary's `AccountAccessKeysPresent`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from orgscan.aws.interfaces import IamReader
from orgscan.collect.users import last_used, user_error
from orgscan.concurrency import bounded_map
from orgscan.model import (
    AccessKey,
    RootKeys,
    RootKeySource,
    RuleSettings,
    ScanError,
    UserKeys,
    utcnow,
)
from orgscan.rules import rule_by_id

# GetAccountSummary's key that says whether the root user has an access key (1) or not (0);
# an inactive key counts (CIS AWS Foundations 1.4's audit procedure says so).
ROOT_KEYS_PRESENT = "AccountAccessKeysPresent"


@dataclass(frozen=True, slots=True)
class Needs:
    """What collection must read beyond each key's id, status and creation date, from the rules
    enabled: every active key's last use, the root user's keys, and the limits of the rules
    (None when the rule is off) that decide which credential-report rows are read again live."""

    key_last_use: bool = False
    # The one-active-key rule: users with more than one active key, and their keys' last use.
    flagged_key_last_use: bool = False
    root_keys: bool = False
    max_age_days: int | None = None
    max_unused_days: int | None = None

    @classmethod
    def of(cls, rules: Sequence[RuleSettings]) -> Needs:
        """What the rules of a run need read: each rule's `needs` in rules.yaml, and the limits
        that decide a credential-report row's re-read, by their parameter names."""
        wanted = {need for rule in rules for need in rule_by_id(rule.id).needs}
        limits = {name: days for rule in rules for name, days in rule.thresholds.items()}
        return cls(
            key_last_use="key_last_use" in wanted,
            flagged_key_last_use="flagged_key_last_use" in wanted,
            root_keys="root_keys" in wanted,
            max_age_days=limits.get("max_age_days"),
            max_unused_days=limits.get("max_unused_days"),
        )

    @property
    def report(self) -> bool:
        """Whether the live strategy reads the credential report beside its listing."""
        return self.key_last_use or self.root_keys


def _second(when: datetime | None) -> datetime | None:
    # ListAccessKeys' CreateDate may carry a fraction of a second; the report's dates do not.
    # Both are aware, and aware datetimes compare (and hash) as instants, whatever the offset.
    return None if when is None else when.replace(microsecond=0)


def from_report(keys: Sequence[AccessKey], row: UserKeys | None) -> list[AccessKey]:
    """Each key with the last use of the user's report slot created in the same second; a key
    no slot matches, or whose date another slot or key shares, is returned as it was."""
    if row is None or not keys:
        return list(keys)
    slots: dict[datetime | None, AccessKey | None] = {}
    for reported in row.access_keys:
        when = _second(reported.created_at)
        slots[when] = None if when in slots else reported  # None: two slots share the date
    seconds = [_second(key.created_at) for key in keys]
    found = []
    for key, when in zip(keys, seconds, strict=True):
        slot = slots.get(when)
        if when is None or slot is None or seconds.count(when) > 1:
            found.append(key)
            continue
        found.append(
            AccessKey(
                id=key.id,
                status=key.status,
                created_at=key.created_at,
                last_used_at=slot.last_used_at,
                last_used_service=slot.last_used_service,
                last_used_region=slot.last_used_region,
                last_used_source=slot.last_used_source,
                last_used_as_of=slot.last_used_as_of,
            )
        )
    return found


def _wanted(user: UserKeys, key: AccessKey, needs: Needs) -> bool:
    """An active key whose last use is still unread and needed: every active key's for the
    unused-key rule, else, for the one-active-key rule, those of a user with more than one
    (the evidence of which is used).
    An inactive key never costs a call."""
    if not key.active or key.last_used_source is not None or key.last_used_error is not None:
        return False
    return needs.key_last_use or (needs.flagged_key_last_use and (user.active_key_count or 0) > 1)


async def with_last_use(
    iam: IamReader,
    users: Sequence[UserKeys],
    report: dict[str, UserKeys] | None,
    needs: Needs,
    workers: int,
) -> list[UserKeys]:
    """The users read live, each key with its last use from the report's row of its user
    (`report`, by user ARN) where a slot matches it, else, where needed, from
    GetAccessKeyLastUsed (or the error that kept it unknown)."""
    matched = [
        replace(user, access_keys=tuple(from_report(user.access_keys, report.get(user.arn))))
        if report is not None and user.error is None and user.access_keys
        else user
        for user in users
    ]
    asked = [
        (u, k)
        for u, user in enumerate(matched)
        for k, key in enumerate(user.access_keys)
        if _wanted(user, key, needs)
    ]
    answers = await bounded_map(
        lambda place: last_used(iam, matched[place[0]].access_keys[place[1]]), asked, workers
    )
    keys = [list(user.access_keys) for user in matched]
    for (u, k), key in zip(asked, answers, strict=True):
        keys[u][k] = key
    return [
        replace(user, access_keys=tuple(found)) if found != list(user.access_keys) else user
        for user, found in zip(matched, keys, strict=True)
    ]


async def root_keys_from_summary(iam: IamReader) -> RootKeys:
    """Whether the root user has an access key, from GetAccountSummary: it cannot tell an
    active key from an inactive one. An error about the call alone is recorded, not raised."""
    try:
        answer = await iam.get_account_summary()
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        return RootKeys(source=None, as_of=None, present=None, active=None, error=error)
    present = answer.get("SummaryMap", {}).get(ROOT_KEYS_PRESENT)
    if present is None:
        error = ScanError("MissingSummaryKey", f"GetAccountSummary gave no {ROOT_KEYS_PRESENT}")
        return RootKeys(source=None, as_of=None, present=None, active=None, error=error)
    return RootKeys(
        source=RootKeySource.ACCOUNT_SUMMARY, as_of=utcnow(), present=present > 0, active=None
    )
