"""The OU walk: every account once, streamed, and the hint's largest accounts' OUs first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orgscan.aws.organizations import WALK_LANES, WalkOrder, walk_accounts
from orgscan.model import Account

# root r-1: accounts a-root; OUs ou-1 .. ou-12 (listed in that order), each with two accounts;
# ou-12 holds ou-deep, which holds the largest account of the last sweep.
CHILD_OUS = [f"ou-{i}" for i in range(1, 13)]
OUS: dict[str, list[str]] = {"r-1": CHILD_OUS, "ou-12": ["ou-deep"]}
ACCOUNTS: dict[str, list[str]] = {
    "r-1": ["a-root"],
    **{ou: [f"a-{ou}-1", f"a-{ou}-2"] for ou in CHILD_OUS},
    "ou-deep": ["a-largest"],
}


class FakeOrganizations:
    """Organizations' listings, one item a page, each call recorded. A parent in `held` answers
    only once its event is set; a parent not in the tree answers ParentNotFoundException; a
    listing in `denied` ((operation, parent), or (operation, None) for every parent) answers
    AccessDenied."""

    def __init__(self, denied: frozenset[tuple[str, str | None]] = frozenset()) -> None:
        self.calls: list[tuple[str, str]] = []
        self.held: dict[str, asyncio.Event] = {}
        self.denied = denied

    def get_paginator(self, operation: str) -> FakeOrganizations._Paginator:
        return self._Paginator(self, operation)

    async def describe_organization(self, **_: Any) -> dict[str, Any]:
        raise NotImplementedError

    class _Paginator:
        def __init__(self, org: FakeOrganizations, operation: str) -> None:
            self.org, self.operation = org, operation

        async def paginate(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
            parent = params.get("ParentId", "")
            self.org.calls.append((self.operation, parent))
            if {(self.operation, parent), (self.operation, None)} & self.org.denied:
                raise PermissionError("AccessDenied")
            if parent in self.org.held:
                await self.org.held[parent].wait()
            await asyncio.sleep(0)  # an answer takes a turn of the loop
            if self.operation == "list_roots":
                yield {"Roots": [{"Id": "r-1", "Name": "Root"}]}
                return
            if parent not in OUS.keys() | ACCOUNTS.keys() | set(CHILD_OUS):
                raise LookupError(f"ParentNotFoundException: {parent}")
            if self.operation == "list_accounts_for_parent":
                for account_id in ACCOUNTS.get(parent, []):
                    yield {"Accounts": [{"Id": account_id, "Name": account_id, "State": "ACTIVE"}]}
            else:
                for ou in OUS.get(parent, []):
                    yield {"OrganizationalUnits": [{"Id": ou, "Name": ou.upper()}]}


async def walk(org: FakeOrganizations, order: WalkOrder | None = None) -> list[Account]:
    return [account async for account in walk_accounts(org, order=order)]


def every_account() -> set[str]:
    return {account for accounts in ACCOUNTS.values() for account in accounts}


async def test_without_a_hint_every_account_is_listed_once_breadth_first() -> None:
    org = FakeOrganizations()
    accounts = await walk(org)
    assert sorted(a.id for a in accounts) == sorted(every_account())
    largest = next(a for a in accounts if a.id == "a-largest")
    assert largest.ou_path == "Root/OU-12/OU-DEEP"
    assert largest.ou_ids == ("r-1", "ou-12", "ou-deep")
    # The deepest OU comes last: the walk reaches it after every OU above it.
    assert org.calls[-2:] == [
        ("list_accounts_for_parent", "ou-deep"),
        ("list_organizational_units_for_parent", "ou-deep"),
    ]


async def test_a_hint_sends_the_walk_to_its_largest_accounts_ous_first() -> None:
    org = FakeOrganizations()
    order = WalkOrder.of(
        [
            (("r-1", "ou-12", "ou-deep"), 100.0),  # the largest, two OUs down
            (("r-1", "ou-3"), 5.0),
            (("r-1", "gone-ou"), 500.0),  # an OU deleted since the hint: never asked for
        ]
    )
    accounts = await walk(org, order)

    assert sorted(a.id for a in accounts) == sorted(every_account())  # still everything
    assert next(a for a in accounts if a.id == "a-largest").ou_path == "Root/OU-12/OU-DEEP"
    parents = [parent for operation, parent in org.calls if operation != "list_roots"]
    # Straight down to the largest account: the root's OUs, ou-12's, then ou-deep's accounts,
    # each as soon as the step before it has answered, ahead of the OUs nobody knows.
    deep = org.calls.index(("list_accounts_for_parent", "ou-deep"))
    assert deep <= 1 + 3 + WALK_LANES
    assert org.calls.index(("list_organizational_units_for_parent", "ou-12")) < deep
    first_unknown = org.calls.index(("list_accounts_for_parent", "ou-1"))
    assert org.calls.index(("list_accounts_for_parent", "ou-3")) < first_unknown
    assert "gone-ou" not in parents
    # Lanes left idle by that chain serve the OUs nobody knows meanwhile, in listing order.
    assert [p for p in parents if p not in ("r-1", "ou-12", "ou-deep", "ou-3")][:2] == [
        "ou-1",
        "ou-1",
    ]


async def test_the_walk_streams_accounts_while_a_listing_is_still_out() -> None:
    org = FakeOrganizations()
    org.held["ou-2"] = asyncio.Event()  # its listing hangs until released
    seen: list[str] = []

    async def consume() -> None:
        async for account in walk_accounts(org):
            seen.append(account.id)
            if account.id == "a-ou-12-2":  # every other OU's accounts came while ou-2 hung
                org.held["ou-2"].set()

    consuming = asyncio.ensure_future(consume())
    for _ in range(10_000):  # turns of the loop, not time: a walk stuck behind ou-2 stays stuck
        if consuming.done():
            break
        await asyncio.sleep(0)
    stuck = not consuming.done()
    org.held["ou-2"].set()
    await consuming
    assert not stuck
    assert seen.index("a-ou-12-2") < seen.index("a-ou-2-1")
    assert sorted(seen) == sorted(every_account())


async def test_a_failed_listing_fails_the_walk() -> None:
    org = FakeOrganizations()
    OUS["ou-5"] = ["ou-vanished"]  # listed, then deleted before its own listing
    try:
        raised = None
        try:
            await walk(org)
        except LookupError as exc:
            raised = exc
        assert raised is not None and "ou-vanished" in str(raised)
    finally:
        del OUS["ou-5"]


async def test_a_failed_listing_ends_the_walk_after_the_listings_beside_it() -> None:
    # Root's child OUs cannot be listed, while its accounts' listing is still on its way: the
    # walk still yields Root's account, then fails, and starts nothing more.
    org = FakeOrganizations(denied=frozenset({("list_organizational_units_for_parent", None)}))
    org.held["r-1"] = asyncio.Event()
    listed: list[str] = []

    async def consume() -> None:
        async for account in walk_accounts(org):
            listed.append(account.id)

    walking = asyncio.ensure_future(consume())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not walking.done()  # the failure waits for Root's accounts
    org.held["r-1"].set()
    with pytest.raises(PermissionError):
        await walking
    assert listed == ["a-root"]
    assert [parent for _, parent in org.calls] == ["", "r-1", "r-1"]


async def test_no_listing_starts_after_one_failed() -> None:
    # OU-1's accounts cannot be listed, while the listings of the other OUs wait their turn
    # (four at a time): none of them starts after the failure.
    org = FakeOrganizations(denied=frozenset({("list_accounts_for_parent", "ou-1")}))
    with pytest.raises(PermissionError):
        await walk(org)
    failed_at = org.calls.index(("list_accounts_for_parent", "ou-1"))
    # What was started by then (at most WALK_LANES at once) ends; nothing else is asked for.
    assert len(org.calls) - failed_at <= WALK_LANES
    assert ("list_accounts_for_parent", "ou-12") not in org.calls
