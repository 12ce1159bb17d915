"""The hot calls sent over the wire (orgscan/aws/wire.py) are botocore's calls in all but cost:
results, errors and retries compared end to end on moto's server (the signature and the body
are compared with botocore's in tests/unit/aws/test_wire.py), and the credential report's
polling, which came with the same performance work.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from orgscan.aws.clients import ClientFactory
from orgscan.aws.errors import error_code
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.collect.credential_report import ReportPolling
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec
from tests.conftest import config, keys_read, run_scan, seed

ODD = OrgSpec(
    management_users=(UserSpec("ops+admin@example.com", (ACTIVE, ACTIVE)),),
    accounts=(
        AccountSpec(
            "web",
            "Root/Prod",
            (
                UserSpec("deploy=ci.web-1", (ACTIVE, ACTIVE), "/ci/"),
                UserSpec("solo", (ACTIVE, INACTIVE)),
                UserSpec("nokeys"),
            ),
        ),
        AccountSpec("data", "Root/Prod", (UserSpec("etl", (INACTIVE, INACTIVE)),)),
    ),
)


def evidence(result):
    return (
        [(u.arn, u.path, u.source) for u in result.users],
        keys_read(result),
        [(f.arn, f.active_key_count, f.state) for f in result.findings],
        [(r.account.id, r.scan_status, r.error) for r in result.accounts],
        result.run.api_calls,
    )


@pytest.mark.parametrize("strategy", ["live", "credential-report"])
async def test_the_wire_and_botocore_give_the_same_evidence(aws, strategy, monkeypatch):
    seed(aws, ODD)
    cfg = config(scan={"strategy": strategy})
    polling = ReportPolling(first_delay=0.01, max_delay=0.05, timeout=5)
    wired = await run_scan(cfg, report_polling=polling)
    sent: list[str] = []

    async def no_wire(self, service, client):
        sent.append(service)
        return None  # botocore sends every call

    monkeypatch.setattr(ClientFactory, "_wire_for", no_wire)
    plain = await run_scan(cfg, report_polling=polling)

    assert "iam" in sent
    assert wired.run.complete
    assert evidence(wired) == evidence(plain)
    # Last-used evidence came back through the wire, dates parsed as botocore parses them.
    flagged = [u for u in wired.users if u.active_key_count > 1]
    assert flagged and all(k.id and k.created_at.tzinfo for u in flagged for k in u.access_keys)


async def test_wire_errors_are_botocores_and_throttles_are_retried(aws):
    seed(aws, ODD)
    counter = CallCounter()
    # Three attempts, not the default eight: the last throttle waits out botocore's real
    # backoff, which grows with each attempt.
    settings = config(scan={"max_attempts": 3})
    factory = ClientFactory(settings.scan)
    async with factory, factory.client("iam", RateLimiter(1000), counter) as iam:
        with pytest.raises(ClientError) as raised:
            await iam.list_access_keys(UserName="nobody")
        # botocore's modelled exception class, as botocore itself would raise it.
        assert type(raised.value).__name__ == "NoSuchEntityException"
        assert error_code(raised.value) == "NoSuchEntity"
        assert counter.calls == 1

        aws.inject([Fault(action="ListUsers", error="Throttling", first=2)])
        users = await iam.list_users(MaxItems=1000)
        assert [u["UserName"] for u in users["Users"]] == ["ops+admin@example.com"]
        assert counter.calls == 1 + 3  # every attempt counts against the rate limit

        aws.inject([Fault(action="ListUsers", error="Throttling")])
        with pytest.raises(ClientError) as raised:
            await iam.list_users(MaxItems=1000)
        assert error_code(raised.value) == "Throttling"
        assert counter.calls == 4 + 3


async def test_a_report_being_generated_is_polled_not_generated_again(aws):
    seeded = seed(aws, ODD)
    web = seeded.account_ids["web"]
    aws.inject(
        [Fault(action="GetCredentialReport", account=web, error="ReportInProgress", first=3)]
    )
    polling = ReportPolling(first_delay=0.01, max_delay=0.05, timeout=5)
    result = await run_scan(config(scan={"strategy": "credential-report"}), report_polling=polling)
    assert result.run.complete
    assert aws.faults.calls[("GenerateCredentialReport", web)] == 1
    assert aws.faults.calls[("GetCredentialReport", web)] == 4
