"""`orgscan remediate apply` and `rollback`: re-check each key live, change status only.

Both assume the separate remediation role, so the audit role stays read-only. The journal is
rewritten after each account, so even a crash leaves a record of every key already changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from orgscan.clients import CallCounter, ClientFactory, RateLimiter, error_code, error_message
from orgscan.collect.live import list_keys, with_last_used
from orgscan.config import Config
from orgscan.model import AccessKey, AccountFailure, iso, parse_iso, utcnow
from orgscan.organizations import describe_organization
from orgscan.remediation.plan import KeyAction, Plan, UserAction
from orgscan.reports.files import write_atomic
from orgscan.sessions import AccountCredentials, caller_identity

KIND = "orgscan-remediation-journal"
T = TypeVar("T")


class Outcome(StrEnum):
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"
    SKIPPED = "skipped"  # left alone on purpose; `reason` says why
    FAILED = "failed"  # could not be changed; `reason` has the AWS error


class RemediationError(Exception):
    """Remediation cannot start: wrong organization, unreadable journal."""


@dataclass(frozen=True, slots=True)
class Entry:
    account_id: str
    user_name: str
    arn: str
    access_key_id: str
    outcome: Outcome
    reason: str | None = None
    before_status: str | None = None
    before_last_used_at: datetime | None = None
    after_status: str | None = None
    at: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class Journal:
    action: str  # "apply" or "rollback"
    source: str  # the plan's source run id, or the journal rolled back
    organization_id: str
    started_at: datetime
    entries: list[Entry] = field(default_factory=list)
    finished_at: datetime | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for e in self.entries if e.outcome is outcome)


def journal_dict(journal: Journal) -> dict[str, Any]:
    return {
        "kind": KIND,
        "action": journal.action,
        "source": journal.source,
        "organization_id": journal.organization_id,
        "started_at": iso(journal.started_at),
        "finished_at": iso(journal.finished_at),
        "entries": [
            {
                "account_id": e.account_id,
                "user_name": e.user_name,
                "arn": e.arn,
                "access_key_id": e.access_key_id,
                "outcome": str(e.outcome),
                "reason": e.reason,
                "before": {"status": e.before_status, "last_used_at": iso(e.before_last_used_at)},
                "after": {"status": e.after_status},
                "at": iso(e.at),
            }
            for e in journal.entries
        ],
    }


def write_journal(journal: Journal, path: Path) -> None:
    write_atomic(path, (json.dumps(journal_dict(journal), indent=2) + "\n").encode())


def read_journal(path: Path) -> Journal:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != KIND:
            raise ValueError("not an orgscan remediation journal")
        return Journal(
            action=data["action"],
            source=data["source"],
            organization_id=data["organization_id"],
            started_at=parse_iso(data["started_at"]),  # type: ignore[arg-type]
            finished_at=parse_iso(data["finished_at"]),
            entries=[
                Entry(
                    account_id=e["account_id"],
                    user_name=e["user_name"],
                    arn=e["arn"],
                    access_key_id=e["access_key_id"],
                    outcome=Outcome(e["outcome"]),
                    reason=e["reason"],
                    before_status=e["before"]["status"],
                    before_last_used_at=parse_iso(e["before"]["last_used_at"]),
                    after_status=e["after"]["status"],
                    at=parse_iso(e["at"]),  # type: ignore[arg-type]
                )
                for e in data["entries"]
            ],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RemediationError(f"{path}: cannot read the journal: {exc}") from None


def _used_since(planned: datetime | None, live: datetime | None) -> bool:
    return live is not None and (planned is None or live > planned)


def _entry(action: UserAction, key_id: str, outcome: Outcome, reason: str, **kw: Any) -> Entry:
    return Entry(action.account_id, action.user_name, action.arn, key_id, outcome, reason, **kw)


async def _deactivate(iam: Any, action: UserAction, planned: KeyAction, live: AccessKey) -> Entry:
    if not live.active:
        return _entry(action, planned.access_key_id, Outcome.SKIPPED, "already Inactive")
    now = await with_last_used(iam, live)
    if _used_since(planned.last_used_at, now.last_used_at):
        return _entry(
            action,
            planned.access_key_id,
            Outcome.SKIPPED,
            f"used at {iso(now.last_used_at)} ({now.last_used_service or 'unknown service'}), "
            f"after the plan was made (the plan saw {iso(planned.last_used_at) or 'never used'})",
            before_status=live.status,
            before_last_used_at=now.last_used_at,
        )
    await iam.update_access_key(
        UserName=action.user_name, AccessKeyId=planned.access_key_id, Status="Inactive"
    )
    return _entry(
        action,
        planned.access_key_id,
        Outcome.DEACTIVATED,
        f"keeping {action.keep} ({action.keep_reason})",
        before_status=live.status,
        before_last_used_at=now.last_used_at,
        after_status="Inactive",
    )


async def _apply_user(iam: Any, action: UserAction) -> list[Entry]:
    def skip_all(reason: str) -> list[Entry]:
        return [_entry(action, k.access_key_id, Outcome.SKIPPED, reason) for k in action.deactivate]

    try:
        keys = {key.id: key for key in await list_keys(iam, action.user_name)}
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return skip_all("the user no longer exists")
        raise
    keep = keys.get(action.keep)
    if keep is None or not keep.active:
        return skip_all(
            f"the key to keep, {action.keep}, is no longer active; deactivating the others "
            "could lock the user out"
        )
    entries = []
    for planned in action.deactivate:
        live = keys.get(planned.access_key_id)
        if live is None:
            entries.append(
                _entry(action, planned.access_key_id, Outcome.SKIPPED, "the key no longer exists")
            )
            continue
        try:
            entries.append(await _deactivate(iam, action, planned, live))
        except ClientError as exc:
            entries.append(
                _entry(
                    action,
                    planned.access_key_id,
                    Outcome.FAILED,
                    f"{error_code(exc)}: {error_message(exc)}",
                )
            )
    return entries


async def _reactivate(iam: Any, entry: Entry) -> Entry:
    keys = {key.id: key for key in await list_keys(iam, entry.user_name)}
    key = keys.get(entry.access_key_id)
    base = dataclasses.replace(entry, at=utcnow(), before_last_used_at=None, after_status=None)
    if key is None:
        return dataclasses.replace(
            base, outcome=Outcome.SKIPPED, reason="the key no longer exists", before_status=None
        )
    if key.active:
        return dataclasses.replace(
            base, outcome=Outcome.SKIPPED, reason="already Active", before_status=key.status
        )
    await iam.update_access_key(
        UserName=entry.user_name, AccessKeyId=entry.access_key_id, Status="Active"
    )
    return dataclasses.replace(
        base,
        outcome=Outcome.REACTIVATED,
        reason="rolled back",
        before_status=key.status,
        after_status="Active",
    )


async def _per_account(
    config: Config,
    organization_id: str,
    groups: dict[str, list[T]],
    work: Callable[[Any, T], Awaitable[list[Entry]]],
    failed: Callable[[T, str], list[Entry]],
    journal: Journal,
    journal_path: Path,
) -> None:
    """Run `work` for each item, account by account, under the remediation role.

    An account that cannot be entered fails its own items only; the journal is rewritten
    after each account.
    """
    role = dataclasses.replace(config.role, name=config.remediation.role_name)
    config = dataclasses.replace(config, role=role)
    factory = ClientFactory(config.scan)
    management, calls = RateLimiter(config.scan.management_rate_limit), CallCounter()
    cap = asyncio.Semaphore(config.scan.max_accounts_in_flight)
    async with (
        factory.client("organizations", management, calls) as org,
        factory.client("sts", management, calls) as sts,
    ):
        identity = await caller_identity(sts)
        organization = await describe_organization(org)
        if organization.id != organization_id:
            raise RemediationError(
                f"the plan is for organization {organization_id}; these credentials manage "
                f"{organization.id}"
            )
        credentials = AccountCredentials(sts, identity, config, organization.management_account_id)

        async def account(account_id: str, items: Sequence[T]) -> None:
            async with cap:
                limiter = RateLimiter(config.scan.account_rate_limit)
                entries: list[Entry] = []
                try:
                    creds = await credentials.get(account_id)
                    async with factory.client("iam", limiter, CallCounter(), creds) as iam:
                        for item in items:
                            entries += await work(iam, item)
                except (ClientError, AccountFailure) as exc:
                    reason = (
                        f"{exc.error.code}: {exc.error.message}"
                        if isinstance(exc, AccountFailure)
                        else f"{error_code(exc)}: {error_message(exc)}"
                    )
                    done = {(e.arn, e.access_key_id) for e in entries}
                    entries += [
                        e
                        for item in items
                        for e in failed(item, reason)
                        if (e.arn, e.access_key_id) not in done
                    ]
                journal.entries.extend(entries)
                write_journal(journal, journal_path)

        await asyncio.gather(*(account(a, items) for a, items in sorted(groups.items())))


async def apply_plan(plan: Plan, config: Config, journal_path: Path) -> Journal:
    journal = Journal("apply", plan.source_run_id, plan.organization_id, utcnow())
    groups: dict[str, list[UserAction]] = {}
    for action in plan.actions:
        groups.setdefault(action.account_id, []).append(action)

    def failed(action: UserAction, reason: str) -> list[Entry]:
        return [_entry(action, k.access_key_id, Outcome.FAILED, reason) for k in action.deactivate]

    await _per_account(
        config, plan.organization_id, groups, _apply_user, failed, journal, journal_path
    )
    journal.finished_at = utcnow()
    write_journal(journal, journal_path)
    return journal


async def rollback(applied: Journal, config: Config, journal_path: Path) -> Journal:
    """Re-activate exactly the keys the journal deactivated, and nothing else."""
    journal = Journal("rollback", applied.source, applied.organization_id, utcnow())
    groups: dict[str, list[Entry]] = {}
    for entry in applied.entries:
        if entry.outcome is Outcome.DEACTIVATED:
            groups.setdefault(entry.account_id, []).append(entry)

    async def work(iam: Any, entry: Entry) -> list[Entry]:
        return [await _reactivate(iam, entry)]

    def failed(entry: Entry, reason: str) -> list[Entry]:
        return [dataclasses.replace(entry, outcome=Outcome.FAILED, reason=reason, at=utcnow())]

    await _per_account(config, applied.organization_id, groups, work, failed, journal, journal_path)
    journal.finished_at = utcnow()
    write_journal(journal, journal_path)
    return journal
