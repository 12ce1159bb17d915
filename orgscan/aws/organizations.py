"""The organization and its accounts with their OU paths, as AWS Organizations lists them.

The OU tree is walked top-down (ListRoots → ListOrganizationalUnitsForParent →
ListAccountsForParent), so OU paths cost calls per OU, not per account, and each account is
yielded as soon as it is listed so its scan can start while the walk goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from orgscan.aws.interfaces import OrganizationsReader
from orgscan.model import UNKNOWN_STATE, Account, join_ou_path


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


async def walk_accounts(
    org: OrganizationsReader, page_size: int | None = None
) -> AsyncIterator[Account]:
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
