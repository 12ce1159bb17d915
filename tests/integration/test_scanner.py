"""The scan pipeline end to end against moto's server: accounts, filters, counts, failures."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from orgscan.accounts import Hints
from orgscan.aws.credentials import AccountCredentials
from orgscan.demo.faults import EXPIRED_TOKEN_MESSAGE, Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import Account, AccountResult, FindingState, KeySource, ScanStatus
from orgscan.scanner import ScanOptions, scan, workers_per_account
from tests.conftest import FAST_POLL, config, keys_read, run_scan, seed

TREE = OrgSpec(
    management_users=(UserSpec("root-ops", (ACTIVE,)),),
    accounts=(
        AccountSpec("web", "Root/Prod/Web", (UserSpec("deployer", (ACTIVE, ACTIVE)),)),
        AccountSpec("data", "Root/Prod/Data", (UserSpec("etl", (ACTIVE,)),)),
        AccountSpec("prod-shared", "Root/Prod", (UserSpec("ops", (ACTIVE, INACTIVE)),)),
        AccountSpec("dev1", "Root/Dev", (UserSpec("dev", (ACTIVE, ACTIVE), "/engineering/"),)),
        AccountSpec("dev2", "Root/Dev", ()),
        AccountSpec("dev3", "Root/Dev", ()),
        AccountSpec("lab", "Root/Sandbox/Lab", (UserSpec("x", ()),)),
        AccountSpec("gone", "Root/Sandbox", (UserSpec("old", (ACTIVE, ACTIVE)),), suspended=True),
    ),
)


def by_name(result, seeded):
    names = {v: k for k, v in seeded.account_ids.items()}
    return {names[r.account.id]: r for r in result.accounts}


async def test_every_account_is_visited_once_across_pages(aws):
    seeded = seed(aws, TREE)
    result = await run_scan(page_size=2)

    assert sorted(r.account.id for r in result.accounts) == sorted(seeded.account_ids.values())
    assert Counter(r.account.id for r in result.accounts).most_common(1)[0][1] == 1
    accounts = by_name(result, seeded)
    assert accounts["web"].account.ou_path == "Root/Prod/Web"
    assert accounts["lab"].account.ou_path == "Root/Sandbox/Lab"
    assert accounts["management"].account.ou_path == "Root"
    # Each member account is entered exactly once; the management one uses the caller's keys.
    assumed = Counter(
        account
        for (action, account), n in aws.faults.calls.items()
        if action == "AssumeRole"
        for _ in range(n)
    )
    scanned_members = {
        r.account.id for r in result.accounts if r.scan_status is ScanStatus.SCANNED
    } - {seeded.management_account_id}
    assert set(assumed) == scanned_members
    assert set(assumed.values()) == {1}
    # Seven parents, and Root/Dev's three accounts take two pages of two.
    assert aws.faults.calls[("ListAccountsForParent", seeded.management_account_id)] == 8
    # Root's three OUs take two pages too.
    assert aws.faults.calls[("ListOrganizationalUnitsForParent", seeded.management_account_id)] == 8


async def test_active_key_counts_are_exact(aws):
    seeded = seed(aws, TREE)
    result = await run_scan()
    users = {u.user_name: u for u in result.users}

    assert users["deployer"].active_key_count == 2
    assert users["etl"].active_key_count == 1
    assert (users["ops"].key_count, users["ops"].active_key_count) == (2, 1)
    assert (users["x"].key_count, users["x"].active_key_count) == (0, 0)
    assert users["dev"].path == "/engineering/"
    assert users["dev"].arn == f"arn:aws:iam::{seeded.account_ids['dev1']}:user/engineering/dev"
    assert users["root-ops"].account_id == seeded.management_account_id
    # The suspended account is skipped, so its two-key user is not evidence of anything.
    assert "old" not in users
    assert sorted(f.user_name for f in result.findings) == ["deployer", "dev"]
    assert all(f.state is FindingState.OPEN for f in result.findings)
    # Last-used evidence is read for flagged users' keys only.
    assert all(k.id and k.id.startswith("AKIA") for k in users["deployer"].access_keys)
    assert result.run.complete
    assert result.run.partition == "aws"
    assert all(u.source is KeySource.LIVE for u in result.users)


async def test_suspended_accounts_are_skipped_and_said_so(aws):
    seeded = seed(aws, TREE)
    result = await run_scan()
    gone = by_name(result, seeded)["gone"]
    assert gone.scan_status is ScanStatus.SKIPPED
    assert gone.account.state == "SUSPENDED"
    assert gone.skip_reason == (
        "account state is SUSPENDED; organization.include_states is ACTIVE, PENDING_CLOSURE"
    )

    included = await run_scan(
        config(organization={"include_states": ["ACTIVE", "PENDING_CLOSURE", "SUSPENDED"]})
    )
    assert by_name(included, seeded)["gone"].scan_status is ScanStatus.SCANNED
    assert not [w for w in included.run.warnings if "include_states" in w]

    # Valid, but almost never meant: every ACTIVE account skipped. Said, not refused.
    only = await run_scan(config(organization={"include_states": ["SUSPENDED"]}))
    assert by_name(only, seeded)["gone"].scan_status is ScanStatus.SCANNED
    (warning,) = [w for w in only.run.warnings if "include_states" in w]
    assert warning.startswith("organization.include_states is SUSPENDED: it leaves out ACTIVE")


LIFECYCLE = OrgSpec(
    accounts=tuple(
        AccountSpec(state.lower(), "Root", (UserSpec("pair", (ACTIVE, ACTIVE)),))
        for state in ("ACTIVE", "PENDING_ACTIVATION", "SUSPENDED", "PENDING_CLOSURE", "CLOSED")
    )
)


async def test_today_s_organizations_api_state_only_and_every_lifecycle_state(aws):
    """Organizations as it answers today: `State`, no `Status`. Suspended, closed and
    not-yet-active accounts cannot be entered (AWS refuses their roles), so a scan that read
    them as ACTIVE would end incomplete forever; they are skipped, and the run is complete."""
    seeded = seed(aws, LIFECYCLE)
    ids = {name.upper(): seeded.account_ids[name] for name in seeded.account_ids}
    aws.inject(
        [
            Fault(
                states=tuple(
                    (ids[s], s)
                    for s in ("PENDING_ACTIVATION", "SUSPENDED", "PENDING_CLOSURE", "CLOSED")
                )
            ),
            *(
                Fault(action="AssumeRole", account=ids[s], error="AccessDenied")
                for s in ("PENDING_ACTIVATION", "SUSPENDED", "CLOSED")
            ),
        ]
    )
    result = await run_scan(page_size=2)

    accounts = {r.account.id: r for r in result.accounts}
    for state in ("ACTIVE", "PENDING_CLOSURE"):
        assert (accounts[ids[state]].account.state, accounts[ids[state]].scan_status) == (
            state,
            ScanStatus.SCANNED,
        )
    for state in ("PENDING_ACTIVATION", "SUSPENDED", "CLOSED"):
        skipped = accounts[ids[state]]
        assert (skipped.account.state, skipped.scan_status) == (state, ScanStatus.SKIPPED)
        assert skipped.skip_reason.startswith(f"account state is {state};")
    assert accounts[seeded.management_account_id].account.state == "ACTIVE"
    assert result.run.complete
    # A closing account's keys still work: its two-key user is a finding.
    assert {f.account_id for f in result.findings} == {ids["ACTIVE"], ids["PENDING_CLOSURE"]}
    assert aws.faults.injected == {}  # no closed account's role was even tried


async def test_ou_filters_include_sub_ous_and_accept_ids(aws):
    seeded = seed(aws, TREE)
    prod = await run_scan(config(organization={"include_ous": ["Root/Prod"]}))
    scanned = {n for n, r in by_name(prod, seeded).items() if r.scan_status is ScanStatus.SCANNED}
    assert scanned == {"web", "data", "prod-shared"}
    assert (
        by_name(prod, seeded)["dev1"].skip_reason == "not under any OU in organization.include_ous"
    )

    web_id = seeded.ou_ids["Root/Prod/Web"]
    no_web = await run_scan(
        config(organization={"include_ous": ["Root/Prod"], "exclude_ous": [web_id]})
    )
    accounts = by_name(no_web, seeded)
    assert accounts["web"].scan_status is ScanStatus.SKIPPED
    assert web_id in accounts["web"].skip_reason
    assert accounts["data"].scan_status is ScanStatus.SCANNED


async def test_account_filters_and_unmatched_entries_warn(aws):
    seeded = seed(aws, TREE)
    web, data = seeded.account_ids["web"], seeded.account_ids["data"]
    result = await run_scan(
        config(
            organization={
                "include_accounts": [web, data, "999999999999"],
                "exclude_accounts": [data],
                "exclude_ous": ["Root/Nowhere"],
            }
        )
    )
    scanned = [r.account.id for r in result.accounts if r.scan_status is ScanStatus.SCANNED]
    assert scanned == [web]
    assert by_name(result, seeded)["data"].skip_reason == "listed in organization.exclude_accounts"
    assert (
        "organization.include_accounts: account 999999999999 is not in the organization"
        in result.run.warnings
    )
    assert "organization.exclude_ous: Root/Nowhere matched no account" in result.run.warnings


async def test_management_account_modes(aws):
    seeded = seed(aws, TREE)
    management = seeded.management_account_id

    skipped = await run_scan(config(organization={"management_account": "skip"}))
    assert by_name(skipped, seeded)["management"].scan_status is ScanStatus.SKIPPED
    assert not aws.faults.calls.get(("AssumeRole", management))

    assumed = await run_scan(config(organization={"management_account": "assume"}))
    assert by_name(assumed, seeded)["management"].scan_status is ScanStatus.SCANNED
    assert aws.faults.calls[("AssumeRole", management)] == 1


async def test_denied_account_fails_alone_and_the_run_is_incomplete(aws):
    seeded = seed(aws, TREE)
    dev2 = seeded.account_ids["dev2"]
    aws.inject([Fault(action="AssumeRole", account=dev2, error="AccessDenied", message="no trust")])
    result = await run_scan()

    accounts = by_name(result, seeded)
    assert accounts["dev2"].scan_status is ScanStatus.FAILED
    assert (accounts["dev2"].error.code, accounts["dev2"].error.message) == (
        "AccessDenied",
        "no trust",
    )
    assert accounts["dev2"].user_count is None
    others = [r for n, r in accounts.items() if n not in ("dev2", "gone")]
    assert all(r.scan_status is ScanStatus.SCANNED for r in others)
    assert not result.run.complete


async def test_throttling_on_a_third_of_iam_calls_changes_nothing(aws):
    seed(aws, TREE)
    clean = await run_scan()
    aws.inject(
        [
            Fault(action=a, error="Throttling", share=0.3)
            for a in ("ListUsers", "ListAccessKeys", "GetAccessKeyLastUsed")
        ]
    )
    throttled = await run_scan()

    assert aws.faults.injected["Throttling"] > 3
    assert throttled.run.complete
    assert keys_read(throttled) == keys_read(clean)
    assert [f.arn for f in throttled.findings] == [f.arn for f in clean.findings]


async def test_throttling_beyond_max_attempts_fails_only_that_account(aws):
    seeded = seed(aws, TREE)
    web = seeded.account_ids["web"]
    aws.inject([Fault(action="ListUsers", account=web, error="Throttling")])
    result = await run_scan(config(scan={"max_attempts": 2}))
    accounts = by_name(result, seeded)
    assert accounts["web"].scan_status is ScanStatus.FAILED
    assert accounts["web"].error.code == "Throttling"
    assert aws.faults.calls[("ListUsers", web)] == 2
    assert accounts["data"].scan_status is ScanStatus.SCANNED
    assert not result.run.complete


async def test_an_expired_token_renews_the_session_and_retries_the_call_not_the_account(aws):
    seeded = seed(aws, TREE)
    web = seeded.account_ids["web"]
    aws.inject(
        [
            Fault(
                action="ListAccessKeys",
                account=web,
                error="ExpiredToken",
                message=EXPIRED_TOKEN_MESSAGE,
                first=1,
            )
        ]
    )
    result = await run_scan()
    assert by_name(result, seeded)["web"].scan_status is ScanStatus.SCANNED
    assert aws.faults.calls[("AssumeRole", web)] == 2
    # The failed call is made again with the new session; nothing before it is repeated.
    assert aws.faults.calls[("ListUsers", web)] == 1
    assert aws.faults.calls[("ListAccessKeys", web)] == 2

    # A session just renewed that AWS refuses too is a real failure, not a loop.
    aws.inject([Fault(action="ListAccessKeys", account=web, error="ExpiredToken")])
    again = await run_scan()
    assert by_name(again, seeded)["web"].error.code == "ExpiredToken"
    assert by_name(again, seeded)["web"].scan_status is ScanStatus.FAILED
    assert aws.faults.calls[("AssumeRole", web)] == 2


@pytest.mark.slow
async def test_a_thousand_users_outlast_sessions_that_stop_working_after_300_calls(aws):
    """Every session token stops working after 300 calls: the account completes all the same,
    renewing its session as it goes, and each user's ListAccessKeys is made once, plus once
    for each call that met an expired token."""
    users = tuple(UserSpec(f"user-{i:04d}") for i in range(1003))
    big = OrgSpec(accounts=(AccountSpec("big", "Root", users),))
    seeded = seed(aws, big)
    big_id = seeded.account_ids["big"]
    aws.inject(
        [
            Fault(
                account=big_id,
                session_calls=300,
                error="ExpiredToken",
                message=EXPIRED_TOKEN_MESSAGE,
            )
        ]
    )
    result = await run_scan(config(organization={"include_accounts": [big_id]}))

    account = by_name(result, seeded)["big"]
    assert account.scan_status is ScanStatus.SCANNED
    assert account.user_count == 1003
    assert result.run.complete
    calls = aws.faults.calls
    expired = aws.faults.injected["ExpiredToken"]
    assert calls[("ListUsers", big_id)] == 2
    # 1,005 calls need ceil(1005 / 300) = 4 sessions: 3 renewals, never the account again.
    assert calls[("AssumeRole", big_id)] == 4
    # Each user's ListAccessKeys once; the only repeats are the calls an expiry refused.
    assert calls[("ListAccessKeys", big_id)] == 1003 + expired
    assert 0 < expired <= 3 * workers_per_account(1000)


async def test_both_strategies_agree(aws):
    seed(aws, TREE)
    live = await run_scan(config(scan={"strategy": "live"}))
    report = await run_scan(config(scan={"strategy": "credential-report"}))
    assert {u.arn: u.active_key_count for u in live.users} == {
        u.arn: u.active_key_count for u in report.users
    }
    assert {u.arn: u.key_count for u in live.users} == {u.arn: u.key_count for u in report.users}
    assert [f.arn for f in live.findings] == [f.arn for f in report.findings]
    scanned = [r for r in report.accounts if r.scan_status is ScanStatus.SCANNED]
    assert all(r.credential_report_generated_at is not None for r in scanned)
    # Flagged users were re-read live, the rest come from the report.
    flagged = {f.arn for f in report.findings}
    assert {u.arn for u in report.users if u.source is KeySource.LIVE} == flagged


async def test_exceptions_mark_findings_and_expired_ones_do_not(aws):
    seeded = seed(aws, TREE)
    base = {"reason": "rotation", "owner": "team@example.com", "ticket": "SEC-1"}
    result = await run_scan(
        config(
            exceptions=[
                {
                    **base,
                    "account": seeded.account_ids["web"],
                    "user": "deployer",
                    "expires": "2099-01-01",
                },
                {
                    **base,
                    "account": seeded.account_ids["dev1"],
                    "user": "arn:aws:iam::*:user/engineering/*",
                    "expires": "2020-01-01",
                },
            ]
        )
    )
    findings = {f.user_name: f for f in result.findings}
    assert findings["deployer"].state is FindingState.EXCEPTED
    assert findings["deployer"].exception.owner == "team@example.com"
    assert findings["dev"].state is FindingState.OPEN
    assert findings["dev"].exception is None
    assert findings["dev"].expired_exception.expires.isoformat() == "2020-01-01"


async def test_a_listing_that_breaks_off_leaves_the_run_incomplete(aws):
    seeded = seed(aws, TREE)
    aws.inject([Fault(action="ListOrganizationalUnitsForParent", error="AccessDenied")])
    result = await run_scan()
    # Root's own accounts were listed and scanned; nothing below an OU could be reached.
    scanned = {r.account.id for r in result.accounts if r.scan_status is ScanStatus.SCANNED}
    assert scanned == {seeded.management_account_id}
    assert [e.code for e in result.run.errors] == ["AccessDenied"]
    assert "listing the organization failed" in result.run.errors[0].message
    assert not result.run.complete


SLASHED = OrgSpec(
    accounts=(
        # An OU *named* "Legacy/Old" under Root, and an OU "Old" inside an OU "Legacy".
        AccountSpec("named-with-slash", r"Root/Legacy\/Old", (UserSpec("a"),)),
        AccountSpec("nested", "Root/Legacy/Old", (UserSpec("b"),)),
    )
)


async def test_an_ou_name_with_a_slash_gets_its_own_escaped_path(aws):
    seeded = seed(aws, SLASHED)
    result = await run_scan()
    accounts = by_name(result, seeded)
    assert accounts["named-with-slash"].account.ou_path == r"Root/Legacy\/Old"
    assert accounts["nested"].account.ou_path == "Root/Legacy/Old"

    async def scanned_under(ref: str) -> set[str]:
        filtered = await run_scan(config(organization={"include_ous": [ref]}))
        return {
            n for n, r in by_name(filtered, seeded).items() if r.scan_status is ScanStatus.SCANNED
        }

    # Each path filter matches exactly one of the two; the parent OU holds only the nested one.
    assert await scanned_under(r"Root/Legacy\/Old") == {"named-with-slash"}
    assert await scanned_under("Root/Legacy/Old") == {"nested"}
    assert await scanned_under("Root/Legacy") == {"nested"}


async def test_hinted_ids_gone_from_the_organization_or_excluded_are_never_scanned(aws):
    seeded = seed(aws, TREE)
    first = await run_scan()
    gone = "999999999999"
    excluded = seeded.account_ids["web"]
    hints = replace(
        first,
        accounts=[
            *first.accounts,
            AccountResult(
                Account(gone, "closed since", "", "ACTIVE", "Root", ("r-x",)),
                ScanStatus.SCANNED,
                api_calls=10_000,  # the largest: handed out first, before the walk
            ),
        ],
    )
    for r in hints.accounts:
        if r.account.id == excluded:
            r.api_calls = 5_000
    aws.faults.calls.clear()
    cfg = config(organization={"exclude_accounts": [excluded]})
    result = await scan(cfg, options=ScanOptions(report_polling=FAST_POLL), hints=Hints.of(hints))

    assert gone not in {r.account.id for r in result.accounts}
    assert result.run.complete
    touched = {account for (action, account) in aws.faults.calls if action != "AssumeRole"}
    assert gone not in touched  # not a single IAM call
    # An id the config excludes is not even assumed early.
    assert excluded not in {account for (_, account) in aws.faults.calls}
    assert by_name(result, seeded)["web"].scan_status is ScanStatus.SKIPPED
    scanned = {r.account.id for r in result.accounts if r.scan_status is ScanStatus.SCANNED}
    assert scanned == {
        r.account.id for r in first.accounts if r.scan_status is ScanStatus.SCANNED
    } - {excluded}


async def test_a_hint_enters_its_largest_accounts_first(aws, monkeypatch):
    seeded = seed(aws, TREE)
    first = await run_scan()
    sizes = {"lab": 500, "dev1": 300, "web": 100}  # the last sweep's IAM calls
    hints = replace(
        first,
        accounts=[
            replace(r, api_calls=sizes.get(name, r.api_calls))
            for name, r in by_name(first, seeded).items()
        ],
    )
    # The order orgscan asks for the roles in (its limiter serves them in that order:
    # tests/unit/aws/test_ratelimit.py).
    asked: list[str] = []
    get = AccountCredentials.get

    async def recorded(self: AccountCredentials, account_id: str) -> Any:
        asked.append(account_id)
        return await get(self, account_id)

    monkeypatch.setattr(AccountCredentials, "get", recorded)
    result = await scan(
        config(), options=ScanOptions(report_polling=FAST_POLL), hints=Hints.of(hints)
    )

    assert asked[:3] == [seeded.account_ids[name] for name in ("lab", "dev1", "web")]
    assert result.run.complete
    assert [r.account.id for r in result.accounts] == sorted(r.account.id for r in result.accounts)
