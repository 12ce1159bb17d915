"""`orgscan demo`: the real pipeline against the embedded demo organization."""

from __future__ import annotations

from orgscan.config import parse_config
from orgscan.demo.organization import DEMO_ORG, demo_config, demo_faults
from orgscan.demo.seed import seed_organization
from orgscan.demo.server import MotoServer, isolate_from_aws
from orgscan.model import ScanResult
from orgscan.progress import Progress
from orgscan.scanner import ScanOptions, scan


async def run_demo(progress: Progress) -> ScanResult:
    server = MotoServer().start()
    try:
        isolate_from_aws(server.url)
        seeded = seed_organization(DEMO_ORG, server.url)
        server.inject(demo_faults(seeded))
        config = parse_config(demo_config(seeded))
        # A small page size so the demo walks several pages, as a large organization would.
        return await scan(config, progress=progress, options=ScanOptions(page_size=5))
    finally:
        server.stop()
