"""Which accounts a run covers: the config's account filters, and shards of a sweep; and the
order they are entered in, largest first when an earlier sweep tells their sizes.

Not AWS calls: the scanner and remediation apply these to the accounts Organizations lists.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orgscan.config import Config, OrganizationConfig
from orgscan.model import ACCOUNT_STATES, Account, ScanResult, split_ou_path


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (1-based), for splitting one sweep across CI jobs."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, _, count = text.partition("/")
        if not (index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
            raise ValueError(f"expected K/N with 1 <= K <= N, like 2/4; got {text!r}")
        return cls(int(index), int(count))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @staticmethod
    def owner(account_id: str, count: int) -> int:
        """The shard an account belongs to: a hash, so it never moves as the org grows."""
        digest = hashlib.sha256(account_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % count + 1


def _under(account: Account, refs: Iterable[str]) -> str | None:
    r"""The first OU reference (id or path) that contains the account, sub-OUs included.

    Paths are compared name by name, so `Root/Legacy` contains `Root/Legacy/Old` but not the
    OU named `Legacy/Old` (`Root/Legacy\/Old`).
    """
    names: tuple[str, ...] | None = None  # split only when a path filter is given
    for ref in refs:
        if ref in account.ou_ids:
            return ref
        if not ref.startswith(("ou-", "r-")):
            names = names or split_ou_path(account.ou_path)
            parts = split_ou_path(ref)
            if names[: len(parts)] == parts:
                return ref
    return None


class AccountFilter:
    """Decides which listed accounts are scanned; every other one is recorded with a reason."""

    def __init__(
        self, config: OrganizationConfig, management_account_id: str, shard: Shard | None = None
    ) -> None:
        self._config = config
        self._management_account_id = management_account_id
        self._shard = shard
        self._seen_accounts: set[str] = set()
        self._seen_ous: set[str] = set()

    def skip_reason(self, account: Account) -> str | None:
        c = self._config
        self._seen_accounts.add(account.id)
        self._seen_ous.update(
            ref for ref in (*c.include_ous, *c.exclude_ous) if _under(account, [ref])
        )
        if account.id in c.exclude_accounts:
            return "listed in organization.exclude_accounts"
        if c.include_accounts and account.id not in c.include_accounts:
            return "not listed in organization.include_accounts"
        if c.include_ous and not _under(account, c.include_ous):
            return "not under any OU in organization.include_ous"
        excluded = _under(account, c.exclude_ous)
        if excluded:
            return f"under {excluded}, listed in organization.exclude_ous"
        # A state orgscan does not know is tried rather than skipped: a skip is silent on the
        # completeness of the run, while a failed attempt is not.
        if account.state in ACCOUNT_STATES and account.state not in c.include_states:
            return (
                f"account state is {account.state}; organization.include_states is "
                f"{', '.join(c.include_states)}"
            )
        if account.id == self._management_account_id and c.management_account == "skip":
            return "management account; organization.management_account is 'skip'"
        if (
            self._shard
            and (owner := Shard.owner(account.id, self._shard.count)) != self._shard.index
        ):
            return f"belongs to shard {owner}/{self._shard.count}, not this shard {self._shard}"
        return None

    def skips_id(self, account_id: str) -> bool:
        """Whether the account id alone (before it is listed) says the account is skipped."""
        c = self._config
        return bool(
            account_id in c.exclude_accounts
            or (c.include_accounts and account_id not in c.include_accounts)
            or (account_id == self._management_account_id and c.management_account == "skip")
            or (self._shard and Shard.owner(account_id, self._shard.count) != self._shard.index)
        )

    @property
    def filters_ous(self) -> bool:
        return bool(self._config.include_ous or self._config.exclude_ous)

    def unmatched(self) -> list[str]:
        """Filter entries that matched nothing: usually a typo that would silently widen a scan."""
        c = self._config
        warnings = [
            f"organization.{key}: account {account_id} is not in the organization"
            for key, ids in (
                ("include_accounts", c.include_accounts),
                ("exclude_accounts", c.exclude_accounts),
            )
            for account_id in ids
            if account_id not in self._seen_accounts
        ]
        warnings += [
            f"organization.{key}: {ref} matched no account"
            for key, refs in (("include_ous", c.include_ous), ("exclude_ous", c.exclude_ous))
            for ref in refs
            if ref not in self._seen_ous
        ]
        return warnings


def config_warnings(config: Config) -> list[str]:
    """Settings that are valid but seldom meant: said in run.warnings, never refused."""
    states = config.organization.include_states
    if "ACTIVE" in states:
        return []
    return [
        f"organization.include_states is {', '.join(states)}: it leaves out ACTIVE, so every "
        "active account is skipped; add ACTIVE unless that is what you mean"
    ]


@dataclass(frozen=True, slots=True)
class Known:
    """An account as an earlier sweep saw it: its IAM calls, the rate it ended at (if its rate
    adapted), and its OU ids, root first."""

    calls: int
    rate_at_end: float | None
    ou_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hints:
    """What an earlier sweep tells of each account's size and place: all a scan keeps of it (a
    large organization's findings.json is a hundred MB and more once read)."""

    accounts: Mapping[str, Known]

    @classmethod
    def of(cls, *earlier: ScanResult) -> Hints:
        """From earlier sweeps, the first that measured an account telling it (a resumed run
        measured only the accounts it finished; the baseline tells the others)."""
        accounts: dict[str, Known] = {}
        for result in earlier:
            for r in result.accounts:
                if r.api_calls > 0 and r.account.id not in accounts:
                    accounts[r.account.id] = Known(r.api_calls, r.rate_at_end, r.account.ou_ids)
        return cls(accounts)

    def expected_seconds(self, rate: float) -> dict[str, float]:
        """How long each account took to scan last time, as far as IAM's rate decides it: its
        IAM calls then, at this run's rate (or the lower one it ended at then, if it was
        crowded)."""
        return {
            account_id: known.calls / min(rate, known.rate_at_end or rate)
            for account_id, known in self.accounts.items()
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """An account to enter. `listed` resolves to the account once the OU walk lists it and
    the filters let it in, or to None: skipped, or no longer in the organization."""

    account_id: str
    listed: asyncio.Future[Account | None]
    # Whether its role may be assumed before it is listed (AssumeRole needs only the id).
    early: bool


class EntryOrder:
    """Accounts in the order they are entered: those an earlier sweep knows, in decreasing
    expected duration, then the others in listing order.

    The walk still streams: an account the hint knows is handed out before the walk reaches
    it, since the largest ones must start first to finish in time; its IAM calls wait until
    it is listed and let in (`Entry.listed`). An id the walk never lists is dropped when the
    walk ends, never scanned.
    """

    def __init__(self, expected: dict[str, float], early: bool) -> None:
        self._hinted = deque(sorted(expected, key=lambda a: (-expected[a], a)))
        self._known = set(expected)
        self._early = early
        self._claimed: dict[str, asyncio.Future[Account | None]] = {}
        self._waiting: dict[str, Account] = {}  # known, listed, not handed out yet
        self._unknown: deque[Account] = deque()
        self._ended = False
        self._ready = asyncio.Event()

    def listed(self, account: Account) -> None:
        """The walk listed an account to scan."""
        claimed = self._claimed.get(account.id)
        if claimed is not None:
            if not claimed.done():
                claimed.set_result(account)
        elif account.id in self._known:
            self._waiting[account.id] = account
        else:
            self._unknown.append(account)
        self._ready.set()

    def passed_over(self, account_id: str) -> None:
        """The walk listed an account that is not scanned now (skipped, or finished before)."""
        self._known.discard(account_id)
        claimed = self._claimed.get(account_id)
        if claimed is not None and not claimed.done():
            claimed.set_result(None)

    def end(self) -> None:
        """The walk is over: what it did not list is not in the organization."""
        self._ended = True
        for claimed in self._claimed.values():
            if not claimed.done():
                claimed.set_result(None)
        self._ready.set()

    async def next(self) -> Entry | None:
        """The next account to enter; None when there is none left."""
        loop = asyncio.get_running_loop()
        while True:
            while self._hinted:
                account_id = self._hinted.popleft()
                account = self._waiting.pop(account_id, None)
                if account_id not in self._known or (account is None and self._ended):
                    continue
                listed: asyncio.Future[Account | None] = loop.create_future()
                if account is not None:
                    listed.set_result(account)
                self._claimed[account_id] = listed
                return Entry(account_id, listed, self._early)
            if self._unknown:
                account = self._unknown.popleft()
                listed = loop.create_future()
                listed.set_result(account)
                return Entry(account.id, listed, self._early)
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
