"""The keys' last use and the root user's keys: from the credential report beside the live
listing, matched to each key by its creation date, else one call each; never a call for an
inactive key, and no report at all when no rule needs one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from orgscan.collect.credential_report import ReportPolling, collect_from_report
from orgscan.collect.live import collect_live
from orgscan.collect.usage import Needs
from orgscan.config import default_rules
from orgscan.model import (
    KeySource,
    LastUseSource,
    RootKeys,
    RootKeySource,
    RuleSettings,
)
from tests.integration.collect.test_credential_report import HEADER  # AWS's own column order
from tests.unit.fakes import REPORT_GENERATED, FakeIam, client_error

ACCOUNT = "111111111111"
EVERYTHING = Needs.of(default_rules())
COUNT_ONLY = Needs.of([RuleSettings("iam-user-multiple-active-access-keys")])
POLL = ReportPolling(first_delay=0.001, max_delay=0.002, timeout=0.05)
T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def _cell(when: datetime | None) -> str:
    return "N/A" if when is None else when.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def row(name: str, *slots: tuple[bool, datetime, datetime | None]) -> str:
    """A report row: each slot (active, last_rotated, last used or None); `<root_account>` for
    the root user."""
    arn = f"arn:aws:iam::{ACCOUNT}:" + ("root" if name == "<root_account>" else f"user/{name}")
    cells = [name, arn, _cell(T0), "false", "N/A", "N/A", "N/A", "false"]
    for active, rotated, used in slots:
        cells += [
            "true" if active else "false",
            _cell(rotated),
            _cell(used),
            "eu-west-1" if used else "N/A",
            "s3" if used else "N/A",
        ]
    cells += ["false", "N/A", "N/A", "N/A", "N/A"] * (2 - len(slots))
    return ",".join([*cells, "false", "N/A", "false", "N/A"])


def report(*rows: str) -> bytes:
    return "\n".join([HEADER, row("<root_account>"), *rows]).encode()


def calls(iam: FakeIam, operation: str) -> list[str]:
    return [p.get("AccessKeyId", "") for op, p in iam.calls if op == operation]


def keys_of(collected, user):
    (found,) = [u for u in collected.users if u.user_name == user]
    return {k.id: k for k in found.access_keys}


@pytest.fixture
def two_keys() -> FakeIam:
    """alice's two keys, created a minute apart (the report lists B's slot first)."""
    iam = FakeIam({"alice": {"AKIAA": "Active", "AKIAB": "Active"}})
    # ListAccessKeys may give a fraction of a second; the report's dates have none.
    iam.created = {
        "AKIAA": T0 + timedelta(microseconds=250_000),
        "AKIAB": T0 + timedelta(minutes=1),
    }
    iam.report = report(
        row("alice", (True, T0 + timedelta(minutes=1), None), (True, T0, T0 + timedelta(30)))
    )
    return iam


async def test_last_use_comes_from_the_report_slot_created_with_the_key(two_keys):
    collected = await collect_live(two_keys, ACCOUNT, 2, EVERYTHING, POLL)
    keys = keys_of(collected, "alice")
    assert keys["AKIAA"].last_used_at == T0 + timedelta(30)
    assert keys["AKIAA"].last_used_region == "eu-west-1"
    assert keys["AKIAB"].last_used_at is None  # matched, and never used
    assert {(k.last_used_source, k.last_used_as_of) for k in keys.values()} == {
        (LastUseSource.CREDENTIAL_REPORT, REPORT_GENERATED)
    }
    assert collected.report_generated_at == REPORT_GENERATED
    assert calls(two_keys, "GetAccessKeyLastUsed") == []  # two active keys, no call for either
    # Counts and statuses stay live: the report's user is never taken instead.
    (alice,) = collected.users
    assert alice.source is KeySource.LIVE


async def test_the_report_is_generated_at_once_and_asked_for_once_the_users_are_listed(two_keys):
    two_keys.users |= {f"user-{n}": {} for n in range(4)}
    two_keys.report_state = "STARTED"  # AWS takes seconds; the listing here takes 50 ms
    two_keys.pause = 0.01
    await collect_live(two_keys, ACCOUNT, 1, EVERYTHING, POLL)
    operations = [op for op, _ in two_keys.calls]
    assert operations[0] == "GenerateCredentialReport"
    # One poll, after the last user's keys: none spent the account's calls during the listing.
    assert operations[-1] == "GetCredentialReport"
    assert operations.count("GetCredentialReport") == 1


async def test_keys_the_report_cannot_tell_apart_or_does_not_know_are_read_one_by_one():
    iam = FakeIam(
        {
            "twins": {"AKIAT1": "Active", "AKIAT2": "Active"},  # created the same second
            "newer": {"AKIAOLD": "Active", "AKIANEW": "Active"},  # one created after the report
        }
    )
    iam.created = {"AKIAOLD": T0, "AKIANEW": REPORT_GENERATED + timedelta(hours=1)}
    iam.last_used = {"AKIANEW": REPORT_GENERATED + timedelta(hours=2)}
    iam.report = report(
        row("twins", (True, T0, None), (True, T0, None)), row("newer", (True, T0, None))
    )
    collected = await collect_live(iam, ACCOUNT, 2, EVERYTHING, POLL)
    assert sorted(calls(iam, "GetAccessKeyLastUsed")) == ["AKIANEW", "AKIAT1", "AKIAT2"]
    newer = keys_of(collected, "newer")
    assert newer["AKIAOLD"].last_used_source is LastUseSource.CREDENTIAL_REPORT
    assert newer["AKIANEW"].last_used_source is LastUseSource.GET_ACCESS_KEY_LAST_USED
    assert newer["AKIANEW"].last_used_at == REPORT_GENERATED + timedelta(hours=2)
    assert newer["AKIANEW"].last_used_as_of > REPORT_GENERATED


async def test_without_a_report_every_active_key_is_asked_and_no_inactive_one():
    iam = FakeIam({"alice": {"AKIAA": "Active", "AKIAI": "Inactive"}, "bob": {"AKIAB": "Active"}})
    iam.fail["GenerateCredentialReport"] = [
        client_error("AccessDenied", "GenerateCredentialReport", "an SCP denies it")
    ]
    iam.root_keys_present = 1
    collected = await collect_live(iam, ACCOUNT, 2, EVERYTHING, POLL)
    assert sorted(calls(iam, "GetAccessKeyLastUsed")) == ["AKIAA", "AKIAB"]
    alice = keys_of(collected, "alice")
    assert alice["AKIAA"].last_used_source is LastUseSource.GET_ACCESS_KEY_LAST_USED
    assert alice["AKIAI"].last_used_source is None  # not read: an inactive key costs nothing
    # The root user: GetAccountSummary says present, and cannot say whether active.
    assert collected.root_keys.source is RootKeySource.ACCOUNT_SUMMARY
    assert (collected.root_keys.present, collected.root_keys.active) == (True, None)
    assert collected.report_generated_at is None
    assert collected.notes == [
        "the credential report could not be read (AccessDenied: an SCP denies it); read instead "
        "each active key's last use with GetAccessKeyLastUsed and the root user's access keys "
        "with GetAccountSummary"
    ]


async def test_a_report_that_never_comes_leaves_the_listing_whole():
    iam = FakeIam({"alice": {"AKIAA": "Active"}})  # GetCredentialReport: ReportNotPresent
    collected = await collect_live(iam, ACCOUNT, 2, EVERYTHING, POLL)
    assert keys_of(collected, "alice")["AKIAA"].last_used_source is (
        LastUseSource.GET_ACCESS_KEY_LAST_USED
    )
    (note,) = collected.notes
    assert note.startswith("the credential report could not be read (CredentialReportTimeout: ")


async def test_the_root_user_comes_from_the_reports_root_row(two_keys):
    two_keys.report = two_keys.report.replace(
        row("<root_account>").encode(),
        row("<root_account>", (False, T0, None), (True, T0 + timedelta(1), None)).encode(),
    )
    collected = await collect_live(two_keys, ACCOUNT, 2, EVERYTHING, POLL)
    assert collected.root_keys == RootKeys(
        RootKeySource.CREDENTIAL_REPORT, REPORT_GENERATED, present=True, active=1
    )
    assert calls(two_keys, "GetAccountSummary") == []


async def test_a_root_user_that_cannot_be_read_is_unknown_not_absent():
    iam = FakeIam({})
    iam.fail["GenerateCredentialReport"] = [
        client_error("AccessDenied", "GenerateCredentialReport")
    ]
    iam.fail["GetAccountSummary"] = [client_error("AccessDenied", "GetAccountSummary", "denied")]
    collected = await collect_live(iam, ACCOUNT, 2, EVERYTHING, POLL)
    assert collected.root_keys.present is None
    assert (collected.root_keys.error.code, collected.root_keys.error.message) == (
        "AccessDenied",
        "denied",
    )


async def test_credentials_refused_to_get_account_summary_fail_the_account():
    iam = FakeIam({})
    iam.fail["GenerateCredentialReport"] = [
        client_error("AccessDenied", "GenerateCredentialReport")
    ]
    iam.fail["GetAccountSummary"] = [client_error("ExpiredToken", "GetAccountSummary")]
    with pytest.raises(ClientError):
        await collect_live(iam, ACCOUNT, 2, EVERYTHING, POLL)


async def test_a_last_use_that_cannot_be_read_is_recorded_as_unknown():
    iam = FakeIam({"alice": {"AKIAA": "Active"}})
    iam.fail["GetAccessKeyLastUsed"] = [client_error("AccessDenied", "GetAccessKeyLastUsed")]
    collected = await collect_live(iam, ACCOUNT, 2, Needs(key_last_use=True), POLL)
    key = keys_of(collected, "alice")["AKIAA"]
    assert key.last_used_error.code == "AccessDenied"
    assert key.last_used_source is None
    (alice,) = collected.users
    assert not alice.complete  # unknown is neither used nor unused


async def test_with_no_rule_needing_it_no_report_is_generated(two_keys):
    collected = await collect_live(two_keys, ACCOUNT, 2, COUNT_ONLY, POLL)
    operations = {op for op, _ in two_keys.calls}
    assert operations == {"ListUsers", "ListAccessKeys", "GetAccessKeyLastUsed"}
    assert collected.root_keys is None
    # As before the rules beyond the count: the last use of a flagged user's keys, read live.
    assert {k.last_used_source for k in keys_of(collected, "alice").values()} == {
        LastUseSource.GET_ACCESS_KEY_LAST_USED
    }


async def test_the_root_rule_alone_reads_the_report_but_asks_no_single_key():
    iam = FakeIam({"bob": {"AKIAB": "Active"}})
    iam.fail["GenerateCredentialReport"] = [
        client_error("AccessDenied", "GenerateCredentialReport")
    ]
    collected = await collect_live(iam, ACCOUNT, 2, Needs(root_keys=True), POLL)
    assert calls(iam, "GetAccessKeyLastUsed") == []
    assert collected.root_keys.source is RootKeySource.ACCOUNT_SUMMARY


NOW = datetime.now(UTC)


def test_what_each_rule_needs_read_is_its_data():
    assert (
        Needs(
            key_last_use=True,
            flagged_key_last_use=True,
            root_keys=True,
            max_age_days=90,
            max_unused_days=45,
        )
        == EVERYTHING
    )
    assert Needs(flagged_key_last_use=True) == COUNT_ONLY
    unused = Needs.of([RuleSettings("iam-access-key-unused", {"max_unused_days": 30})])
    assert unused == Needs(key_last_use=True, max_unused_days=30)
    assert Needs.of([RuleSettings("root-access-key-present")]) == Needs(root_keys=True)
    assert not Needs.of([RuleSettings("iam-access-key-not-rotated", {"max_age_days": 9})]).report


@pytest.mark.parametrize(
    ("needs", "reread"),
    [
        (EVERYTHING, {"old", "idle", "pair"}),
        # pair's keys are young and used: only the one-active-key rule could fail it
        (Needs(max_age_days=90), {"old"}),
        (Needs(max_unused_days=45), {"idle"}),
        (COUNT_ONLY, {"pair"}),
    ],
)
async def test_the_report_strategy_rereads_every_user_a_rule_could_fail(needs, reread):
    iam = FakeIam(
        {
            "old": {"AKIAOLD": "Active"},  # created 200 days ago, used yesterday
            "idle": {"AKIAIDLE": "Active"},  # created 60 days ago, never used
            "fine": {"AKIAFINE": "Active", "AKIAOFF": "Inactive"},  # young; an old inactive key
            "pair": {"AKIAP1": "Active", "AKIAP2": "Active"},
        }
    )
    old, idle, young = NOW - timedelta(200), NOW - timedelta(60), NOW - timedelta(10)
    iam.created = {"AKIAOLD": old, "AKIAIDLE": idle, "AKIAFINE": young, "AKIAOFF": old}
    iam.created |= {"AKIAP1": young, "AKIAP2": young + timedelta(1)}
    yesterday = NOW - timedelta(1)
    iam.report = report(
        row("old", (True, old, yesterday)),
        row("idle", (True, idle, None)),
        row("fine", (True, young, yesterday), (False, old, None)),
        row("pair", (True, young, None), (True, young + timedelta(1), None)),
    )
    collected = await collect_from_report(iam, ACCOUNT, 2, POLL, needs)
    by_name = {u.user_name: u for u in collected.users}
    assert {n for n, u in by_name.items() if u.source is KeySource.LIVE} == reread
    assert sorted(p["UserName"] for op, p in iam.calls if op == "ListAccessKeys") == sorted(reread)
    # A user re-read for an old key alone comes back with its key id, and its last use from
    # the report, matched: no call for it.
    if "old" in reread:
        assert set(keys_of(collected, "old")) == {"AKIAOLD"}
        assert keys_of(collected, "old")["AKIAOLD"].last_used_at == yesterday.replace(microsecond=0)
    assert calls(iam, "GetAccessKeyLastUsed") == []
    assert calls(iam, "GetAccountSummary") == []
    assert (collected.root_keys is not None) is needs.root_keys
