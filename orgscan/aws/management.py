"""The management session: one run's open client factory, and the Organizations and STS
clients of the caller's own account behind the management rate limit.

The scan, preflight, remediation and the watch all open it the same way; each then asks who
the caller is and which organization it manages (`identify`), and assumes roles through its
STS client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from orgscan.aws.clients import BoundClient, ClientFactory
from orgscan.aws.credentials import Identity, caller_identity
from orgscan.aws.organizations import Organization, describe_organization
from orgscan.aws.ratelimit import Ahead, CallCounter, RateLimiter
from orgscan.config import ScanConfig


@dataclass(frozen=True, slots=True)
class Management:
    factory: ClientFactory
    organizations: BoundClient
    sts: BoundClient
    # The management calls of the run (Organizations and STS, AssumeRole included).
    calls: CallCounter

    async def identify(self) -> tuple[Identity, Organization]:
        """GetCallerIdentity, then DescribeOrganization."""
        identity = await caller_identity(self.sts)
        return identity, await describe_organization(self.organizations)


@asynccontextmanager
async def management_session(scan: ScanConfig) -> AsyncIterator[Management]:
    """Open the run's factory (the shared clients and the wire) and its management clients."""
    factory = ClientFactory(scan)
    limiter = RateLimiter(scan.management_rate_limit, adaptive=scan.adaptive_rate)
    calls = CallCounter()
    async with (
        factory,
        # The OU walk goes ahead of the AssumeRoles queued in the same limit: an account's IAM
        # calls wait for its listing, and a hint's largest accounts are assumed before it.
        factory.client("organizations", Ahead(limiter), calls) as organizations,
        factory.client("sts", limiter, calls) as sts,
    ):
        yield Management(factory, organizations, sts, calls)
