"""One moto server for the session, behind the fault layer; state reset before every test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

import jsonschema
import pytest

from orgscan import evidence
from orgscan.collect.credential_report import ReportPolling
from orgscan.config import Config, parse_config
from orgscan.demo.seed import OrgSpec, SeededOrg, seed_organization
from orgscan.demo.server import MotoServer, isolate_from_aws
from orgscan.model import AccessKey, ScanResult
from orgscan.scanner import ScanOptions, scan

FAST_POLL = ReportPolling(first_delay=0.01, max_delay=0.05, timeout=5)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    isolate_from_aws(server.url)
    yield server
    server.stop()


@cache
def findings_schema() -> jsonschema.Draft202012Validator:
    """The JSON Schema shipped in the package, as an auditor's tool would load it."""
    schema = json.loads(evidence.SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture(autouse=True)
def findings_json_matches_its_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every findings.json any test writes in this process is valid against the published
    schema: the codec's one way to the file's bytes is checked wherever it is called from."""
    encode = evidence.encode

    def checked(result: ScanResult) -> bytes:
        data = encode(result)
        findings_schema().validate(json.loads(data))
        return data

    monkeypatch.setattr(evidence, "encode", checked)


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
    # moto's report is ready at once: polling it soon keeps every live scan (which reads the
    # report beside its listing) from waiting half a second for it.
    options.setdefault("report_polling", FAST_POLL)
    return await scan(
        cfg or config(), options=ScanOptions(page_size=page_size, **options), stop=stop
    )


def keys_read(result: ScanResult) -> dict[str, tuple[AccessKey, ...]]:
    """Each user's keys as read, by user ARN, without when each last use was read: that
    differs between two scans of the same organization."""
    return {
        user.arn: tuple(replace(key, last_used_as_of=None) for key in user.access_keys)
        for user in result.users
    }


def counts(result: ScanResult) -> dict[str, int]:
    """Active-key count per user ARN: the evidence both strategies must agree on."""
    return {user.arn: user.active_key_count for user in result.users}
