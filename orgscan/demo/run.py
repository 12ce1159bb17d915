"""`orgscan demo`: the real pipeline against the embedded demo organization."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from orgscan.config import Config, parse_config
from orgscan.demo.organization import DEMO_ORG, demo_config, demo_faults
from orgscan.demo.seed import seed_organization
from orgscan.demo.server import MotoServer, isolate_from_aws
from orgscan.model import ScanResult
from orgscan.progress import Progress
from orgscan.scanner import ScanOptions, scan


@dataclass(frozen=True, slots=True)
class DemoOrganization:
    server: MotoServer
    settings: dict[str, Any]  # the demo's config as a user would write it

    @property
    def config(self) -> Config:
        return parse_config(self.settings)

    def environment(self) -> dict[str, str]:
        """What another shell needs to reach the demo: fake credentials, local endpoint."""
        return {name: value for name, value in os.environ.items() if name.startswith("AWS_")}


@contextmanager
def demo_organization() -> Iterator[DemoOrganization]:
    server = MotoServer().start()
    try:
        isolate_from_aws(server.url)
        seeded = seed_organization(DEMO_ORG, server.url)
        server.inject(demo_faults(seeded))
        yield DemoOrganization(server, demo_config(seeded))
    finally:
        server.stop()


async def run_demo(demo: DemoOrganization, progress: Progress) -> ScanResult:
    # A small page size so the demo walks several pages, as a large organization would.
    return await scan(demo.config, progress=progress, options=ScanOptions(page_size=5))
