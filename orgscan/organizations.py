"""The organization's accounts with their OU paths, and the config's account filters.

The OU tree is walked top-down (ListRoots → ListOrganizationalUnitsForParent →
ListAccountsForParent), so OU paths cost calls per OU, not per account, and each account is
yielded as soon as it is listed so its scan can start while the walk goes on.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from orgscan.config import OrganizationConfig
from orgscan.model import ACCOUNT_STATES, UNKNOWN_STATE, Account, join_ou_path, split_ou_path


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    management_account_id: str


async def describe_organization(org: Any) -> Organization:
    response = await org.describe_organization()
    data = response["Organization"]
    return Organization(id=data["Id"], management_account_id=data["MasterAccountId"])


def account_state(item: dict[str, Any]) -> str:
    """The lifecycle state: `State`, else the retired `Status` (older endpoints, moto)."""
    return str(item.get("State") or item.get("Status") or UNKNOWN_STATE)


async def _pages(
    client: Any, operation: str, key: str, page_size: int | None, **kwargs: Any
) -> AsyncIterator[dict[str, Any]]:
    paginator = client.get_paginator(operation)
    config = {"PageSize": page_size} if page_size else {}
    async for page in paginator.paginate(**kwargs, PaginationConfig=config):
        for item in page.get(key, []):
            yield item


async def walk_accounts(org: Any, page_size: int | None = None) -> AsyncIterator[Account]:
    """Every account in the organization, each once, with its OU path."""
    queue: deque[tuple[str, tuple[str, ...], tuple[str, ...]]] = deque()
    async for root in _pages(org, "list_roots", "Roots", page_size):
        queue.append((root["Id"], (root.get("Name") or "Root",), (root["Id"],)))
    while queue:
        parent_id, names, ids = queue.popleft()
        async for item in _pages(
            org, "list_accounts_for_parent", "Accounts", page_size, ParentId=parent_id
        ):
            yield Account(
                id=item["Id"],
                name=item.get("Name", ""),
                email=item.get("Email", ""),
                state=account_state(item),
                ou_path=join_ou_path(names),
                ou_ids=ids,
            )
        async for ou in _pages(
            org,
            "list_organizational_units_for_parent",
            "OrganizationalUnits",
            page_size,
            ParentId=parent_id,
        ):
            queue.append((ou["Id"], (*names, ou["Name"]), (*ids, ou["Id"])))


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
