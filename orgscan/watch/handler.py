"""One key event → the user's keys read live in its account → the sweep's rule → a result.

The same code as the sweep does each step: `AccountCredentials` enters the account (the audit
role, or the caller's own credentials for the management account when the config says so),
`list_users` and `live_user_keys` read the user's keys, and `evaluate` applies the rule and the
approved exceptions. A finding here therefore means what it means in a sweep, and its
fingerprint is the sweep's SARIF fingerprint for the same user.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from botocore.exceptions import NoCredentialsError, NoRegionError

from orgscan.aws.credentials import AccountCredentials
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.management import Management, management_session
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.checks import Scanned
from orgscan.collect.users import IamUser, list_users, live_user_keys
from orgscan.config import Config
from orgscan.evaluate import evaluate_user
from orgscan.model import (
    AccountFailure,
    FindingState,
    ScanError,
    UserKeys,
    utcnow,
)
from orgscan.rules import MULTIPLE_ACTIVE_KEYS
from orgscan.watch.events import ACTIVE, KeyEvent
from orgscan.watch.result import Verdict, WatchResult

log = logging.getLogger(__name__)


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
        management.sts,
        identity,
        config.role,
        config.organization.management_account,
        organization.management_account_id,
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
    if MULTIPLE_ACTIVE_KEYS not in {rule.id for rule in config.rules}:
        reason = f"rule {MULTIPLE_ACTIVE_KEYS} is disabled in the config"
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
    # The watch sees keys being added or reactivated: the one rule such an event can break.
    findings = evaluate_user(
        user,
        [rule for rule in config.rules if rule.id == MULTIPLE_ACTIVE_KEYS],
        config.exceptions,
        Scanned(_moment(today), user.arn.split(":", 2)[1]),
    )
    if not findings:
        return WatchResult(event, Verdict.COMPLIANT, user, notes=notes)
    (finding,) = findings
    verdict = Verdict.EXCEPTED if finding.state is FindingState.EXCEPTED else Verdict.VIOLATION
    return WatchResult(event, verdict, user, finding, notes)


def _moment(today: date | None) -> datetime:
    return utcnow() if today is None else datetime(today.year, today.month, today.day, tzinfo=UTC)


def _key_notes(event: KeyEvent, user: UserKeys) -> tuple[str, ...]:
    if event.access_key_id and event.access_key_id not in {k.id for k in user.access_keys}:
        return (f"key {event.access_key_id} of the event no longer exists",)
    return ()
