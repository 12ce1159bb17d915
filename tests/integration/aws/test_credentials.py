"""Account sessions as today's AWS has them: they expire, a chained caller gets one hour at most,
and each account's AssumeRole calls retry on a budget of their own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from orgscan.aws.clients import ClientFactory
from orgscan.aws.credentials import (
    REFRESH_AHEAD,
    AccountCredentials,
    Credentials,
    RefreshableCredentials,
    caller_identity,
)
from orgscan.aws.errors import error_code
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.config import parse_config
from orgscan.demo.faults import ROLE_CHAINING_MESSAGE, Fault
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import AccountFailure, ScanStatus
from tests.conftest import config, run_scan, seed

ORG = OrgSpec(
    accounts=tuple(
        AccountSpec(f"acct-{i}", "Root/Prod", (UserSpec(f"pair-{i}", (ACTIVE, ACTIVE)),))
        for i in range(3)
    )
)
CHAINED_CALLER = "arn:aws:sts::123456789012:assumed-role/OrgScanCI/gha-run-42"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _credentials(n: int, expires: float) -> Credentials:
    return Credentials(f"ASIA{n:016d}", "secret", "token", datetime.fromtimestamp(expires, UTC))


async def test_a_session_is_renewed_before_it_expires_and_kept_if_renewal_fails_in_time():
    clock = Clock(1_000_000.0)
    issued: list[Credentials] = []
    failing = False

    async def renew() -> Credentials:
        if failing:
            raise AccountFailure("Throttling", "renewing the session: rate exceeded")
        issued.append(_credentials(len(issued) + 1, clock.now + 3600))
        return issued[-1]

    session = RefreshableCredentials(_credentials(0, clock.now + 3600), renew, clock)
    first = session.keys
    clock.now += 3600 - REFRESH_AHEAD - 1
    assert await session.current() is first  # not due yet
    clock.now += 2
    renewed = await session.current()  # due: REFRESH_AHEAD before expiry, as botocore does
    assert renewed is not first
    assert renewed.wire.access_key == issued[0].access_key_id
    assert session.renewals == 1

    # A renewal that fails while the session still has time left keeps it, and tries later.
    clock.now += 3600 - REFRESH_AHEAD + 1
    failing = True
    assert await session.current() is renewed
    # Once the session is all but over, a failing renewal fails the account.
    clock.now = renewed.expires_at - 5
    with pytest.raises(AccountFailure):
        await session.current()


async def test_a_short_session_is_renewed_halfway_not_at_once():
    clock = Clock(0.0)
    calls = 0

    async def renew() -> Credentials:
        nonlocal calls
        calls += 1
        return _credentials(calls, clock.now + 900)

    session = RefreshableCredentials(_credentials(0, 900), renew, clock)
    clock.now = 449
    await session.current()
    assert calls == 0
    clock.now = 451
    await session.current()
    await session.current()
    assert calls == 1


async def test_a_chained_caller_asks_for_one_hour_and_the_run_says_so(aws):
    seeded = seed(aws, ORG)
    aws.inject(
        [
            Fault(action="GetCallerIdentity", caller_arn=CHAINED_CALLER),
            # AWS refuses a chained role anything over an hour.
            Fault(
                action="AssumeRole",
                max_duration=3600,
                error="ValidationError",
                message=ROLE_CHAINING_MESSAGE,
            ),
        ]
    )
    result = await run_scan(config(role={"duration_seconds": 7200}))

    assert result.run.caller_arn == CHAINED_CALLER
    members = [r for r in result.accounts if r.account.id != seeded.management_account_id]
    assert {r.scan_status for r in members} == {ScanStatus.SCANNED}
    assert result.run.complete
    assert "ValidationError" not in aws.faults.injected  # never asked for more than an hour
    (warning,) = [w for w in result.run.warnings if w.startswith("role.duration_seconds")]
    assert "7200 s" in warning and "3600 s" in warning and CHAINED_CALLER in warning


async def test_a_role_chaining_refusal_is_retried_once_at_one_hour(aws):
    """A caller whose ARN does not show the chaining (GetSessionToken credentials, say)."""
    seed(aws, ORG)
    aws.inject(
        [
            Fault(
                action="AssumeRole",
                max_duration=3600,
                error="ValidationError",
                message=ROLE_CHAINING_MESSAGE,
            )
        ]
    )
    result = await run_scan(config(role={"duration_seconds": 7200}))

    assert result.run.complete
    refused = aws.faults.injected["ValidationError"]
    assert 1 <= refused <= len(ORG.accounts)  # accounts entered before the first refusal
    assert len(aws.faults.assumed_roles) == len(ORG.accounts) + refused
    (warning,) = [w for w in result.run.warnings if w.startswith("role.duration_seconds")]
    assert "AWS refused 7200 s" in warning and "3600 s" in warning

    # Any other ValidationError is the account's failure, not retried.
    aws.inject([Fault(action="AssumeRole", error="ValidationError", message="something else")])
    failed = await run_scan(config(role={"duration_seconds": 7200}))
    assert not failed.run.complete
    assert len(aws.faults.assumed_roles) == len(ORG.accounts)


async def test_a_failure_on_the_one_hour_retry_is_explained_like_a_first_failure(aws):
    """The retry at 3600 s can meet what the first call would have: a region not active in the
    account, a management account without the role. Both keep orgscan's explanation."""
    seeded = seed(aws, ORG)
    member, management = seeded.account_ids["acct-0"], seeded.management_account_id
    aws.inject(
        [
            Fault(
                action="AssumeRole",
                max_duration=3600,
                error="ValidationError",
                message=ROLE_CHAINING_MESSAGE,
            ),
            Fault(action="AssumeRole", account=member, error="RegionDisabledException"),
            Fault(action="AssumeRole", account=management, error="AccessDenied"),
        ]
    )
    for account, code, explanation in (
        (member, "RegionDisabledException", "Security Token Service (STS)"),
        (management, "AccessDenied", "as a plain stack"),
    ):
        aws.faults.assumed_roles.clear()
        # One account at a time: the first refusal shortens every later account's request.
        organization = {"include_accounts": [account], "management_account": "assume"}
        result = await run_scan(config(role={"duration_seconds": 7200}, organization=organization))
        (failed,) = [r for r in result.accounts if r.account.id == account]
        assert failed.error.code == code
        assert explanation in failed.error.message
        # Refused at 7200 s first, then failed on the retry at 3600 s.
        assert aws.faults.assumed_roles == [f"arn:aws:iam::{account}:role/OrgScanAudit"] * 2


async def test_sts_faults_in_other_accounts_never_spend_a_healthy_accounts_retries(aws):
    """botocore's retry quota (500, 5 a retry) shared by all accounts would be spent by the
    first hundred throttled AssumeRole calls anywhere; each account has its own."""
    healthy = "210987654321"
    throttled = [f"{100000000000 + i}" for i in range(110)]
    aws.inject(
        [
            Fault(action="AssumeRole", account=healthy, error="Throttling", first=1),
            Fault(action="AssumeRole", account=healthy),  # then it answers
            Fault(action="AssumeRole", error="Throttling"),  # every other account, always
        ]
    )
    settings = parse_config(
        {"organization": {"management_account": "skip"}, "scan": {"max_attempts": 2}}
    )
    factory = ClientFactory(settings.scan)
    async with factory, factory.client("sts", RateLimiter(1000), CallCounter()) as sts:
        identity = await caller_identity(sts)
        credentials = AccountCredentials(
            sts,
            identity,
            settings.role,
            settings.organization.management_account,
            "123456789012",
        )
        outcomes = await asyncio.gather(
            *(credentials.get(a) for a in throttled), return_exceptions=True
        )
        # 110 retries, 5 each, would have emptied one shared quota of 500.
        assert all(
            getattr(o, "response", {}).get("Error", {}).get("Code") == "Throttling"
            for o in outcomes
        )
        assert aws.faults.injected["Throttling"] == 2 * len(throttled)
        session = await credentials.get(healthy)

    assert session is not None
    assert aws.faults.calls[("AssumeRole", healthy)] == 2


async def test_throttled_key_changes_in_one_account_never_spend_anothers_retries(aws):
    """UpdateAccessKey goes through botocore's client, shared by every account: with one retry
    quota per client (500, 5 a retry) a hundred throttled changes in one account would stop the
    retries of every other account's changes. Each account has its own."""
    noisy, quiet = "210987654321", "109876543210"
    aws.inject(
        [
            Fault(action="UpdateAccessKey", account=noisy, error="Throttling"),
            Fault(action="UpdateAccessKey", account=quiet, error="Throttling", first=1),
        ]
    )
    settings = parse_config(
        {"organization": {"management_account": "skip"}, "scan": {"max_attempts": 2}}
    )
    factory = ClientFactory(settings.scan)
    async with factory, factory.client("sts", RateLimiter(1000), CallCounter()) as sts:
        identity = await caller_identity(sts)
        credentials = AccountCredentials(
            sts,
            identity,
            settings.role,
            settings.organization.management_account,
            "123456789012",
        )
        sessions = {a: await credentials.get(a) for a in (noisy, quiet)}

        async def change(account: str) -> str:
            async with factory.client(
                "iam", RateLimiter(1000), CallCounter(), sessions[account]
            ) as iam:
                try:
                    await iam.update_access_key(
                        UserName="alice", AccessKeyId="AKIAEXAMPLEKEY000001", Status="Inactive"
                    )
                except ClientError as exc:
                    return error_code(exc)
                return "done"

        # 110 throttled changes, one retry each: 550 of a shared quota of 500.
        noisy_outcomes = await asyncio.gather(*(change(noisy) for _ in range(110)))
        assert set(noisy_outcomes) == {"Throttling"}
        assert aws.faults.calls[("UpdateAccessKey", noisy)] > 200
        # The quiet account's one throttle is retried; moto then answers (no such user).
        assert await change(quiet) == "NoSuchEntity"

    assert aws.faults.calls[("UpdateAccessKey", quiet)] == 2
