"""The `credential-report` strategy: one IAM credential report per account, then live re-checks.

About 3-5 calls per account instead of one per user, but AWS regenerates the report at most
every 4 hours. Users the report flags are therefore re-read live, so a stale report can never
produce a finding; the report's GeneratedTime is kept as evidence.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from orgscan.clients import error_code
from orgscan.collect.live import Collected, IamUser, bounded_map, live_user_keys
from orgscan.model import AccessKey, AccountFailure, KeySource, UserKeys

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
    first_delay: float = 1.0
    max_delay: float = 10.0
    timeout: float = 300.0


class MalformedReport(AccountFailure):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__("MalformedCredentialReport", f"line {line}: {problem}")


async def fetch_report(iam: Any, polling: ReportPolling) -> tuple[bytes, datetime | None]:
    """Generate the report and poll, backing off, until AWS hands it over or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + polling.timeout
    delay = polling.first_delay
    while True:
        state = (await iam.generate_credential_report()).get("State")
        if state == "COMPLETE":
            try:
                response = await iam.get_credential_report()
            except ClientError as exc:
                if error_code(exc) not in NOT_READY:
                    raise
            else:
                return response["Content"], response.get("GeneratedTime")
        if loop.time() + delay > deadline:
            raise AccountFailure(
                "CredentialReportTimeout",
                f"the credential report was not ready after {polling.timeout:g} s "
                f"(last state {state})",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, polling.max_delay)


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


def parse_report(content: bytes, account_id: str) -> list[UserKeys]:
    """Every IAM user in the report with its key slots; the root user is not an IAM user."""
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
    users = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise MalformedReport(line, f"expected {len(header)} fields, got {len(row)}")
        if row[index["user"]] == ROOT_ROW:
            continue
        user = _user_from_arn(row[index["arn"]], line)
        if user.name != row[index["user"]]:
            raise MalformedReport(line, f"user {row[index['user']]!r} does not match its ARN")
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
                    )
                )
        users.append(
            UserKeys(
                account_id=account_id,
                user_name=user.name,
                arn=user.arn,
                path=user.path,
                access_keys=tuple(keys),
                source=KeySource.CREDENTIAL_REPORT,
            )
        )
    return users


async def collect_from_report(
    iam: Any, account_id: str, workers: int, polling: ReportPolling
) -> Collected:
    content, generated_at = await fetch_report(iam, polling)
    users = parse_report(content, account_id)
    flagged = [u for u in users if u.active_key_count > 1]
    rechecked = await bounded_map(
        lambda u: live_user_keys(iam, account_id, IamUser(u.user_name, u.arn, u.path)),
        flagged,
        workers,
    )
    live = {u.arn: now for u, now in zip(flagged, rechecked, strict=True)}
    result = Collected(users=[], report_generated_at=generated_at)
    for user in users:
        if user.arn not in live:
            result.users.append(user)
        elif (now := live[user.arn]) is not None:
            result.users.append(now)
        else:
            result.notes.append(
                f"user {user.arn} is in the credential report but was deleted "
                "before the live re-check"
            )
    return result
