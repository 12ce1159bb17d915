"""`orgscan remediate apply` and `rollback`: re-check each key live, change its status only.

Both assume the separate remediation role, so the audit role stays read-only.

The journal is append-only JSON Lines, created exclusively (O_EXCL) before the first AWS call:
a header, one line per event, and an end line. Every change is journaled `pending`, and that
line fsynced, before its request can be sent; what became of it follows in a later line. A
crash therefore leaves every complete line readable and no change unrecorded, and a torn last
line is ignored and reported. Lines are written by one thread of their own, so the event loop
never waits on the disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from botocore.exceptions import ClientError
from pydantic import ConfigDict

from orgscan import evidence as codec
from orgscan.accounts import AccountFilter
from orgscan.aws.clients import ClientFactory
from orgscan.aws.credentials import AccountCredentials
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.interfaces import IamWriter, OrganizationsReader
from orgscan.aws.management import management_session
from orgscan.aws.organizations import Organization, walk_accounts
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.checks import days_before
from orgscan.collect.users import list_keys, with_last_used
from orgscan.config import Config
from orgscan.evaluate import governing_exception
from orgscan.fs import fsync_directory
from orgscan.model import (
    EVIDENCE,
    AccessKey,
    AccountFailure,
    ApprovedException,
    Timestamp,
    UserKeys,
    iso,
    parse_iso,
    utcnow,
)
from orgscan.remediation.plan import KeyAction, Plan, UserAction
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, UNUSED, recommended_key

KIND = "orgscan-remediation-journal"
# 2.0: each entry line is the Entry as the evidence codec writes it (flat `before_status`,
# `before_last_used_at`, `after_status`). Journals before it, whose headers carry no version
# (and orgscan 0.1's JSON journals), nested them in `before` and `after`; see _upgraded_entry.
JOURNAL_VERSION = "2.0"
T = TypeVar("T")


class Outcome(StrEnum):
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"
    SKIPPED = "skipped"  # left alone on purpose; `reason` says why
    FAILED = "failed"  # AWS answered with an error and the key is unchanged; `reason` has it
    # The change may have been sent, and nothing has shown its outcome yet (a lost answer, a
    # crash, an abort): it may still take effect. Rollback lists these apart.
    PENDING = "pending"


class RemediationError(Exception):
    """Remediation cannot start: wrong organization, a journal that exists or is unreadable."""


@dataclass(slots=True)
class Stop:
    """Set on the first SIGINT/SIGTERM: no key is started after it, and every change already
    sent is finished, re-read and journaled."""

    signal: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    account_id: str
    user_name: str
    arn: str
    access_key_id: str
    outcome: Outcome
    reason: str | None = None
    before_status: str | None = None
    before_last_used_at: Timestamp | None = None
    after_status: str | None = None
    at: Timestamp = field(default_factory=utcnow)

    @property
    def key(self) -> tuple[str, str]:
        return (self.account_id, self.access_key_id)


@dataclass(slots=True)
class Journal:
    action: str  # "apply" or "rollback"
    source: str  # the plan's source run id
    organization_id: str
    started_at: datetime
    entries: list[Entry] = field(default_factory=list)  # each key's latest, in first-seen order
    finished_at: datetime | None = None
    interrupted: str | None = None  # the signal that stopped the run, e.g. "SIGINT"
    evidence_sha256: str | None = None  # apply: the findings.json the plan was checked against
    rolls_back: str | None = None  # rollback: the apply journal it undoes
    torn: str | None = None  # on reading: a last line cut off by a crash, ignored
    _index: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def record(self, entry: Entry) -> None:
        """The entry becomes its key's current state; earlier ones stay in the file."""
        index = self._index.get(entry.key)
        if index is None:
            self._index[entry.key] = len(self.entries)
            self.entries.append(entry)
        else:
            self.entries[index] = entry

    def latest(self, entry_key: tuple[str, str]) -> Entry | None:
        index = self._index.get(entry_key)
        return None if index is None else self.entries[index]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for e in self.entries if e.outcome is outcome)


@dataclass(frozen=True, slots=True)
class JournalHeader:
    """The journal's first line: what run it records. Its fields are the Journal's own."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE

    action: str
    source: str
    organization_id: str
    started_at: Timestamp
    evidence_sha256: str | None = None
    rolls_back: str | None = None


@dataclass(frozen=True, slots=True)
class JournalEnd:
    """The journal's last line, once the run is over: when, and whether it was stopped."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE

    finished_at: Timestamp
    interrupted: str | None = None


# The journal's lines, each after its record type (and for the header, the file's kind).
HEADER = codec.Codec(
    JournalHeader, {"kind": KIND, "record": "header", "schema_version": JOURNAL_VERSION}
)
END = codec.Codec(JournalEnd, {"record": "end"})


def _header(journal: Journal) -> dict[str, Any]:
    return HEADER.document(
        JournalHeader(
            **{f.name: getattr(journal, f.name) for f in dataclasses.fields(JournalHeader)}
        )
    )


# An entry line of the journal.
ENTRY = codec.Codec(Entry, {"record": "entry"})


def _upgraded_entry(record: dict[str, Any]) -> dict[str, Any]:
    """An entry of a journal before 2.0 in the 2.0 shape: `before` and `after` flattened."""
    before, after = record["before"], record["after"]
    rest = {key: value for key, value in record.items() if key not in ("before", "after")}
    return rest | {
        "before_status": before["status"],
        "before_last_used_at": before["last_used_at"],
        "after_status": after["status"],
    }


def _read_entry(record: dict[str, Any], version: str | None, where: str) -> Entry:
    return ENTRY.decode(record if version else _upgraded_entry(record), where)


class JournalFile:
    """The journal on disk: append-only, one fsync per line, written by one thread of its own.

    Writes are shielded from cancellation, so every entry the run recorded reaches the disk,
    in order, even when the run is aborted.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.path = path
        self._fd: int | None = fd
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="orgscan-journal")

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> JournalFile:
        """Create the file, failing if it exists: two runs can never share a journal."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        except FileExistsError:
            raise RemediationError(
                f"{path} already exists: it records earlier changes, or another apply or "
                "rollback is writing it; move it away or pass --journal with a new file"
            ) from None
        except OSError as exc:
            raise RemediationError(f"{path}: cannot create the journal: {exc.strerror}") from None
        journal = cls(fd, path)
        journal._write([header])
        # The file's name must survive a crash as well as its content.
        fsync_directory(path.parent)
        return journal

    def _write(self, records: Sequence[dict[str, Any]]) -> None:
        assert self._fd is not None
        data = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    async def append(self, record: dict[str, Any]) -> None:
        await asyncio.shield(asyncio.wrap_future(self._writer.submit(self._write, [record])))

    def append_now(self, records: Sequence[dict[str, Any]]) -> None:
        """Blocking, after every line already queued: for the end of a run."""
        if records:
            self._writer.submit(self._write, records).result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Remove a journal that records nothing: the run failed before touching any key."""
        self.close()
        self.path.unlink(missing_ok=True)


def read_journal(path: Path) -> Journal:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RemediationError(f"{path}: cannot read the journal: {exc.strerror}") from None
    return parse_journal(data, str(path))


def parse_journal(data: bytes, source: str) -> Journal:
    """A journal as far as it was written. Every complete line counts; a last line cut off by a
    crash is ignored and reported in `torn`. Reads the JSON journals of orgscan 0.1 as well."""
    try:
        whole = json.loads(data)
    except ValueError:
        whole = None
    try:
        if isinstance(whole, dict) and "entries" in whole:
            return _read_json_journal(whole)
        return _read_lines(data, source)
    except (codec.EvidenceError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RemediationError(f"{source}: cannot read the journal: {exc}") from None


def _read_lines(data: bytes, source: str) -> Journal:
    *lines, tail = data.split(b"\n")
    if not lines:
        raise ValueError(
            "it has no complete header line; its run stopped before any AWS call, so it "
            "changed nothing"
        )
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            # Only the line being written when a crash struck can be incomplete, and that one
            # has no newline yet: anything else is damage, not a crash.
            raise ValueError(f"line {number} is not JSON, so the journal is damaged") from None
    header = records[0]
    if header.get("kind") != KIND or header.get("record") != "header":
        raise ValueError("not an orgscan remediation journal")
    version = header.get("schema_version")
    if version not in (None, JOURNAL_VERSION):
        raise ValueError(
            f"schema_version {version!r} is not supported; this orgscan reads "
            f"{JOURNAL_VERSION!r} and the unversioned journals before it"
        )
    opened = HEADER.decode(header, "line 1")
    journal = Journal(**{f.name: getattr(opened, f.name) for f in dataclasses.fields(opened)})
    for number, record in enumerate(records[1:], 2):
        if record["record"] == "entry":
            journal.record(_read_entry(record, version, f"line {number}"))
        elif record["record"] == "end":
            end = END.decode(record, f"line {number}")
            journal.finished_at, journal.interrupted = end.finished_at, end.interrupted
        else:
            raise ValueError(f"unknown record {record['record']!r}")
    if tail:
        journal.torn = (
            f"{source}: its last line ({len(tail)} bytes) was cut off while it was written, "
            "by a crash; it is ignored (a change is sent only after its pending line is "
            "complete on disk)"
        )
    return journal


def _read_json_journal(data: dict[str, Any]) -> Journal:
    """orgscan 0.1 rewrote one JSON document per change, with each key's latest entry only."""
    if data.get("kind") != KIND:
        raise ValueError("not an orgscan remediation journal")
    journal = Journal(
        action=data["action"],
        source=data["source"],
        organization_id=data["organization_id"],
        started_at=parse_iso(data["started_at"]),  # type: ignore[arg-type]
        finished_at=parse_iso(data["finished_at"]),
    )
    for index, e in enumerate(data["entries"]):
        journal.record(_read_entry(e, None, f"entries[{index}]"))
    return journal


Record = Callable[[Entry], Awaitable[None]]


class _Recorder:
    """Journals an entry: in memory at once, on disk (fsynced) before the await returns."""

    def __init__(self, journal: Journal, file: JournalFile) -> None:
        self.journal = journal
        self.file = file

    async def __call__(self, entry: Entry) -> None:
        self.journal.record(entry)
        await self.file.append(ENTRY.document(entry))

    def finish(self, unattempted: Sequence[Entry]) -> None:
        """Journal the keys never reached, then the end line: nothing is silently dropped."""
        self.journal.finished_at = utcnow()
        for entry in unattempted:
            self.journal.record(entry)
        end = JournalEnd(self.journal.finished_at, self.journal.interrupted)
        self.file.append_now([*map(ENTRY.document, unattempted), END.document(end)])
        self.file.close()


# Errors with which AWS refuses a request before carrying it out: a change so answered did
# not happen. Any other answer (a 5xx above all: ServiceFailure, InternalFailure,
# ServiceUnavailable) or none at all leaves the outcome unknown.
REFUSALS = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "AccessDenied",
        "AccessDeniedException",
        "ValidationError",
        "InvalidParameterValue",
        "InvalidInput",
        "NoSuchEntity",
        "LimitExceeded",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "RequestExpired",
    }
)

# UpdateAccessKey attempts of the change in progress: True for each one AWS refused (one of
# REFUSALS), False for each one that may have been carried out (another error, or no answer).
_ATTEMPTS: ContextVar[list[bool] | None] = ContextVar("orgscan_update_attempts", default=None)


def _attempt_seen(
    exception: BaseException | None = None, parsed_response: Any = None, **_: Any
) -> None:
    attempts = _ATTEMPTS.get()
    if attempts is not None:
        code = (parsed_response or {}).get("Error", {}).get("Code") if exception is None else None
        attempts.append(code in REFUSALS)


def _watch_attempts(iam: IamWriter) -> None:
    # botocore retries inside one call; this sees every attempt, not only the last.
    iam.on_attempt("UpdateAccessKey", _attempt_seen)


async def _live_status(iam: IamWriter, user_name: str, key_id: str) -> str | None:
    """The key's status now; None when the key or its user no longer exists."""
    try:
        keys = await list_keys(iam, user_name)
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise
    return next((k.status for k in keys if k.id == key_id), None)


def _failure(exc: BaseException) -> str:
    return f"{error_code(exc)}: {error_message(exc)}"


async def _change(
    iam: IamWriter, record: Record, base: Entry, target: str, done: Outcome, reason: str
) -> None:
    """Journal the change as pending, send it, and journal what is known of its outcome.

    After an error the key is re-read: a change that went through is recorded as made even
    when its answer was lost or a retry was refused, and a change that may still arrive stays
    pending. Only a change AWS refused on every attempt, with the key unchanged, is failed.
    """
    await record(
        dataclasses.replace(base, outcome=Outcome.PENDING, reason=f"{target} sent", at=utcnow())
    )
    attempts: list[bool] = []
    token = _ATTEMPTS.set(attempts)
    try:
        await iam.update_access_key(
            UserName=base.user_name, AccessKeyId=base.access_key_id, Status=target
        )
        error = None
    except Exception as exc:
        error = exc
    finally:
        _ATTEMPTS.reset(token)
    if error is None:
        await record(
            dataclasses.replace(base, outcome=done, reason=reason, after_status=target, at=utcnow())
        )
        return
    refused = isinstance(error, ClientError) and bool(attempts) and all(attempts)
    await _settle(iam, record, base, target, done, reason, _failure(error), refused)


async def _settle(
    iam: IamWriter,
    record: Record,
    base: Entry,
    target: str,
    done: Outcome,
    reason: str,
    error: str | None,
    refused: bool,
    quiet: bool = False,
) -> None:
    """Re-read a key whose change has no clean answer (`error`, or None for a pending entry
    resolved before its account is left), and journal what that shows; with `quiet`, only an
    outcome that is no longer pending."""
    sent = f"{target} sent, then {error}" if error else (base.reason or f"{target} sent")
    try:
        status = await _live_status(iam, base.user_name, base.access_key_id)
    except Exception as exc:
        if quiet:
            return
        await record(
            dataclasses.replace(
                base,
                outcome=Outcome.PENDING,
                reason=f"{sent}; re-reading the key failed ({_failure(exc)}): outcome unknown",
                at=utcnow(),
            )
        )
        return
    if status == target:
        shown = f"AWS answered {error}, but " if error else ""
        await record(
            dataclasses.replace(
                base,
                outcome=done,
                reason=f"{reason}; {shown}re-reading shows the key {target}",
                after_status=target,
                at=utcnow(),
            )
        )
    elif status is None:
        await record(
            dataclasses.replace(
                base, outcome=Outcome.SKIPPED, reason="the key no longer exists", at=utcnow()
            )
        )
    elif refused:
        await record(
            dataclasses.replace(
                base,
                outcome=Outcome.FAILED,
                reason=f"{error}; the key is still {status}",
                after_status=status,
                at=utcnow(),
            )
        )
    elif not quiet:
        await record(
            dataclasses.replace(
                base,
                outcome=Outcome.PENDING,
                reason=f"{sent}; re-reading shows the key still {status}, but the request may "
                "yet arrive"
                if error
                else f"{sent}; still {status} at every re-read before leaving the account",
                at=utcnow(),
            )
        )


# The longest a change sent is waited for to show, whatever the config's call limits.
SETTLE_CAP = 120.0


def settle_window(config: Config) -> float:
    """How long a pending change is re-read for before it is left pending: as long as its own
    call could have taken to land (call_timeout x max_attempts), capped at SETTLE_CAP. IAM is
    eventually consistent, so a change that landed can read as not made for a while."""
    return min(config.scan.call_timeout * config.scan.max_attempts, SETTLE_CAP)


async def _resolve_pending(
    iam: IamWriter,
    record: _Recorder,
    account_id: str,
    target: str,
    done: Outcome,
    reason: str,
    window: float,
) -> None:
    """Before an account is left, re-read every key of it still pending, with growing pauses,
    until each shows an outcome or `window` seconds are over; a key still not showing one is
    journaled pending once more, with what the last re-read saw."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + window, 0.2

    def pending() -> list[Entry]:
        return [
            e
            for e in record.journal.entries
            if e.account_id == account_id and e.outcome is Outcome.PENDING
        ]

    while keys := pending():
        last = loop.time() >= deadline
        for entry in keys:
            await _settle(iam, record, entry, target, done, reason, None, False, quiet=not last)
        if last:
            return
        await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))
        pause = min(pause * 2, 5.0)


@dataclass(slots=True)
class _Run:
    """One remediation run: its config, journal, stop flag and AWS access."""

    config: Config
    record: _Recorder
    stop: Stop
    factory: ClientFactory
    credentials: AccountCredentials
    organization: Organization
    org: OrganizationsReader

    def not_attempted(self) -> str:
        return f"not attempted: interrupted by {self.stop.signal}"

    async def each_account(
        self,
        groups: dict[str, list[T]],
        work: Callable[[IamWriter, str, Sequence[T]], Awaitable[None]],
        entries_of: Callable[[T, Outcome, str], list[Entry]],
    ) -> None:
        """Run `work` per account under the remediation role. Whatever stops an account (no
        role, a network error) fails its unrecorded keys only; a pending one stays pending."""
        cap = asyncio.Semaphore(self.config.scan.max_accounts_in_flight)

        async def account(account_id: str, items: Sequence[T]) -> None:
            async with cap:
                if self.stop.signal:
                    for item in items:
                        for entry in entries_of(item, Outcome.SKIPPED, self.not_attempted()):
                            await self.record(entry)
                    return
                limiter = RateLimiter(self.config.scan.account_rate_limit)
                try:
                    creds = await self.credentials.get(account_id)
                    async with self.factory.client("iam", limiter, CallCounter(), creds) as iam:
                        _watch_attempts(iam)
                        await work(iam, account_id, items)
                except Exception as exc:
                    reason = (
                        f"{exc.error.code}: {exc.error.message}"
                        if isinstance(exc, AccountFailure)
                        else _failure(exc)
                    )
                    for item in items:
                        for entry in entries_of(item, Outcome.FAILED, reason):
                            if self.record.journal.latest(entry.key) is None:
                                await self.record(entry)

        await asyncio.gather(*(account(a, items) for a, items in sorted(groups.items())))


@asynccontextmanager
async def _session(
    config: Config, organization_id: str, record: _Recorder, stop: Stop
) -> AsyncIterator[_Run]:
    # The scan's send path: shared clients and the wire, open for the whole run.
    async with management_session(config.scan) as management:
        factory, org, sts = management.factory, management.organizations, management.sts
        identity, organization = await management.identify()
        if organization.id != organization_id:
            raise RemediationError(
                f"the plan is for organization {organization_id}; these credentials manage "
                f"{organization.id}"
            )
        # The remediation role in every account, the management account included; the config
        # as given still decides which accounts and users are in scope (its filters, its skip).
        remediation = config.for_remediation()
        credentials = AccountCredentials(
            sts,
            identity,
            remediation.role,
            remediation.organization.management_account,
            organization.management_account_id,
        )
        yield _Run(config, record, stop, factory, credentials, organization, org)


@asynccontextmanager
async def _journaled(
    journal: Journal, path: Path, stop: Stop, planned: Callable[[], list[Entry]]
) -> AsyncIterator[_Recorder]:
    """The run's journal, created before any AWS call and always ended.

    `planned` gives an entry for every key the run set out to handle, so the keys it never
    reached are journaled as not attempted. A second signal cancels the run: what was sent
    stays pending, and the journal is ended all the same.
    """
    record = _Recorder(journal, JournalFile.create(path, _header(journal)))
    try:
        yield record
    except asyncio.CancelledError:
        if stop.signal is None:
            record.file.close()  # cancelled from outside: ended as a crash would end it
            raise
    except Exception:
        if not journal.entries:
            record.file.discard()  # it failed before touching any key: nothing to record
            raise
        journal.interrupted = stop.signal
        _finish(record, planned(), "the run stopped on an error")
        raise
    journal.interrupted = stop.signal
    _finish(record, planned(), f"interrupted by {stop.signal}" if stop.signal else "not reached")


def _finish(record: _Recorder, planned: list[Entry], why: str) -> None:
    unattempted = [
        dataclasses.replace(e, outcome=Outcome.SKIPPED, reason=f"not attempted: {why}")
        for e in planned
        if record.journal.latest(e.key) is None
    ]
    record.finish(unattempted)


def _excepted(
    config: Config, rule_id: str, action: UserAction, today: date
) -> ApprovedException | None:
    """The current config's valid exception for the user under the rule, as the scan's
    evaluation judges it."""
    return governing_exception(
        config.exceptions, rule_id, action.account_id, action.user_name, action.arn, today
    )


def _excepted_text(exception: ApprovedException) -> str:
    return (
        f"excepted by the current config until {exception.expires} (owner "
        f"{exception.owner}{', ' + exception.ticket if exception.ticket else ''}): "
        f"{exception.reason}"
    )


def _still_unused(key: AccessKey, max_unused_days: int, now: datetime) -> str | None:
    """Why the live key no longer qualifies as unused (used within the limit, or created within
    it and never used); None while it still does, as the unused rule judges it."""
    if key.last_used_at is not None:
        if days_before(now, key.last_used_at) > max_unused_days:
            return None
        return (
            f"used at {iso(key.last_used_at)} ({key.last_used_service or 'unknown service'}), "
            f"within {max_unused_days} days of now"
        )
    if key.created_at is not None and days_before(now, key.created_at) > max_unused_days:
        return None
    return f"never used, but created {iso(key.created_at)}, within {max_unused_days} days of now"


async def _excluded_accounts(run: _Run, account_ids: Collection[str]) -> dict[str, str]:
    """Accounts the current config's filters leave out, read live: an account can have moved
    OU or been suspended since the scan."""
    wanted = set(account_ids)
    found = {}
    async for listed in walk_accounts(run.org):
        if listed.id in wanted:
            found[listed.id] = listed
    accounts = AccountFilter(run.config.organization, run.organization.management_account_id)
    reasons = {}
    for account_id in sorted(wanted):
        account = found.get(account_id)
        if account is None:
            reasons[account_id] = "the account is no longer in the organization"
        elif reason := accounts.skip_reason(account):
            reasons[account_id] = f"the current config leaves the account out: {reason}"
    return reasons


def _used_since(planned: datetime | None, live: datetime | None) -> bool:
    return live is not None and (planned is None or live > planned)


def _used_after_plan(planned: KeyAction, now: AccessKey) -> str:
    return (
        f"used at {iso(now.last_used_at)} ({now.last_used_service or 'unknown service'}), "
        f"after the plan was made (the plan saw {iso(planned.last_used_at) or 'never used'})"
    )


def _entry(
    action: UserAction, key_id: str, outcome: Outcome, reason: str | None, **kw: Any
) -> Entry:
    return Entry(action.account_id, action.user_name, action.arn, key_id, outcome, reason, **kw)


class _Apply:
    def __init__(self, run: _Run, plan: Plan) -> None:
        self.run = run
        self.plan = plan
        self.today = utcnow().date()

    async def account(self, iam: IamWriter, account_id: str, actions: Sequence[UserAction]) -> None:
        for action in actions:
            await self.user(iam, action)
        await _resolve_pending(
            iam,
            self.run.record,
            account_id,
            "Inactive",
            Outcome.DEACTIVATED,
            "deactivated",
            settle_window(self.run.config),
        )

    async def user(self, iam: IamWriter, action: UserAction) -> None:
        record = self.run.record

        async def each(keys: Sequence[KeyAction], outcome: Outcome, reason: str) -> None:
            for key in keys:
                await record(_entry(action, key.access_key_id, outcome, reason))

        if self.run.stop.signal:
            await each(action.deactivate, Outcome.SKIPPED, self.run.not_attempted())
            return
        # Per key, the rules it is still deactivated for: an exception granted since the plan
        # takes its rule away, and a key left with none is not touched.
        remaining: list[tuple[KeyAction, tuple[str, ...]]] = []
        for planned in action.deactivate:
            exceptions = {r: self.excepted(r, action) for r in planned.rules}
            rules = tuple(r for r, e in exceptions.items() if e is None)
            if rules:
                remaining.append((planned, rules))
            else:
                why = _per_rule({r: _excepted_text(e) for r, e in exceptions.items() if e})
                await record(_entry(action, planned.access_key_id, Outcome.SKIPPED, why))
        todo = [planned for planned, _ in remaining]
        if not todo:
            return
        try:
            keys = {key.id: key for key in await list_keys(iam, action.user_name)}
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                await each(todo, Outcome.SKIPPED, "the user no longer exists")
            else:
                await each(todo, Outcome.FAILED, _failure(exc))
            return
        # Every active key's live last use: an unused key is judged on it, and the key to keep is
        # chosen again from it (the evidence may have been edited before the plan was made from
        # it: the plan's digest binds only what it was made from).
        try:
            live = {key.id: await with_last_used(iam, key) for key in keys.values() if key.active}
        except Exception as exc:
            await each(todo, Outcome.FAILED, f"reading the keys' last use: {_failure(exc)}")
            return
        keeping = self._keeping(action, keys, live)
        for planned, rules in remaining:
            if self.run.stop.signal:
                await record(
                    _entry(action, planned.access_key_id, Outcome.SKIPPED, self.run.not_attempted())
                )
                continue
            key_id = planned.access_key_id
            await self.key(
                iam, action, planned, rules, live.get(key_id) or keys.get(key_id), keeping
            )

    def excepted(self, rule_id: str, action: UserAction) -> ApprovedException | None:
        return _excepted(self.run.config, rule_id, action, self.today)

    @staticmethod
    def _keeping(
        action: UserAction,
        keys: Mapping[str | None, AccessKey],
        live: Mapping[str | None, AccessKey],
    ) -> str | None:
        """Why the one-active-key remedy cannot go ahead for the user now; None when it can: the
        key to keep is still active, and the live last use still picks it."""
        keep = keys.get(action.keep) if action.keep else None
        if keep is None or not keep.active:
            return (
                f"the key to keep, {action.keep}, is no longer active; deactivating the others "
                "could lock the user out"
            )
        chosen = recommended_key(
            UserKeys(action.account_id, action.user_name, action.arn, "", tuple(live.values()))
        )
        if chosen is None or chosen.key.id != action.keep:
            picked = f"{chosen.key.id} to keep ({chosen.reason})" if chosen else "no key"
            return (
                f"the keys' live last use picks {picked}, not the plan's {action.keep}; "
                "deactivating the others could switch off the key in use (was the evidence "
                "edited, or has use changed since the scan?)"
            )
        return None

    async def key(
        self,
        iam: IamWriter,
        action: UserAction,
        planned: KeyAction,
        rules: tuple[str, ...],
        live: AccessKey | None,
        keeping: str | None,
    ) -> None:
        """Deactivate the key for each of `rules` whose live re-check still holds: for the
        one-active-key rule, the kept key is still the one in use; for the unused rule, the key's
        live last use is still beyond the plan's limit. A key used since the plan never goes."""
        record = self.run.record
        key_id = planned.access_key_id
        if live is None:
            await record(_entry(action, key_id, Outcome.SKIPPED, "the key no longer exists"))
            return
        if not live.active:
            await record(_entry(action, key_id, Outcome.SKIPPED, f"already {live.status}"))
            return
        before = {"before_status": live.status, "before_last_used_at": live.last_used_at}
        if _used_since(planned.last_used_at, live.last_used_at):
            reason = _used_after_plan(planned, live)
            await record(_entry(action, key_id, Outcome.SKIPPED, reason, **before))
            return
        unused_days = self.plan.thresholds(UNUSED)["max_unused_days"] if UNUSED in rules else 0
        why = {
            MULTIPLE_ACTIVE_KEYS: lambda: keeping,
            UNUSED: lambda: _still_unused(live, unused_days, utcnow()),
        }
        left = {rule: why[rule]() for rule in rules}
        held = [rule for rule, reason in left.items() if reason is None]
        if not held:
            not_held = {rule: reason for rule, reason in left.items() if reason}
            await record(_entry(action, key_id, Outcome.SKIPPED, _per_rule(not_held), **before))
            return
        kept = f"; keeping {action.keep} ({action.keep_reason})" if action.keep else ""
        base = _entry(action, key_id, Outcome.PENDING, None, **before)
        await _change(
            iam, record, base, "Inactive", Outcome.DEACTIVATED, f"for {', '.join(held)}{kept}"
        )


def _per_rule(reasons: dict[str, str]) -> str:
    """One reason as it is; several, each after its rule."""
    if len(reasons) == 1:
        return next(iter(reasons.values()))
    return "; ".join(f"{rule}: {reason}" for rule, reason in reasons.items())


async def apply_plan(
    plan: Plan, config: Config, journal_path: Path, stop: Stop | None = None
) -> Journal:
    """Deactivate the plan's keys that still qualify; the plan must already be checked
    against its evidence (`plan.check`)."""
    stop = stop or Stop()
    journal = Journal(
        "apply",
        plan.source_run_id,
        plan.organization_id,
        utcnow(),
        evidence_sha256=plan.evidence.sha256,
    )
    groups: dict[str, list[UserAction]] = {}
    for action in plan.actions:
        groups.setdefault(action.account_id, []).append(action)

    def entries_of(action: UserAction, outcome: Outcome, reason: str) -> list[Entry]:
        return [_entry(action, k.access_key_id, outcome, reason) for k in action.deactivate]

    def planned() -> list[Entry]:
        return [e for a in plan.actions for e in entries_of(a, Outcome.SKIPPED, "")]

    async with (
        _journaled(journal, journal_path, stop, planned) as record,
        _session(config, plan.organization_id, record, stop) as run,
    ):
        for account_id, reason in (await _excluded_accounts(run, groups)).items():
            for action in groups.pop(account_id):
                for entry in entries_of(action, Outcome.SKIPPED, reason):
                    await record(entry)
        await run.each_account(groups, _Apply(run, plan).account, entries_of)
    return journal


@dataclass(frozen=True, slots=True)
class Undo:
    """What a rollback would undo: the changes orgscan confirmed, and those left pending."""

    deactivated: tuple[Entry, ...]
    pending: tuple[Entry, ...]


def to_undo(applied: Journal, accounts: Collection[str] = (), keys: Collection[str] = ()) -> Undo:
    """The apply journal's changes, limited to the keys of `accounts` and the `keys` given
    (all when neither is). A value that selects nothing is an error, never an empty rollback."""
    changed = [e for e in applied.entries if e.outcome in (Outcome.DEACTIVATED, Outcome.PENDING)]
    for wanted, of in ((accounts, "account_id"), (keys, "access_key_id")):
        for value in wanted:
            if not any(getattr(e, of) == value for e in changed):
                raise RemediationError(
                    f"{value}: the journal records no change to undo for this "
                    f"{'account' if of == 'account_id' else 'key'}"
                )
    if accounts or keys:
        changed = [e for e in changed if e.account_id in accounts or e.access_key_id in keys]
    return Undo(
        deactivated=tuple(e for e in changed if e.outcome is Outcome.DEACTIVATED),
        pending=tuple(e for e in changed if e.outcome is Outcome.PENDING),
    )


class _Rollback:
    def __init__(self, run: _Run, include_pending: bool) -> None:
        self.run = run
        self.include_pending = include_pending

    async def account(self, iam: IamWriter, account_id: str, entries: Sequence[Entry]) -> None:
        for entry in entries:
            await self.key(iam, entry)
        await _resolve_pending(
            iam,
            self.run.record,
            account_id,
            "Active",
            Outcome.REACTIVATED,
            "rolled back",
            settle_window(self.run.config),
        )

    async def key(self, iam: IamWriter, applied: Entry) -> None:
        record = self.run.record
        base = dataclasses.replace(
            applied,
            outcome=Outcome.PENDING,
            reason=None,
            before_last_used_at=None,
            after_status=None,
            at=utcnow(),
        )

        async def note(outcome: Outcome, reason: str, status: str | None = None) -> None:
            await record(
                dataclasses.replace(base, outcome=outcome, reason=reason, before_status=status)
            )

        if self.run.stop.signal:
            await note(Outcome.SKIPPED, self.run.not_attempted())
            return
        # Each key on its own: a user deleted since, or one throttled call, must not stop the
        # rest of the account from being re-activated.
        try:
            status = await _live_status(iam, applied.user_name, applied.access_key_id)
        except Exception as exc:
            await note(Outcome.FAILED, _failure(exc))
            return
        if status is None:
            await note(Outcome.SKIPPED, "the key or its user no longer exists")
        elif status == "Active":
            await note(Outcome.SKIPPED, "already Active", status)
        elif status != "Inactive":
            await note(
                Outcome.SKIPPED,
                f"its status is {status}; rollback re-activates only keys orgscan set Inactive",
                status,
            )
        elif applied.outcome is Outcome.PENDING and not self.include_pending:
            await note(
                Outcome.SKIPPED,
                "the apply left this change pending (sent, never confirmed), so orgscan cannot "
                "show that it made the key Inactive; left Inactive (--include-pending "
                "re-activates such keys)",
                status,
            )
        else:
            await _change(
                iam,
                record,
                dataclasses.replace(base, before_status=status),
                "Active",
                Outcome.REACTIVATED,
                "rolled back",
            )


async def rollback(
    applied: Journal,
    undo: Undo,
    config: Config,
    journal_path: Path,
    stop: Stop | None = None,
    *,
    applied_path: Path,
    include_pending: bool = False,
) -> Journal:
    """Re-activate the keys in `undo` that the apply changed; a pending one only with
    `include_pending`, and never one that is not Inactive now."""
    stop = stop or Stop()
    journal = Journal(
        "rollback",
        applied.source,
        applied.organization_id,
        utcnow(),
        rolls_back=str(applied_path.resolve()),
    )
    groups: dict[str, list[Entry]] = {}
    for entry in (*undo.deactivated, *undo.pending):
        groups.setdefault(entry.account_id, []).append(entry)

    def entries_of(entry: Entry, outcome: Outcome, reason: str) -> list[Entry]:
        return [
            dataclasses.replace(
                entry,
                outcome=outcome,
                reason=reason,
                before_status=None,
                before_last_used_at=None,
                after_status=None,
                at=utcnow(),
            )
        ]

    def planned() -> list[Entry]:
        return [e for es in groups.values() for x in es for e in entries_of(x, Outcome.SKIPPED, "")]

    async with (
        _journaled(journal, journal_path, stop, planned) as record,
        _session(config, applied.organization_id, record, stop) as run,
    ):
        await run.each_account(groups, _Rollback(run, include_pending).account, entries_of)
    return journal
