"""The hot calls sent over the wire (orgscan/wire.py) are botocore's calls in all but cost.

Neither moto nor the benchmark's simulator checks signatures, so the signature and the form
body are compared with botocore's own; results, errors and retries are compared end to end on
moto's server. Also here: the shared clients' rate limiter, the collector tuning and the
credential report's polling, which came with the same performance work.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import random
from collections.abc import Callable

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, create_request_object, prepare_request_dict
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import ClientError
from botocore.serialize import create_serializer
from botocore.session import get_session

from orgscan.aws.clients import ClientFactory
from orgscan.aws.errors import error_code
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.aws.wire import FORM, WIRE_OPERATIONS, Endpoint, encode_form, host_header, sign
from orgscan.collect.credential_report import ReportPolling
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.runner import YOUNG_COLLECTION, frozen_gc

from .conftest import config, run_scan, seed


@pytest.mark.parametrize(
    ("url", "region", "service", "token"),
    [
        ("https://iam.amazonaws.com", "us-east-1", "iam", "FwoGZXIvYXdzEJr//token+/="),
        ("http://127.0.0.1:4566", "us-east-1", "iam", None),
        ("https://sts.eu-west-1.amazonaws.com:443", "eu-west-1", "sts", "token"),
        ("https://IAM.us-gov.amazonaws.com", "us-gov-west-1", "iam", None),
    ],
)
def test_the_signature_is_botocores(url, region, service, token):
    body = b"Action=ListAccessKeys&Version=2010-05-08&UserName=ci%2Bdeploy%40example.com"
    request = AWSRequest(method="POST", url=url + "/", data=body, headers={"Content-Type": FORM})
    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY", token)
    SigV4Auth(credentials, service, region).add_auth(request)

    endpoint = Endpoint(url=url + "/", host=host_header(url), region=region, service=service)
    amz_date = request.headers["X-Amz-Date"]
    ours = sign(endpoint, body, amz_date, credentials.access_key, credentials.secret_key, token)

    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("iam", "ListUsers", {"MaxItems": 1000}),
        ("iam", "ListUsers", {"MaxItems": 1000, "Marker": "AAE/x+y=="}),
        ("iam", "ListAccessKeys", {"UserName": "ci+deploy=1,a.b@example.com"}),
        ("iam", "GetAccessKeyLastUsed", {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}),
        ("iam", "GenerateCredentialReport", {}),
        ("iam", "GetCredentialReport", {}),
        (
            "sts",
            "AssumeRole",
            {
                "RoleArn": "arn:aws:iam::123456789012:role/path/OrgScanAudit",
                "RoleSessionName": "orgscan",
                "DurationSeconds": 3600,
                "ExternalId": "ext:id/with=odd+chars",
            },
        ),
    ],
)
def test_the_form_body_is_botocores(service, operation, params):
    model = get_session().get_service_model(service).operation_model(operation)
    assert operation in WIRE_OPERATIONS[service]
    request_dict = create_serializer("query", include_validation=False).serialize_to_request(
        params, model
    )
    ours = encode_form(request_dict["body"])
    prepare_request_dict(request_dict, endpoint_url="https://example.com")
    body = create_request_object(request_dict).prepare().body
    assert ours == (body.encode() if isinstance(body, str) else body)


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
        [(u.arn, u.path, u.source, u.access_keys) for u in result.users],
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


class AwsBucket:
    """AWS's side: a token bucket holding one second of calls (at least one), checked on
    arrival."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = self.tokens = max(1.0, rate)
        self.stamp = 0.0

    def admit(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def fresh_limiter(rate: float) -> RateLimiter:
    limiter = RateLimiter(rate)
    limiter._planned_at = limiter._sent_at = 0.0  # its clock starts at 0 here
    return limiter


def send_times(limiter: RateLimiter, asked: list[float], late: Callable[[], float]) -> list[float]:
    """When calls asked for at `asked` are sent by acquire(), if the event loop wakes each
    sleeper `late()` seconds late."""
    wakeups = []
    for index, now in enumerate(asked):
        wait = limiter.reserve(now)
        heapq.heappush(wakeups, (now + wait + late() if wait else now, index))
    sent = []
    while wakeups:
        now, index = heapq.heappop(wakeups)
        wait = limiter.take(now)
        if wait:
            heapq.heappush(wakeups, (now + wait + late(), index))
        else:
            sent.append(now)
    return sent


@pytest.mark.parametrize("rate", [0.5, 1, 3, 10, 20, 100])
def test_the_limiter_never_outruns_aws_despite_late_wakeups_and_uneven_delays(rate):
    draw = random.Random(rate)
    limiter = fresh_limiter(rate)
    # Callers at random times, some in bursts. The event loop wakes a third of the sleepers
    # up to 0.5 s late; then each call takes up to JITTER to reach AWS.
    asked = sorted(
        at
        for start in (draw.uniform(0, 60) for _ in range(max(3, int(rate * 10))))
        for at in [start] * draw.randint(1, 4)
    )
    sent = send_times(limiter, asked, lambda: draw.choice([0.0, 0.0, draw.uniform(0, 0.5)]))
    assert len(sent) == len(asked)
    bucket = AwsBucket(rate)
    arrivals = sorted(at + draw.uniform(0, limiter.JITTER) for at in sent)
    assert all(bucket.admit(at) for at in arrivals)


@pytest.mark.parametrize("rate", [10, 100])
def test_the_limiter_keeps_up_with_the_rate(rate):
    limiter = fresh_limiter(rate)
    sent = [limiter.reserve(0.0) for _ in range(rate * 5)]
    # A burst at once, then one call every 1/rate seconds: no slot is left unused.
    assert sent[: int(limiter.capacity)] == [0.0] * int(limiter.capacity)
    assert sent[-1] == pytest.approx((rate * 5 - limiter.capacity) / limiter.rate)
    assert limiter.rate == pytest.approx(rate * limiter.REFILL)


async def test_the_collector_is_restored_after_a_run(monkeypatch):
    monkeypatch.setattr("orgscan.runner.FREEZE_EVERY", 0.01)
    before = gc.get_threshold()
    gc.unfreeze()
    async with frozen_gc():
        assert gc.get_threshold()[0] >= YOUNG_COLLECTION
        frozen = gc.get_freeze_count()
        assert frozen > 0
        survivor = [object() for _ in range(1000)]
        await asyncio.sleep(0.05)  # the survivors are frozen too
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert survivor
