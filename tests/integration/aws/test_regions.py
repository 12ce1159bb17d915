"""Regions and partitions: which endpoints a caller is sent to, and STS regions not active."""

from __future__ import annotations

import pytest

from orgscan.aws.clients import ClientFactory
from orgscan.aws.credentials import region_disabled_fix
from orgscan.config import ScanConfig
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import ScanStatus
from orgscan.scanner import ScanAborted
from tests.conftest import run_scan, seed

ORG = OrgSpec(
    accounts=(
        AccountSpec("home", "Root", (UserSpec("a", (ACTIVE,)),)),
        AccountSpec("opted-out", "Root", (UserSpec("b", (ACTIVE,)),)),
    )
)

# What botocore's endpoint rules give in each partition (IAM and Organizations are global
# services with one endpoint per partition; STS is regional).
ENDPOINTS = {
    "us-gov-west-1": {
        "sts": "https://sts.us-gov-west-1.amazonaws.com",
        "iam": "https://iam.us-gov.amazonaws.com",
        "organizations": "https://organizations.us-gov-west-1.amazonaws.com",
    },
    "cn-north-1": {
        "sts": "https://sts.cn-north-1.amazonaws.com.cn",
        "iam": "https://iam.cn-north-1.amazonaws.com.cn",
        "organizations": "https://organizations.cn-northwest-1.amazonaws.com.cn",
    },
}


@pytest.fixture
def no_endpoint_override(monkeypatch):
    """The real endpoint rules, not moto's URL; nothing here sends a request."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return monkeypatch


@pytest.mark.parametrize("region", sorted(ENDPOINTS))
async def test_aws_region_alone_sends_govcloud_and_china_callers_to_their_partition(
    no_endpoint_override, region
):
    # Only AWS_REGION, as CI runners and the SDKs set it; botocore reads AWS_DEFAULT_REGION.
    no_endpoint_override.setenv("AWS_REGION", region)
    async with ClientFactory(ScanConfig()) as factory:
        assert factory.region == region
        for service, url in ENDPOINTS[region].items():
            assert await factory.endpoint_url(service) == url
        # The hot calls (ListAccessKeys, AssumeRole) go over the wire: same URL, and signed
        # for the partition's region.
        for service in ("iam", "sts"):
            _, wire = await factory._shared_client(service)
            assert wire is not None
            assert wire._endpoint.url == ENDPOINTS[region][service] + "/"
            assert wire._endpoint.region == region


async def test_aws_region_wins_over_aws_default_region(no_endpoint_override):
    no_endpoint_override.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    no_endpoint_override.setenv("AWS_REGION", "us-gov-west-1")
    async with ClientFactory(ScanConfig()) as factory:
        assert factory.region == "us-gov-west-1"
        assert await factory.endpoint_url("iam") == "https://iam.us-gov.amazonaws.com"


async def test_region_disabled_fails_that_account_naming_the_sts_region_and_both_fixes(
    aws, monkeypatch
):
    seeded = seed(aws, ORG)
    opted_out = seeded.account_ids["opted-out"]
    aws.inject(
        [
            Fault(
                action="AssumeRole",
                account=opted_out,
                error="RegionDisabledException",
                message=f"STS is not activated in this region for account:{opted_out}. Your "
                "account administrator can activate STS in this region using the IAM Console.",
            )
        ]
    )
    monkeypatch.setenv("AWS_REGION", "eu-south-1")  # the endpoint stays moto's
    result = await run_scan()
    accounts = {r.account.id: r for r in result.accounts}
    failed = accounts[opted_out]
    assert failed.scan_status is ScanStatus.FAILED
    assert failed.error.code == "RegionDisabledException"
    message = failed.error.message
    assert message.startswith(
        f"AssumeRole was sent to STS in eu-south-1 ({aws.url}), which is not active in account "
        f"{opted_out}. Fix: activate STS in eu-south-1 in account {opted_out}: "
    )
    # Both of AWS's ways: a default region's STS endpoint is activated in IAM's account
    # settings, an opt-in region's by enabling the region.
    assert "IAM console (Account settings, Security Token Service (STS), Endpoints)" in message
    assert "enabling the region in that account (Account, AWS Regions)" in message
    assert "AWS_REGION=us-east-1, whose STS endpoint cannot be deactivated" in message
    assert f"account:{opted_out}" in message  # AWS's own words are kept
    assert accounts[seeded.account_ids["home"]].scan_status is ScanStatus.SCANNED
    assert not result.run.complete


@pytest.mark.parametrize(
    ("region", "partition", "alternative"),
    [
        ("us-east-1", "aws", None),  # already the region that cannot be deactivated
        ("us-gov-west-1", "aws-us-gov", "AWS_REGION set to a region active in every account"),
    ],
)
def test_region_disabled_advice_recommends_us_east_1_only_where_it_helps(
    region, partition, alternative
):
    fix = region_disabled_fix(region, "111122223333", partition)
    assert "us-east-1" not in fix.replace(f"STS in {region}", "")
    assert (alternative in fix) if alternative else ("AWS_REGION" not in fix)


async def test_unknown_credentials_without_a_region_suggest_the_partition(aws, monkeypatch):
    seed(aws, ORG)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    aws.inject([Fault(action="GetCallerIdentity", error="InvalidClientTokenId")])
    with pytest.raises(ScanAborted, match=r"set AWS_REGION, e\.g\. us-gov-west-1 or cn-north-1"):
        await run_scan()
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # a region was chosen: no guessing
    with pytest.raises(ScanAborted) as aborted:
        await run_scan()
    assert "AWS_REGION" not in str(aborted.value)
