"""One moto server for the session, behind the fault layer; state reset before every test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from orgscan.config import Config, parse_config
from orgscan.demo.seed import OrgSpec, SeededOrg, seed_organization
from orgscan.demo.server import MotoServer, isolate_from_aws
from orgscan.model import ScanResult
from orgscan.scanner import ScanOptions, scan


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    isolate_from_aws(server.url)
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer) -> MotoServer:
    moto_server.reset()
    return moto_server


def seed(server: MotoServer, spec: OrgSpec) -> SeededOrg:
    """Seed, then forget the seeding's calls so tests count only the scan's."""
    seeded = seed_organization(spec, server.url)
    server.inject([])
    return seeded


def config(**sections: Any) -> Config:
    """A config from keyword sections, fast limits so tests are not rate-bound."""
    sections.setdefault("scan", {})
    sections["scan"] = {
        "management_rate_limit": 1000,
        "account_rate_limit": 1000,
        **sections["scan"],
    }
    return parse_config(sections)


async def run_scan(
    cfg: Config | None = None,
    page_size: int | None = None,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> ScanResult:
    return await scan(
        cfg or config(), options=ScanOptions(page_size=page_size, **options), stop=stop
    )


def counts(result: ScanResult) -> dict[str, int]:
    """Active-key count per user ARN: the evidence both strategies must agree on."""
    return {user.arn: user.active_key_count for user in result.users}
