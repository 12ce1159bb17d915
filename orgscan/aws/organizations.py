"""The organization and its accounts with their OU paths, as AWS Organizations lists them.

The OU tree is walked top-down (ListRoots → ListOrganizationalUnitsForParent →
ListAccountsForParent), so OU paths cost calls per OU, not per account, and each account is
yielded as soon as it is listed so its scan can start while the walk goes on. An earlier
sweep's account sizes (`WalkOrder`) steer the walk towards the largest accounts first.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orgscan.aws.interfaces import OrganizationsReader
from orgscan.model import UNKNOWN_STATE, Account, join_ou_path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    management_account_id: str


async def describe_organization(org: OrganizationsReader) -> Organization:
    response = await org.describe_organization()
    data = response["Organization"]
    return Organization(id=data["Id"], management_account_id=data["MasterAccountId"])


def account_state(item: dict[str, Any]) -> str:
    """The lifecycle state: `State`, else the retired `Status` (older endpoints, moto)."""
    return str(item.get("State") or item.get("Status") or UNKNOWN_STATE)


async def _pages(
    client: OrganizationsReader, operation: str, key: str, page_size: int | None, **kwargs: Any
) -> AsyncIterator[dict[str, Any]]:
    paginator = client.get_paginator(operation)
    config = {"PageSize": page_size} if page_size else {}
    async for page in paginator.paginate(**kwargs, PaginationConfig=config):
        for item in page.get(key, []):
            yield item


@dataclass(frozen=True, slots=True)
class WalkOrder:
    """Where the walk goes first: per root or OU id, the largest expected duration (seconds) of
    a known account directly in it (`accounts`, for its ListAccountsForParent) and anywhere
    below it (`below`, for its ListOrganizationalUnitsForParent). Parents it does not know
    come after, in breadth-first listing order, as without it."""

    accounts: Mapping[str, float] = field(default_factory=dict)
    below: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, known: Iterable[tuple[tuple[str, ...], float]]) -> WalkOrder:
        """From accounts an earlier sweep listed: each one's OU ids (root first, then each OU
        down to its parent) and its expected duration."""
        accounts: dict[str, float] = {}
        below: dict[str, float] = {}
        for ou_ids, seconds in known:
            if not ou_ids:  # evidence older than OU ids: nothing to steer by
                continue
            accounts[ou_ids[-1]] = max(seconds, accounts.get(ou_ids[-1], 0.0))
            for ou_id in ou_ids[:-1]:
                below[ou_id] = max(seconds, below.get(ou_id, 0.0))
        return cls(accounts, below)


# Listings in flight at once. The walk is a chain of calls (a parent's OUs before theirs): one
# at a time, on an event loop busy with hundreds of accounts, it took 10 s and more to list
# `org-1k`'s 1,000 accounts, each of them unable to start its IAM calls before. Four keep
# its ~80 calls to a fraction of that, and of any Organizations limit, for the AssumeRoles.
WALK_LANES = 4

_Step = tuple[float, int, bool, str, tuple[str, ...], tuple[str, ...]]


async def walk_accounts(
    org: OrganizationsReader, page_size: int | None = None, order: WalkOrder | None = None
) -> AsyncIterator[Account]:
    """Every account in the organization, each once, with its OU path, yielded as listed.

    A parent's two listings (its accounts, its child OUs) are steps, up to WALK_LANES of them
    at once, taken largest `order` first, ties in the order the walk found them (breadth
    first, a parent's accounts before its child OUs). Only parents the walk itself found are
    listed, so an OU that `order` names and that no longer exists is never asked for, and an
    OU path is always made of today's names. A listing that fails ends the walk with its error:
    no step starts after it, and the steps running beside it end first.
    """
    order = order or WalkOrder()
    # (-priority, sequence, lists accounts?, parent id, OU names, OU ids): a heap of steps.
    steps: list[_Step] = []
    sequence = itertools.count()
    # Accounts as listed, and each step's task once it ends (after its accounts): the cue to
    # start the next steps, and to stop when none is left.
    out: asyncio.Queue[Account | asyncio.Task[None]] = asyncio.Queue()
    running: set[asyncio.Task[None]] = set()

    def found(parent_id: str, names: tuple[str, ...], ids: tuple[str, ...]) -> None:
        for accounts, priority in (
            (True, order.accounts.get(parent_id, 0.0)),
            (False, order.below.get(parent_id, 0.0)),
        ):
            heapq.heappush(steps, (-priority, next(sequence), accounts, parent_id, names, ids))

    async def take(step: _Step) -> None:
        _, _, accounts, parent_id, names, ids = step
        if accounts:
            async for item in _pages(
                org, "list_accounts_for_parent", "Accounts", page_size, ParentId=parent_id
            ):
                out.put_nowait(
                    Account(
                        id=item["Id"],
                        name=item.get("Name", ""),
                        email=item.get("Email", ""),
                        state=account_state(item),
                        ou_path=join_ou_path(names),
                        ou_ids=ids,
                    )
                )
            return
        async for ou in _pages(
            org,
            "list_organizational_units_for_parent",
            "OrganizationalUnits",
            page_size,
            ParentId=parent_id,
        ):
            found(ou["Id"], (*names, ou["Name"]), (*ids, ou["Id"]))

    def start() -> None:
        while steps and len(running) < WALK_LANES:
            task = asyncio.ensure_future(take(heapq.heappop(steps)))
            running.add(task)
            task.add_done_callback(out.put_nowait)

    async for root in _pages(org, "list_roots", "Roots", page_size):
        found(root["Id"], (root.get("Name") or "Root",), (root["Id"],))
    failure: BaseException | None = None
    try:
        start()
        while running:
            item = await out.get()
            if isinstance(item, Account):
                yield item
                continue
            running.discard(item)
            error = item.exception()
            if error is not None and failure is not None:
                log.warning("another listing of the organization failed too: %s", error)
            failure = failure or error
            if failure is None:
                start()
        if failure is not None:
            # A failed listing fails the walk, once the listings beside it have yielded
            # what they hold.
            raise failure
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
