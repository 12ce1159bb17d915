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
    # The change was sent but its answer never came (crash, lost response): rollback treats
    # it as made, and re-checks the key's live status first.
    PENDING = "pending"


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


Record = Callable[[Entry], None]


async def _deactivate(
    iam: Any, action: UserAction, planned: KeyAction, live: AccessKey, record: Record
) -> None:
    if not live.active:
        record(_entry(action, planned.access_key_id, Outcome.SKIPPED, "already Inactive"))
        return
    now = await with_last_used(iam, live)
    before = {"before_status": live.status, "before_last_used_at": now.last_used_at}
    if _used_since(planned.last_used_at, now.last_used_at):
        record(
            _entry(
                action,
                planned.access_key_id,
                Outcome.SKIPPED,
                f"used at {iso(now.last_used_at)} ({now.last_used_service or 'unknown service'}), "
                "after the plan was made "
                f"(the plan saw {iso(planned.last_used_at) or 'never used'})",
                **before,
            )
        )
        return
    record(_entry(action, planned.access_key_id, Outcome.PENDING, "deactivation sent", **before))
    await iam.update_access_key(
        UserName=action.user_name, AccessKeyId=planned.access_key_id, Status="Inactive"
    )
    record(
        _entry(
            action,
            planned.access_key_id,
            Outcome.DEACTIVATED,
            f"keeping {action.keep} ({action.keep_reason})",
            after_status="Inactive",
            **before,
        )
    )


def _inconsistent(action: UserAction) -> str | None:
    ids = [k.access_key_id for k in action.deactivate]
    if action.keep in ids:
        return f"the plan both keeps and deactivates {action.keep}"
    if len(set(ids)) != len(ids):
        return "the plan lists a key twice"
    return None


async def _apply_user(iam: Any, action: UserAction, record: Record) -> None:
    def skip_all(reason: str) -> None:
        for key in action.deactivate:
            record(_entry(action, key.access_key_id, Outcome.SKIPPED, reason))

    problem = _inconsistent(action)
    if problem:
        skip_all(f"{problem}; it was edited or corrupted, so nothing is done for this user")
        return
    try:
        keys = {key.id: key for key in await list_keys(iam, action.user_name)}
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            skip_all("the user no longer exists")
            return
        raise
    keep = keys.get(action.keep)
    if keep is None or not keep.active:
        skip_all(
            f"the key to keep, {action.keep}, is no longer active; deactivating the others "
            "could lock the user out"
        )
        return
    for planned in action.deactivate:
        live = keys.get(planned.access_key_id)
        if live is None:
            record(
                _entry(action, planned.access_key_id, Outcome.SKIPPED, "the key no longer exists")
            )
            continue
        try:
            await _deactivate(iam, action, planned, live, record)
        except ClientError as exc:
            record(
                _entry(
                    action,
                    planned.access_key_id,
                    Outcome.FAILED,
                    f"{error_code(exc)}: {error_message(exc)}",
                )
            )


async def _reactivate(iam: Any, entry: Entry, record: Record) -> None:
    keys = {key.id: key for key in await list_keys(iam, entry.user_name)}
    key = keys.get(entry.access_key_id)
    base = dataclasses.replace(entry, at=utcnow(), before_last_used_at=None, after_status=None)
    if key is None:
        record(
            dataclasses.replace(
                base, outcome=Outcome.SKIPPED, reason="the key no longer exists", before_status=None
            )
        )
        return
    if key.active:
        record(
            dataclasses.replace(
                base, outcome=Outcome.SKIPPED, reason="already Active", before_status=key.status
            )
        )
        return
    record(
        dataclasses.replace(
            base, outcome=Outcome.PENDING, reason="re-activation sent", before_status=key.status
        )
    )
    await iam.update_access_key(
        UserName=entry.user_name, AccessKeyId=entry.access_key_id, Status="Active"
    )
    record(
        dataclasses.replace(
            base,
            outcome=Outcome.REACTIVATED,
            reason="rolled back",
            before_status=key.status,
            after_status="Active",
            at=utcnow(),
        )
    )


class _Recorder:
    """Keeps the journal on disk current after every key, so no change is ever unrecorded."""

    def __init__(self, journal: Journal, path: Path) -> None:
        self.journal = journal
        self.path = path

    def __call__(self, entry: Entry) -> None:
        key = (entry.arn, entry.access_key_id)
        entries = self.journal.entries
        pending = next(
            (
                i
                for i, e in enumerate(entries)
                if e.outcome is Outcome.PENDING and (e.arn, e.access_key_id) == key
            ),
            None,
        )
        if pending is None:
            entries.append(entry)
        else:
            entries[pending] = entry
        write_journal(self.journal, self.path)

    def recorded(self) -> set[tuple[str, str]]:
        return {(e.arn, e.access_key_id) for e in self.journal.entries}


async def _per_account(
    config: Config,
    organization_id: str,
    groups: dict[str, list[T]],
    work: Callable[[Any, T, Record], Awaitable[None]],
    failed: Callable[[T, str], list[Entry]],
    record: _Recorder,
) -> None:
    """Run `work` for each item, account by account, under the remediation role.

    Whatever stops an account (no role, a network error) fails its unfinished items only.
    """
    config = config.for_remediation()
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
                try:
                    creds = await credentials.get(account_id)
                    async with factory.client("iam", limiter, CallCounter(), creds) as iam:
                        for item in items:
                            await work(iam, item, record)
                except Exception as exc:
                    reason = (
                        f"{exc.error.code}: {exc.error.message}"
                        if isinstance(exc, AccountFailure)
                        else f"{error_code(exc)}: {error_message(exc)}"
                    )
                    done = record.recorded()
                    for item in items:
                        for entry in failed(item, reason):
                            if (entry.arn, entry.access_key_id) not in done:
                                record(entry)

        await asyncio.gather(*(account(a, items) for a, items in sorted(groups.items())))


async def apply_plan(plan: Plan, config: Config, journal_path: Path) -> Journal:
    journal = Journal("apply", plan.source_run_id, plan.organization_id, utcnow())
    groups: dict[str, list[UserAction]] = {}
    for action in plan.actions:
        groups.setdefault(action.account_id, []).append(action)

    def failed(action: UserAction, reason: str) -> list[Entry]:
        return [_entry(action, k.access_key_id, Outcome.FAILED, reason) for k in action.deactivate]

    await _per_account(
        config, plan.organization_id, groups, _apply_user, failed, _Recorder(journal, journal_path)
    )
    journal.finished_at = utcnow()
    write_journal(journal, journal_path)
    return journal


async def rollback(applied: Journal, config: Config, journal_path: Path) -> Journal:
    """Re-activate exactly the keys the journal deactivated (or may have), nothing else."""
    journal = Journal("rollback", applied.source, applied.organization_id, utcnow())
    groups: dict[str, list[Entry]] = {}
    for entry in applied.entries:
        if entry.outcome in (Outcome.DEACTIVATED, Outcome.PENDING):
            groups.setdefault(entry.account_id, []).append(entry)

    def failed(entry: Entry, reason: str) -> list[Entry]:
        return [dataclasses.replace(entry, outcome=Outcome.FAILED, reason=reason, at=utcnow())]

    record = _Recorder(journal, journal_path)
    await _per_account(config, applied.organization_id, groups, _reactivate, failed, record)
    journal.finished_at = utcnow()
    write_journal(journal, journal_path)
    return journal
