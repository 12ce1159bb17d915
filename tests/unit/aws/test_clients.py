"""The one send path: a bound client has the seams' methods only, and only an open factory."""

from __future__ import annotations

import inspect

import pytest

from orgscan.aws.clients import BoundClient, ClientFactory
from orgscan.aws.interfaces import (
    IamWriter,
    KmsSigner,
    OrganizationsReader,
    S3Store,
    SecurityHubImporter,
    SnsPublisher,
    StsClient,
)
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.config import parse_config


async def test_a_closed_factory_hands_out_no_client():
    # Remediation once built a client per account outside `async with`, a second send path.
    factory = ClientFactory(parse_config({}).scan)
    with pytest.raises(RuntimeError, match="not open"):
        async with factory.client("iam", RateLimiter(10), CallCounter()):
            pass


def _methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }


def test_a_bound_client_is_exactly_the_seams():
    # No __getattr__ falling through to botocore: what collection, remediation and the rest
    # may call is what the Protocols declare.
    assert "__getattr__" not in vars(BoundClient)
    declared = set().union(
        *(
            _methods(p)
            for p in (
                IamWriter,
                OrganizationsReader,
                StsClient,
                SnsPublisher,
                KmsSigner,
                S3Store,
                SecurityHubImporter,
            )
        )
    )
    assert _methods(BoundClient) == declared
