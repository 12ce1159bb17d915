"""The order accounts are entered in: largest first from an earlier sweep, the walk streaming."""

from __future__ import annotations

import asyncio

from orgscan.accounts import EntryOrder, Hints
from orgscan.model import Account, AccountResult, ScanStatus
from tests.report_fixtures import scan_result


def account(account_id: str) -> Account:
    return Account(account_id, f"name-{account_id}", "", "ACTIVE", "Root", ("r-1",))


async def entered(order: EntryOrder) -> list[str | None]:
    """Every entry handed out until none is left: the account, or None where it is dropped."""
    out: list[str | None] = []
    while (entry := await order.next()) is not None:
        listed = await entry.listed
        out.append(listed.id if listed else None)
    return out


async def test_a_hint_puts_the_largest_accounts_first() -> None:
    order = EntryOrder({"small": 1.0, "large": 10.0, "middle": 5.0}, early=True)
    # Listed in walk order, the unknown one first.
    for account_id in ("new", "small", "large", "middle"):
        order.listed(account(account_id))
    order.end()
    assert await entered(order) == ["large", "middle", "small", "new"]


async def test_a_known_account_is_handed_out_before_the_walk_lists_it_and_waits() -> None:
    order = EntryOrder({"large": 10.0}, early=True)
    entry = await order.next()
    assert entry is not None and entry.account_id == "large" and entry.early
    assert not entry.listed.done()  # its IAM calls wait for the listing
    order.listed(account("large"))
    assert (await entry.listed) == account("large")


async def test_ids_no_longer_in_the_organization_are_never_entered() -> None:
    order = EntryOrder({"gone": 50.0, "here": 1.0}, early=True)
    claimed = await order.next()  # the largest is handed out before the walk reaches it
    assert claimed is not None and claimed.account_id == "gone"
    order.listed(account("here"))
    order.end()  # the walk never listed "gone"
    assert await claimed.listed is None
    assert await entered(order) == ["here"]


async def test_an_account_the_walk_skips_is_never_entered() -> None:
    order = EntryOrder({"excluded": 50.0, "suspended": 40.0}, early=False)
    claimed = await order.next()
    assert claimed is not None and claimed.account_id == "excluded"
    order.passed_over("excluded")  # listed, but the filters skip it
    order.passed_over("suspended")
    order.end()
    assert await claimed.listed is None
    assert await entered(order) == []


async def test_the_walk_still_streams() -> None:
    # Accounts are handed out while the walk is still listing; next() waits for more.
    order = EntryOrder({}, early=True)
    order.listed(account("first"))
    entry = await order.next()
    assert entry is not None and entry.listed.result() == account("first")
    waiting = asyncio.ensure_future(order.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    order.listed(account("second"))
    entry = await waiting
    assert entry is not None and entry.account_id == "second"
    order.end()
    assert await order.next() is None


def test_expected_duration_is_calls_at_the_rate_it_could_get() -> None:
    earlier = scan_result()
    earlier.accounts = [
        AccountResult(account("calm"), ScanStatus.SCANNED, api_calls=100),
        AccountResult(account("crowded"), ScanStatus.SCANNED, api_calls=100, rate_at_end=2.0),
        AccountResult(account("skipped"), ScanStatus.SKIPPED),
    ]
    assert Hints.of(earlier).expected_seconds(10.0) == {"calm": 10.0, "crowded": 50.0}


def test_the_first_sweep_that_measured_an_account_tells_its_size() -> None:
    # A resumed run measured only what it finished (an interrupted account made no calls it
    # kept); the baseline tells the rest. --hints comes first of all.
    resumed, baseline = scan_result(), scan_result()
    resumed.accounts = [
        AccountResult(account("finished"), ScanStatus.SCANNED, api_calls=40),
        AccountResult(account("interrupted"), ScanStatus.FAILED),
    ]
    baseline.accounts = [
        AccountResult(account("finished"), ScanStatus.SCANNED, api_calls=10),
        AccountResult(account("interrupted"), ScanStatus.SCANNED, api_calls=70),
    ]
    assert Hints.of(resumed, baseline).expected_seconds(10.0) == {
        "finished": 4.0,
        "interrupted": 7.0,
    }
    assert Hints.of(baseline, resumed).expected_seconds(10.0)["finished"] == 1.0
