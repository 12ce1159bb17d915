"""Which accounts a run covers: the config's account filters, and shards of a sweep.

Not AWS calls: the scanner and remediation apply these to the accounts Organizations lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from orgscan.config import Config, OrganizationConfig
from orgscan.model import ACCOUNT_STATES, Account, split_ou_path


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


def config_warnings(config: Config) -> list[str]:
    """Settings that are valid but seldom meant: said in run.warnings, never refused."""
    states = config.organization.include_states
    if "ACTIVE" in states:
        return []
    return [
        f"organization.include_states is {', '.join(states)}: it leaves out ACTIVE, so every "
        "active account is skipped; add ACTIVE unless that is what you mean"
    ]
