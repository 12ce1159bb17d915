"""One key event → the user's keys read live in its account → the sweep's rule → a result.

The same code as the sweep does each step: `AccountCredentials` enters the account (the audit
role, or the caller's own credentials for the management account when the config says so),
`list_users` and `live_user_keys` read the user's keys, and `evaluate` applies the rule and the
approved exceptions. A finding here therefore means what it means in a sweep, and its
fingerprint is the sweep's SARIF fingerprint for the same user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import NoCredentialsError, NoRegionError

from orgscan.aws.credentials import AccountCredentials
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.management import Management, management_session
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.collect.users import IamUser, list_users, live_user_keys
from orgscan.config import Config
from orgscan.evaluate import evaluate
from orgscan.model import (
    AccessKey,
    AccountFailure,
    Finding,
    FindingState,
    ScanError,
    UserKeys,
    iso,
    utcnow,
)
from orgscan.rules import RULE_ID, fingerprint
from orgscan.watch.events import ACTIVE, KeyEvent

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    VIOLATION = "violation"  # an open finding: more than one active key, no valid exception
    EXCEPTED = "excepted"  # the rule fails, but an approved exception covers the user
    COMPLIANT = "compliant"
    GONE = "gone"  # the user no longer exists: nothing to evaluate, not an error
    IGNORED = "ignored"  # the event cannot have added an active key of an IAM user
    UNREADABLE = "unreadable"  # the account, or the user's keys, could not be read


@dataclass(frozen=True, slots=True)
class WatchResult:
    event: KeyEvent
    verdict: Verdict
    user: UserKeys | None = None  # the user's keys as read live
    finding: Finding | None = None  # for VIOLATION and EXCEPTED
    notes: tuple[str, ...] = ()
    error: ScanError | None = None  # for UNREADABLE

    @property
    def fingerprint(self) -> str | None:
        """The sweep's SARIF partialFingerprints.primaryLocationLineHash for this user."""
        return fingerprint(RULE_ID, self.user.arn) if self.user else None


def _ignored(event: KeyEvent) -> str | None:
    """Why this event cannot have given an IAM user a second active key, if it cannot."""
    if event.error_code:
        return f"the {event.event_name} call failed ({event.error_code}); it changed no key"
    if event.status != ACTIVE:
        return f"a key was set {event.status}; that never adds an active key"
    if event.user_name is None:
        return "the root user acted on its own access keys; the rule covers IAM users only"
    return None


def find_user(users: list[IamUser], name: str) -> IamUser | None:
    # IAM user names are unique regardless of case, and a request may spell one in any case.
    for user in users:
        if user.name == name:
            return user
    return next((u for u in users if u.name.casefold() == name.casefold()), None)


class _Skipped(Exception):
    """The config leaves this account out, as the sweep would."""


async def _read(event: KeyEvent, config: Config, management: Management) -> UserKeys | None:
    """The user's keys, read live in the event's account; None when the user is gone."""
    assert event.user_name is not None
    identity, organization = await management.identify()
    if (
        event.account_id == organization.management_account_id
        and config.organization.management_account == "skip"
    ):
        raise _Skipped("management account; organization.management_account is 'skip'")
    credentials = await AccountCredentials(
        management.sts, identity, config, organization.management_account_id
    ).get(event.account_id)
    limiter = RateLimiter(config.scan.account_rate_limit)
    async with management.factory.client("iam", limiter, CallCounter(), credentials) as iam:
        user = find_user(await list_users(iam), event.user_name)
        return await live_user_keys(iam, event.account_id, user) if user else None


async def check(event: KeyEvent, config: Config, today: date | None = None) -> WatchResult:
    """Evaluate the event's user as the sweep would, from its keys as they are now.

    Missing credentials or region raise (a setup problem, not the account's); anything else
    that stops the account or the user from being read is an UNREADABLE result.
    """
    reason = _ignored(event)
    if reason:
        return WatchResult(event, Verdict.IGNORED, notes=(reason,))
    try:
        async with management_session(config.scan) as management:
            user = await _read(event, config, management)
    except (NoCredentialsError, NoRegionError):
        raise
    except _Skipped as exc:
        return WatchResult(event, Verdict.IGNORED, notes=(str(exc),))
    except AccountFailure as exc:
        return WatchResult(event, Verdict.UNREADABLE, error=exc.error)
    except Exception as exc:  # whatever stops the read, the event must not pass as compliant
        log.debug("account %s could not be read", event.account_id, exc_info=True)
        return WatchResult(
            event, Verdict.UNREADABLE, error=ScanError(error_code(exc), error_message(exc))
        )
    if user is None:
        return WatchResult(
            event,
            Verdict.GONE,
            notes=(f"user {event.user_name} no longer exists in account {event.account_id}",),
        )
    if user.error is not None:
        # An SCP or permission boundary on the user's path: no verdict, never "compliant".
        return WatchResult(event, Verdict.UNREADABLE, error=user.error)
    notes = _key_notes(event, user)
    findings = evaluate([user], config.exceptions, today or utcnow().date())
    if not findings:
        return WatchResult(event, Verdict.COMPLIANT, user, notes=notes)
    (finding,) = findings
    verdict = Verdict.EXCEPTED if finding.state is FindingState.EXCEPTED else Verdict.VIOLATION
    return WatchResult(event, verdict, user, finding, notes)


def _key_notes(event: KeyEvent, user: UserKeys) -> tuple[str, ...]:
    if event.access_key_id and event.access_key_id not in {k.id for k in user.access_keys}:
        return (f"key {event.access_key_id} of the event no longer exists",)
    return ()


def summary(result: WatchResult) -> dict[str, Any]:
    """One line of JSON-able facts about a result, for logs: no key material, no event body."""
    return {
        "verdict": str(result.verdict),
        "event": result.event.event_name,
        "event_id": result.event.event_id,
        "account_id": result.event.account_id,
        "user_name": result.event.user_name,
        "arn": result.user.arn if result.user else None,
        "fingerprint": result.fingerprint,
        "error": f"{result.error.code}: {result.error.message}" if result.error else None,
        "notes": list(result.notes),
    }


def _date(value: datetime | None) -> str:
    return iso(value) or "unknown"


def _key_line(key: AccessKey) -> str:
    created = f"created {_date(key.created_at)}"
    if key.last_used_error is not None:
        used = f"last use unknown ({key.last_used_error.code})"  # not "never used"
    elif key.last_used_at is None:
        used = "never used" if key.active else ""
    else:
        where = ", ".join(p for p in (key.last_used_service, key.last_used_region) if p)
        used = f"last used {_date(key.last_used_at)}" + (f" ({where})" if where else "")
    return ", ".join(p for p in (f"{key.id} {key.status}", created, used) if p)


def describe(result: WatchResult) -> str:
    """The result as the CLI prints it: the verdict first, then the evidence."""
    event, user = result.event, result.user
    lines: list[str] = []
    if user is None:
        subject = f"user {event.user_name}" if event.user_name else "the caller's own access key"
        lines.append(f"{result.verdict.upper():<10} {subject} in account {event.account_id}")
    else:
        active = [k.id or "?" for k in user.access_keys if k.active]
        count = f"{len(active)} active access key{'' if len(active) == 1 else 's'}"
        lines.append(f"{result.verdict.upper():<10} {user.arn} has {count}")
        lines.append(f"  account:     {user.account_id}")
        for index, key in enumerate(user.access_keys):
            lines.append(f"  {'keys:' if index == 0 else '':<12} {_key_line(key)}")
    if result.finding is not None:
        finding = result.finding
        lines.append(f"  rule:        {finding.rule_id} ({finding.severity})")
        lines.append(f"  fingerprint: {result.fingerprint}")
        exception = finding.exception or finding.expired_exception
        if exception is not None:
            state = "approved" if finding.exception else "EXPIRED"
            ticket = f", ticket {exception.ticket}" if exception.ticket else ""
            lines.append(
                f"  exception:   {state}: {exception.reason} (owner {exception.owner}, "
                f"expires {exception.expires.isoformat()}{ticket})"
            )
    if result.error is not None:
        lines.append(f"  error:       {result.error.code}: {result.error.message}")
    when = f" at {iso(event.event_time)}" if event.event_time else ""
    by = f" by {event.caller_arn}" if event.caller_arn else ""
    eid = f" {event.event_id}" if event.event_id else ""
    lines.append(f"  event:       {event.event_name}{eid} in {event.account_id}{when}{by}")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)
