"""The `live` strategy: ListUsers, then ListAccessKeys for every user. Exact at scan time.

When the rules need the keys' last use or the root user's keys, the account's credential report
is generated and read at the same time as the listing, and used for those alone: counts and
statuses stay live. Where the report cannot be had, each active key's last use is read with
GetAccessKeyLastUsed and the root user's keys with GetAccountSummary, and the account says why.
"""

from __future__ import annotations

import asyncio

from orgscan.aws.errors import error_code, error_message
from orgscan.aws.interfaces import IamReader
from orgscan.collect.credential_report import (
    CredentialReport,
    ReportPolling,
    read_report,
    root_keys,
)
from orgscan.collect.usage import Needs, with_last_use
from orgscan.collect.users import Collected, last_use_notes, list_users, live_user_keys
from orgscan.concurrency import bounded_map, task_group
from orgscan.model import AccountFailure, ScanError, UserKeys


async def _listing(
    iam: IamReader, account_id: str, workers: int, flagged_last_use: bool
) -> tuple[list[UserKeys], list[str]]:
    users = await list_users(iam)
    found = await bounded_map(
        lambda u: live_user_keys(iam, account_id, u, flagged_last_use), users, workers
    )
    notes = [
        f"user {user.arn} was deleted between ListUsers and ListAccessKeys"
        for user, keys in zip(users, found, strict=True)
        if keys is None
    ]
    return [u for u in found if u is not None], notes


async def _report_or_why(
    iam: IamReader, account_id: str, polling: ReportPolling, listed: asyncio.Event
) -> CredentialReport | ScanError:
    """The report, or why it could not be had: any failure of it leaves the listing whole.
    Generated at once; asked for once the users are listed (`fetch_report`'s `until`)."""
    try:
        return await read_report(iam, account_id, polling, until=listed)
    except AccountFailure as exc:  # malformed, or not ready in time
        return exc.error
    except Exception as exc:
        return ScanError(error_code(exc), error_message(exc))


def _fallback_note(why: ScanError, needs: Needs) -> str:
    instead = []
    if needs.key_last_use:
        instead.append("each active key's last use with GetAccessKeyLastUsed")
    if needs.root_keys:
        instead.append("the root user's access keys with GetAccountSummary")
    return (
        f"the credential report could not be read ({why.code}: {why.message}); read instead "
        + " and ".join(instead)
    )


async def collect_live(
    iam: IamReader, account_id: str, workers: int, needs: Needs, polling: ReportPolling
) -> Collected:
    if not needs.report:
        users, notes = await _listing(
            iam, account_id, workers, flagged_last_use=needs.flagged_key_last_use
        )
        result = Collected(users=users, notes=notes)
        result.notes.extend(last_use_notes(result.users))
        return result
    listed = asyncio.Event()

    async def listing() -> tuple[list[UserKeys], list[str]]:
        try:
            return await _listing(iam, account_id, workers, flagged_last_use=False)
        finally:
            listed.set()

    async with task_group() as group:
        reading = group.create_task(_report_or_why(iam, account_id, polling, listed))
        listed_users = group.create_task(listing())
    users, notes = listed_users.result()
    got = reading.result()
    report = got if isinstance(got, CredentialReport) else None
    if isinstance(got, ScanError):
        notes.append(_fallback_note(got, needs))
    users = await with_last_use(iam, users, report.users if report else None, needs, workers)
    result = Collected(
        users=users, notes=notes, report_generated_at=report.generated_at if report else None
    )
    result.notes.extend(last_use_notes(result.users))
    if needs.root_keys:
        result.root_keys = await root_keys(iam, report, result.notes)
    return result
