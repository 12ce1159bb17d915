"""The IAM credential report: fetching and parsing it (the live strategy reads it too, for the
keys' last use and the root user's keys), and the `credential-report` strategy built on it.

The strategy makes about 3-5 calls per account instead of one per user, but AWS regenerates
the report at most every 4 hours, and its rows carry no key ids. Users any rule could fail on
the report's word are therefore re-read live, so a stale report can never produce a finding
and every key finding names its key; the report's GeneratedTime is kept as evidence.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from orgscan.aws.errors import error_code
from orgscan.aws.interfaces import IamReader
from orgscan.collect.usage import Needs, root_keys_from_summary, with_last_use
from orgscan.collect.users import (
    Collected,
    IamUser,
    last_use_notes,
    list_users,
    live_user_keys,
)
from orgscan.concurrency import bounded_map, task_group
from orgscan.model import (
    AccessKey,
    AccountFailure,
    KeySource,
    LastUseSource,
    RootKeys,
    RootKeySource,
    UserKeys,
    utcnow,
)

ROOT_ROW = "<root_account>"
# Cells AWS writes where there is no date: none of them may be read as a date or as "no key".
NOT_A_DATE = frozenset({"N/A", "no_information", "not_supported"})
KEY_COLUMNS = ("active", "last_rotated", "last_used_date", "last_used_region", "last_used_service")
REQUIRED_COLUMNS = (
    "user",
    "arn",
    *(f"access_key_{slot}_{column}" for slot in (1, 2) for column in KEY_COLUMNS),
)
# Answers that mean "ask again later" rather than failure.
NOT_READY = frozenset({"ReportInProgress", "ReportNotPresent", "ReportExpired"})


@dataclass(frozen=True, slots=True)
class ReportPolling:
    """When to ask again for a report AWS is still generating.

    AWS takes seconds to generate a report and says nothing about how long; the wait between
    polls grows by `factor` from `first_delay` up to `max_delay`. Every account of a sweep
    waits for its report, so what counts is how late a ready report is seen: at most
    `max_delay`. A poll a second costs the account's IAM rate budget one call a second, while
    it is idle; with 5 s, reports ready at 4 s were seen at 6.6 s, and the smallest accounts,
    entered last, ended the sweep that much later.
    """

    first_delay: float = 0.5
    max_delay: float = 1.0
    timeout: float = 300.0
    factor: float = 1.5


class MalformedReport(AccountFailure):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__("MalformedCredentialReport", f"line {line}: {problem}")


async def fetch_report(
    iam: IamReader, polling: ReportPolling, until: asyncio.Event | None = None
) -> tuple[bytes, datetime | None]:
    """Generate the report, then poll GetCredentialReport, backing off, until AWS hands it over
    or time runs out.

    Polling GetCredentialReport itself (it answers ReportInProgress until the report is ready)
    saves the round trip of polling GenerateCredentialReport until COMPLETE and only then
    asking for the report. With `until`, a report not ready at once is asked for only once it is
    set: the live strategy's listing needs the account's rate budget more, and in a large account
    takes as long as the report, which is then ready at the first poll.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + polling.timeout
    delay = polling.first_delay
    due = started + delay  # the next poll of the schedule
    state = (await iam.generate_credential_report()).get("State")
    if until is not None and state != "COMPLETE":
        await until.wait()
        if loop.time() >= due:
            # The polls due meanwhile are one poll now; the schedule goes on from there.
            state = None
            while due <= loop.time():
                delay = min(delay * polling.factor, polling.max_delay)
                due += delay
    while True:
        if state == "COMPLETE" or state is None:
            try:
                response = await iam.get_credential_report()
            except ClientError as exc:
                code = error_code(exc)
                if code not in NOT_READY:
                    raise
                state = code
            else:
                return response["Content"], response.get("GeneratedTime")
        if due > deadline:
            raise AccountFailure(
                "CredentialReportTimeout",
                f"the credential report was not ready after {polling.timeout:g} s "
                f"(last state {state})",
            )
        await asyncio.sleep(max(0.0, due - loop.time()))
        delay = min(delay * polling.factor, polling.max_delay)
        due += delay
        if state in ("ReportNotPresent", "ReportExpired"):
            # Nothing is being generated (any more): start again.
            state = (await iam.generate_credential_report()).get("State")
        else:
            state = None  # poll the report itself


def _boolean(cell: str, line: int, column: str) -> bool:
    if cell == "true":
        return True
    if cell == "false":
        return False
    raise MalformedReport(line, f"{column} is {cell!r}, expected 'true' or 'false'")


def _date(cell: str, line: int, column: str) -> datetime | None:
    if cell in NOT_A_DATE:
        return None
    try:
        return datetime.fromisoformat(cell)
    except ValueError:
        raise MalformedReport(line, f"{column} is {cell!r}, expected a date or N/A") from None


def _text(cell: str) -> str | None:
    return None if cell in NOT_A_DATE else cell


def _user_from_arn(arn: str, line: int) -> IamUser:
    # arn:<partition>:iam::<account>:user<path><name>
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("user/"):
        raise MalformedReport(line, f"arn is {arn!r}, expected an IAM user ARN")
    resource = parts[5][len("user") :]
    path, _, name = resource.rpartition("/")
    return IamUser(name=name, arn=arn, path=path + "/")


@dataclass(frozen=True, slots=True)
class CredentialReport:
    """One account's report: its IAM users' key slots, and its root user's keys."""

    users: dict[str, UserKeys]  # by user ARN, in the report's order
    root: RootKeys | None  # None when the report has no `<root_account>` row (AWS's always has)
    generated_at: datetime | None


def _slots(
    row: list[str], index: dict[str, int], line: int, generated_at: datetime | None
) -> list[AccessKey]:
    """The row's keys, each with its last use as of the report; no key id."""
    keys = []
    for slot in (1, 2):
        cell = {c: row[index[f"access_key_{slot}_{c}"]] for c in KEY_COLUMNS}
        name = f"access_key_{slot}"
        active = _boolean(cell["active"], line, f"{name}_active")
        rotated = _date(cell["last_rotated"], line, f"{name}_last_rotated")
        # An empty slot is inactive with no rotation date; an inactive key still has one.
        if active or rotated is not None:
            keys.append(
                AccessKey(
                    id=None,
                    status="Active" if active else "Inactive",
                    created_at=rotated,
                    last_used_at=_date(cell["last_used_date"], line, f"{name}_last_used_date"),
                    last_used_service=_text(cell["last_used_service"]),
                    last_used_region=_text(cell["last_used_region"]),
                    last_used_source=LastUseSource.CREDENTIAL_REPORT,
                    last_used_as_of=generated_at,
                )
            )
    return keys


def parse_report(
    content: bytes, account_id: str, generated_at: datetime | None = None
) -> CredentialReport:
    """Every IAM user in the report with its key slots, and the root user's keys (the root
    user is not an IAM user). `generated_at` is the report's GeneratedTime."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedReport(1, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise MalformedReport(reader.line_num, f"not valid CSV: {exc}") from None
    if not rows:
        raise MalformedReport(1, "the report is empty")
    header = rows[0]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise MalformedReport(1, f"header lacks column(s) {', '.join(missing)}")
    index = {column: position for position, column in enumerate(header)}
    users: dict[str, UserKeys] = {}
    root = None
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise MalformedReport(line, f"expected {len(header)} fields, got {len(row)}")
        keys = _slots(row, index, line, generated_at)
        if row[index["user"]] == ROOT_ROW:
            root = RootKeys(
                source=RootKeySource.CREDENTIAL_REPORT,
                as_of=generated_at,
                present=bool(keys),
                active=sum(1 for key in keys if key.active),
            )
            continue
        user = _user_from_arn(row[index["arn"]], line)
        if user.name != row[index["user"]]:
            raise MalformedReport(line, f"user {row[index['user']]!r} does not match its ARN")
        users[user.arn] = UserKeys(
            account_id=account_id,
            user_name=user.name,
            arn=user.arn,
            path=user.path,
            access_keys=tuple(keys),
            source=KeySource.CREDENTIAL_REPORT,
        )
    return CredentialReport(users, root, generated_at)


async def read_report(
    iam: IamReader, account_id: str, polling: ReportPolling, until: asyncio.Event | None = None
) -> CredentialReport:
    content, generated_at = await fetch_report(iam, polling, until)
    return parse_report(content, account_id, generated_at)


def _older(when: datetime | None, days: int, now: datetime) -> bool:
    # A day early: the rule's exact boundary is the evaluation's, on what is read live.
    return when is None or now - when >= timedelta(days=days - 1)


def could_fail(user: UserKeys, needs: Needs, now: datetime) -> bool:
    """Whether any rule enabled could fail this report row: more than one active key, or an
    active key near or beyond the rotation or the unused limit. The report has no key ids, and
    a key finding names its key, so such users are read again live."""
    if needs.flagged_key_last_use and (user.active_key_count or 0) > 1:
        return True
    return any(
        (needs.max_age_days is not None and _older(key.created_at, needs.max_age_days, now))
        or (
            needs.max_unused_days is not None
            and _older(key.last_used_at or key.created_at, needs.max_unused_days, now)
        )
        for key in user.access_keys
        if key.active
    )


async def root_keys(iam: IamReader, report: CredentialReport | None, notes: list[str]) -> RootKeys:
    """The root user's keys from the report's `<root_account>` row, else from
    GetAccountSummary; a report without that row is noted (AWS's always has one)."""
    if report is not None and report.root is not None:
        return report.root
    if report is not None:
        notes.append(
            f"the credential report has no {ROOT_ROW} row; the root user's access keys were "
            "read with GetAccountSummary"
        )
    return await root_keys_from_summary(iam)


async def collect_from_report(
    iam: IamReader,
    account_id: str,
    workers: int,
    polling: ReportPolling,
    needs: Needs,
    recheck_arns: Collection[str] = frozenset(),
) -> Collected:
    """The report's rows, corrected live where the report can be wrong or has too little.

    ListUsers (one call per 1,000 users) runs while the report is generated. Users any rule
    enabled could fail on the report's word (`could_fail`: a key finding needs the key id,
    which the report lacks), users in `recheck_arns` (a baseline's flagged users, whose
    resolution a stale report could only pretend to see), and users created since it was
    generated, are read live; their keys' last use is the report's where a slot matches. Users
    deleted since are dropped with a note. What stays invisible is a second key added to
    another known user since the report was generated: that is the strategy's staleness, and
    the evidence records its age.
    """
    async with task_group() as group:
        reading = group.create_task(read_report(iam, account_id, polling))
        listing = group.create_task(list_users(iam))
    report = reading.result()
    current = {user.arn: user for user in listing.result()}
    reported = report.users
    now = utcnow()
    # Report rows are never unreadable users: their counts are known.
    recheck = [
        IamUser(u.user_name, u.arn, u.path)
        for u in reported.values()
        if u.arn in recheck_arns or could_fail(u, needs, now)
    ] + [user for arn, user in current.items() if arn not in reported]
    rechecked = await bounded_map(
        lambda u: live_user_keys(iam, account_id, u, flagged_last_use=False), recheck, workers
    )
    found = [user for user in rechecked if user is not None]
    live = {user.arn: user for user in await with_last_use(iam, found, reported, needs, workers)}
    read_live = {user.arn for user in recheck}
    result = Collected(users=[], report_generated_at=report.generated_at)
    for arn in sorted(reported.keys() | current.keys()):
        if arn in live:
            result.users.append(live[arn])
        elif arn in current and arn not in read_live:
            result.users.append(reported[arn])
        else:
            result.notes.append(
                f"user {arn} is in the credential report but was deleted since it was generated"
                if arn in reported
                else f"user {arn} was deleted between ListUsers and ListAccessKeys"
            )
    result.notes.extend(last_use_notes(result.users))
    if needs.root_keys:
        result.root_keys = await root_keys(iam, report, result.notes)
    return result
