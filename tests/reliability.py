"""The fault matrix: each scenario is data, each run is checked against the seeded truth.

`python -m tests.reliability` prints one line per scenario; tests/test_reliability.py asserts
every line. A scenario passes when exactly the expected accounts fail with the expected codes,
exactly the expected users are unreadable (their accounts partial) with the expected codes, and
every other user of every other account is reported with its true active-key count.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from orgscan.collect.credential_report import ReportPolling
from orgscan.config import parse_config
from orgscan.demo.faults import EXPIRED_TOKEN_MESSAGE, ROLE_CHAINING_MESSAGE, Fault
from orgscan.demo.seed import (
    ACTIVE,
    INACTIVE,
    AccountSpec,
    OrgSpec,
    SeededOrg,
    UserSpec,
    member_iam,
    seed_organization,
)
from orgscan.demo.server import MotoServer, isolate_from_aws
from orgscan.model import ScanStatus
from orgscan.scanner import ScanOptions, scan

ORG = OrgSpec(
    management_users=(UserSpec("admin", (ACTIVE,)), UserSpec("legacy", (ACTIVE, ACTIVE))),
    accounts=tuple(
        AccountSpec(
            f"acct-{i}",
            f"Root/Unit-{i % 3}",
            (
                UserSpec(f"pair-{i}", (ACTIVE, ACTIVE)),
                UserSpec(f"solo-{i}", (ACTIVE, INACTIVE), "/svc/"),
                UserSpec(f"none-{i}"),
            ),
        )
        for i in range(6)
    ),
)
VICTIM = "acct-2"
IAM_ACTIONS = ("ListUsers", "ListAccessKeys", "GetAccessKeyLastUsed")
FAST_POLL = ReportPolling(first_delay=0.02, max_delay=0.1, timeout=2.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: Callable[[str], list[Fault]] = lambda victim: []  # given the victim account id
    expect_failed: str | None = None  # error code the victim fails with; None = none fails
    # Users of the victim that cannot be read, with their error code: the victim is partial.
    expect_unreadable: dict[str, str] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    role: dict[str, Any] = field(default_factory=dict)
    polling: ReportPolling = FAST_POLL
    # Faults that need more of the organization than the victim, added to `faults`.
    org_faults: Callable[[SeededOrg], list[Fault]] = lambda seeded: []
    expect_skipped: tuple[str, ...] = ()  # account names skipped on purpose
    caller: str | None = None  # the scan runs as an IAM user of this account, not management's


REPORT = {"strategy": "credential-report"}
CHAINED_CALLER = "arn:aws:sts::123456789012:assumed-role/OrgScanCI/gha-run"
SCP = (
    "not authorized to perform: iam:ListAccessKeys on resource: user solo-2 with an explicit "
    "deny in a service control policy"
)
# Today's Organizations: `State` only; accounts that cannot be entered are skipped, not failed.
GONE = {"acct-1": "SUSPENDED", "acct-3": "CLOSED", "acct-4": "PENDING_ACTIVATION"}


def lifecycle(seeded: SeededOrg) -> list[Fault]:
    ids = seeded.account_ids
    states = {**GONE, "acct-5": "PENDING_CLOSURE"}
    return [
        Fault(states=tuple((ids[name], state) for name, state in states.items())),
        *(Fault(action="AssumeRole", account=ids[name], error="AccessDenied") for name in GONE),
    ]


SCENARIOS = (
    Scenario("fault-free"),
    Scenario(
        "throttling, 30% of all calls",
        lambda v: [Fault(error="Throttling", share=0.3)],
    ),
    Scenario(
        "throttling beyond max_attempts",
        lambda v: [Fault(action="ListUsers", account=v, error="Throttling")],
        expect_failed="Throttling",
        scan={"max_attempts": 3},
    ),
    Scenario(
        "AssumeRole denied",
        lambda v: [Fault(action="AssumeRole", account=v, error="AccessDenied")],
        expect_failed="AccessDenied",
    ),
    Scenario(
        "ExpiredToken mid-account",
        lambda v: [Fault(action="ListAccessKeys", account=v, error="ExpiredToken", first=1)],
    ),
    Scenario(
        "ServiceFailure, 20% of IAM calls",
        lambda v: [Fault(action=a, error="ServiceFailure", share=0.2) for a in IAM_ACTIONS],
    ),
    Scenario(
        "Organizations throttled while listing",
        lambda v: [Fault(action="ListAccountsForParent", error="Throttling", first=3)],
    ),
    Scenario(
        "hanging endpoint past call_timeout",
        lambda v: [Fault(action="ListUsers", account=v, delay=1.5)],
        expect_failed="ReadTimeoutError",
        scan={"call_timeout": 0.3, "max_attempts": 2},
    ),
    Scenario("slow answers, 50 ms each", lambda v: [Fault(delay=0.05)]),
    Scenario(
        "ReportInProgress 3 times",
        lambda v: [Fault(action="GetCredentialReport", error="ReportInProgress", first=3)],
        scan=REPORT,
    ),
    Scenario(
        "ReportInProgress forever",
        lambda v: [Fault(action="GetCredentialReport", account=v, error="ReportInProgress")],
        expect_failed="CredentialReportTimeout",
        scan=REPORT,
        polling=ReportPolling(first_delay=0.02, max_delay=0.1, timeout=0.4),
    ),
    Scenario(
        "Organizations: State only, every state",
        org_faults=lifecycle,
        expect_skipped=tuple(GONE),
    ),
    Scenario(
        "AssumeRole: RegionDisabledException",
        lambda v: [Fault(action="AssumeRole", account=v, error="RegionDisabledException")],
        expect_failed="RegionDisabledException",
    ),
    Scenario(
        "caller is a delegated administrator",
        lambda v: [Fault(account=v, delegated_admin=True)],
        caller=VICTIM,
    ),
    Scenario(
        "garbled credential report",
        lambda v: [Fault(action="GetCredentialReport", account=v, report=b"user,arn\n<ro")],
        expect_failed="MalformedCredentialReport",
        scan=REPORT,
    ),
    Scenario(
        "SCP denies one user's ListAccessKeys",
        lambda v: [
            Fault(
                action="ListAccessKeys", account=v, user="solo-2", error="AccessDenied", message=SCP
            )
        ],
        expect_unreadable={"solo-2": "AccessDenied"},
    ),
    Scenario(
        "SCP denies a flagged user's re-check",
        lambda v: [Fault(action="ListAccessKeys", account=v, user="pair-2", error="AccessDenied")],
        expect_unreadable={"pair-2": "AccessDenied"},
        scan=REPORT,
    ),
    Scenario(
        "one user throttled beyond max_attempts",
        lambda v: [Fault(action="ListAccessKeys", account=v, user="solo-2", error="Throttling")],
        expect_unreadable={"solo-2": "Throttling"},
        scan={"max_attempts": 2},
    ),
    Scenario(
        "ServiceFailure on one user, every try",
        lambda v: [
            Fault(action="ListAccessKeys", account=v, user="none-2", error="ServiceFailure")
        ],
        expect_unreadable={"none-2": "ServiceFailure"},
        scan={"max_attempts": 2},
    ),
    Scenario(
        "key gone before GetAccessKeyLastUsed",
        lambda v: [Fault(action="GetAccessKeyLastUsed", account=v, error="NoSuchEntity", first=1)],
    ),
    Scenario(
        "sessions expire after 4 calls",
        lambda v: [Fault(session_calls=4, error="ExpiredToken", message=EXPIRED_TOKEN_MESSAGE)],
    ),
    Scenario(
        "chained caller, 7200 s configured",
        lambda v: [
            Fault(action="GetCallerIdentity", caller_arn=CHAINED_CALLER),
            Fault(
                action="AssumeRole",
                max_duration=3600,
                error="ValidationError",
                message=ROLE_CHAINING_MESSAGE,
            ),
        ],
        role={"duration_seconds": 7200},
    ),
)


@dataclass(frozen=True)
class Row:
    scenario: str
    accounts_expected: int
    accounts_scanned: int
    failed_as_expected: bool
    users_lost: int
    wall_seconds: float

    @property
    def ok(self) -> bool:
        return self.failed_as_expected and self.users_lost == 0

    def line(self) -> str:
        return (
            f"| {self.scenario:<38} | {self.accounts_expected:>8} | {self.accounts_scanned:>7} "
            f"| {'yes' if self.failed_as_expected else 'NO':>18} | {self.users_lost:>10} "
            f"| {self.wall_seconds:>6.2f} s |"
        )


HEADER = (
    "| scenario                               | expected | scanned | failed as expected "
    "| users lost |   wall   |\n"
    "| -------------------------------------- | -------: | ------: | -----------------: "
    "| ---------: | -------: |"
)


def truth(seeded: SeededOrg) -> dict[str, dict[str, int]]:
    """Account id → user ARN → active keys, straight from the spec that was seeded."""
    specs = [(ORG.management_name, ORG.management_users)]
    specs += [(a.name, a.users) for a in ORG.accounts]
    return {
        seeded.account_ids[name]: {
            f"arn:aws:iam::{seeded.account_ids[name]}:user{u.path}{u.name}": u.keys.count(ACTIVE)
            for u in users
        }
        for name, users in specs
    }


async def run_scenario(server: MotoServer, scenario: Scenario) -> Row:
    server.reset()
    seeded = seed_organization(ORG, server.url)
    victim = seeded.account_ids[VICTIM]
    server.inject([*scenario.faults(victim), *scenario.org_faults(seeded)])
    config = parse_config(
        {
            "scan": {"management_rate_limit": 1000, "account_rate_limit": 1000, **scenario.scan},
            "role": scenario.role,
        }
    )
    started = time.monotonic()
    with running_as(scenario.caller and seeded.account_ids[scenario.caller]):
        result = await scan(config, options=ScanOptions(report_polling=scenario.polling))
    wall = time.monotonic() - started

    expected = truth(seeded)
    failed = {r.account.id: r.error.code for r in result.accounts if r.error}
    wanted = {victim: scenario.expect_failed} if scenario.expect_failed else {}
    partial = {
        r.account.id: {u.user_name: u.error.code for u in r.unreadable_users if u.error}
        for r in result.accounts
        if r.scan_status is ScanStatus.PARTIAL
    }
    wanted_partial = {victim: scenario.expect_unreadable} if scenario.expect_unreadable else {}
    unreadable = {
        f"arn:aws:iam::{victim}:user{u.path}{u.name}"
        for a in ORG.accounts
        for u in a.users
        if u.name in scenario.expect_unreadable
    }
    skipped = {r.account.id for r in result.accounts if r.scan_status is ScanStatus.SKIPPED}
    unscanned = {seeded.account_ids[name] for name in scenario.expect_skipped}
    found = {u.arn: u.active_key_count for u in result.users}
    lost = sum(
        1
        for account, users in expected.items()
        if account not in wanted and account not in unscanned
        for arn, active in users.items()
        if arn not in unreadable and found.get(arn) != active
    )
    return Row(
        scenario=scenario.name,
        accounts_expected=len(expected) - len(wanted) - len(wanted_partial) - len(unscanned),
        accounts_scanned=sum(r.scan_status is ScanStatus.SCANNED for r in result.accounts),
        failed_as_expected=failed == wanted
        and partial == wanted_partial
        and skipped == unscanned
        and result.run.complete == (not wanted and not wanted_partial),
        users_lost=lost,
        wall_seconds=wall,
    )


@contextmanager
def running_as(account_id: str | None) -> Iterator[None]:
    """With an account id: the ambient credentials are a new IAM user's of that account."""
    if account_id is None:
        yield
        return
    iam = member_iam(boto3.client("sts"), account_id)
    iam.create_user(UserName="orgscan-runner")
    key = iam.create_access_key(UserName="orgscan-runner")["AccessKey"]
    saved = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"]
    )
    try:
        yield
    finally:
        os.environ.update(saved)


async def main() -> int:
    server = MotoServer().start()
    isolate_from_aws(server.url)
    try:
        print(HEADER)
        rows = []
        for scenario in SCENARIOS:
            rows.append(await run_scenario(server, scenario))
            print(rows[-1].line(), flush=True)
    finally:
        server.stop()
    bad = [row.scenario for row in rows if not row.ok]
    print(f"\n{len(rows) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
