"""The `live` strategy: ListUsers, then ListAccessKeys for every user. Exact at scan time."""

from __future__ import annotations

from orgscan.aws.interfaces import IamReader
from orgscan.collect.users import Collected, last_use_notes, list_users, live_user_keys
from orgscan.concurrency import bounded_map


async def collect_live(iam: IamReader, account_id: str, workers: int) -> Collected:
    users = await list_users(iam)
    found = await bounded_map(lambda u: live_user_keys(iam, account_id, u), users, workers)
    result = Collected(users=[u for u in found if u is not None])
    result.notes.extend(
        f"user {user.arn} was deleted between ListUsers and ListAccessKeys"
        for user, keys in zip(users, found, strict=True)
        if keys is None
    )
    result.notes.extend(last_use_notes(result.users))
    return result
