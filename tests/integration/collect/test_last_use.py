"""Last use and root keys over real HTTP: moto behind the fault layer, which answers what AWS
holds and moto cannot (keys created and used long ago, a root user with a key)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orgscan.demo.faults import Fault, KeyHistory, RootKey
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, SeededOrg, UserSpec
from orgscan.model import KeySource, LastUseSource, RootKeys, RootKeySource, ScanStatus
from tests.conftest import config, keys_read, run_scan, seed

ORG = OrgSpec(
    accounts=(
        AccountSpec(
            "a", "Root", (UserSpec("old", (ACTIVE, INACTIVE)), UserSpec("pair", (ACTIVE, ACTIVE)))
        ),
        AccountSpec(
            "b", "Root", (UserSpec("fresh", (ACTIVE,)), UserSpec("twins", (ACTIVE, ACTIVE)))
        ),
    )
)
NOW = datetime.now(UTC).replace(microsecond=0)


def history(seeded: SeededOrg) -> Fault:
    """old: an active key 400 days old, last used 100 days ago, and an inactive one; pair: two
    young keys; twins: two keys created the same second; a root user with a key in a."""
    (old, off), (p1, p2) = seeded.key_ids[("a", "old")], seeded.key_ids[("a", "pair")]
    t1, t2 = seeded.key_ids[("b", "twins")]
    return Fault(
        key_history=(
            KeyHistory(old, NOW - timedelta(400), NOW - timedelta(100), "ec2", "eu-west-1"),
            KeyHistory(off, NOW - timedelta(500), NOW - timedelta(450)),
            KeyHistory(p1, NOW - timedelta(20), NOW - timedelta(1)),
            KeyHistory(p2, NOW - timedelta(10)),
            KeyHistory(t1, NOW - timedelta(30)),
            KeyHistory(t2, NOW - timedelta(30)),
        ),
        root_keys=(RootKey(seeded.account_ids["a"], NOW - timedelta(1000)),),
    )


def keys(result, arn_suffix):
    (user,) = [u for u in result.users if u.arn.endswith(arn_suffix)]
    return {k.id: k for k in user.access_keys}


def calls(aws, action, account):
    return aws.faults.calls.get((action, account), 0)


async def test_live_reads_last_use_and_the_root_user_from_the_report(aws):
    seeded = seed(aws, ORG)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    aws.inject([history(seeded)])
    result = await run_scan()

    assert result.run.complete
    (old, off) = seeded.key_ids[("a", "old")]
    found = keys(result, "user/old")
    assert found[old].created_at == NOW - timedelta(400)  # ListAccessKeys, as AWS answers
    assert found[old].last_used_at == NOW - timedelta(100)
    assert (found[old].last_used_service, found[old].last_used_region) == ("ec2", "eu-west-1")
    assert found[old].last_used_source is LastUseSource.CREDENTIAL_REPORT
    assert found[off].last_used_at == NOW - timedelta(450)  # inactive, matched for free
    p1, p2 = seeded.key_ids[("a", "pair")]
    pair = keys(result, "user/pair")
    assert (pair[p1].last_used_at, pair[p2].last_used_at) == (NOW - timedelta(1), None)
    assert {k.last_used_source for k in pair.values()} == {LastUseSource.CREDENTIAL_REPORT}
    # Only the twins, created the same second, cost a call each; nothing else did.
    assert calls(aws, "GetAccessKeyLastUsed", a) == 0
    assert calls(aws, "GetAccessKeyLastUsed", b) == 2
    assert {k.last_used_source for k in keys(result, "user/twins").values()} == {
        LastUseSource.GET_ACCESS_KEY_LAST_USED
    }
    accounts = {r.account.id: r for r in result.accounts}
    report_time = accounts[a].credential_report_generated_at
    assert report_time is not None and found[old].last_used_as_of == report_time
    assert accounts[a].root_keys == RootKeys(RootKeySource.CREDENTIAL_REPORT, report_time, True, 1)
    assert accounts[b].root_keys.present is False
    assert not any(action == "GetAccountSummary" for action, _ in aws.faults.calls)
    # Counts and statuses stay live.
    assert {u.source for u in result.users} == {KeySource.LIVE}


async def test_without_the_report_each_active_key_and_the_root_user_are_read_directly(aws):
    seeded = seed(aws, ORG)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    denied = Fault(
        action="GenerateCredentialReport",
        account=a,
        error="LimitExceeded",
        message="Cannot generate a report: too many requests",
    )
    aws.inject([denied, history(seeded)])
    result = await run_scan()

    assert result.run.complete
    accounts = {r.account.id: r for r in result.accounts}
    assert accounts[a].scan_status is ScanStatus.SCANNED
    assert accounts[a].notes == [
        "the credential report could not be read (LimitExceeded: Cannot generate a report: too "
        "many requests); read instead each active key's last use with GetAccessKeyLastUsed and "
        "the root user's access keys with GetAccountSummary"
    ]
    old, off = seeded.key_ids[("a", "old")]
    found = keys(result, "user/old")
    assert found[old].last_used_at == NOW - timedelta(100)
    assert found[old].last_used_source is LastUseSource.GET_ACCESS_KEY_LAST_USED
    assert found[off].last_used_source is None  # inactive: never asked
    assert calls(aws, "GetAccessKeyLastUsed", a) == 3  # old's active key and pair's two
    root = accounts[a].root_keys
    assert (root.source, root.present, root.active) == (RootKeySource.ACCOUNT_SUMMARY, True, None)
    assert accounts[a].credential_report_generated_at is None
    # The other account read its report as usual.
    assert accounts[b].root_keys.source is RootKeySource.CREDENTIAL_REPORT
    assert calls(aws, "GetAccountSummary", b) == 0


async def test_both_strategies_read_the_same_keys_for_every_user_a_rule_could_fail(aws):
    seeded = seed(aws, ORG)
    aws.inject([history(seeded)])
    live = await run_scan()
    aws.inject([history(seeded)])
    report = await run_scan(config(scan={"strategy": "credential-report"}))

    # old's only problem is its key's age and disuse: it is read again, for its key id.
    reread = {u.arn for u in report.users if u.source is KeySource.LIVE}
    assert {arn.rsplit("/", 1)[1] for arn in reread} == {"old", "pair", "twins"}
    assert {arn: k for arn, k in keys_read(report).items() if arn in reread} == {
        arn: k for arn, k in keys_read(live).items() if arn in reread
    }
    (fresh,) = [u for u in report.users if u.user_name == "fresh"]
    assert fresh.source is KeySource.CREDENTIAL_REPORT  # young and unused: no rule can fail it

    def roots(result):
        return [
            (r.root_keys.source, r.root_keys.present, r.root_keys.active) for r in result.accounts
        ]

    assert roots(report) == roots(live)
    assert (RootKeySource.CREDENTIAL_REPORT, True, 1) in roots(report)


LOWERED = {
    "iam-access-key-not-rotated": {"max_age_days": 15},
    "iam-access-key-unused": {"max_unused_days": 5},
}


@pytest.mark.parametrize("rules", [None, LOWERED], ids=["default limits", "lowered limits"])
async def test_both_strategies_give_identical_findings_under_every_rule(aws, rules):
    seeded = seed(aws, ORG)
    exception = {
        "account": seeded.account_ids["a"],
        "user": "old",
        "reason": "vendor key",
        "owner": "team@example.com",
        "expires": "2099-01-01",
        "rules": ["iam-access-key-not-rotated"],
    }
    results = []
    for strategy in ("live", "credential-report"):
        aws.inject([history(seeded)])
        cfg = config(scan={"strategy": strategy}, exceptions=[exception], rules=rules)
        results.append(await run_scan(cfg))
    live, report = (
        [(f.rule_id, f.resource_id, f.state, f.detail) for f in result.findings]
        for result in results
    )
    assert live == report
    # Every rule has its case here: the comparison is not of two empty lists.
    assert {rule for rule, *_ in live} == {
        "iam-user-multiple-active-access-keys",  # pair, twins
        "iam-access-key-not-rotated",  # old's 400-day key (excepted)
        "iam-access-key-unused",  # old's key, last used 100 days ago
        "root-access-key-present",  # a's root user
    }
    assert ("iam-access-key-not-rotated", "excepted") in {(r, str(s)) for r, _, s, _ in live}
    assert all(result.run.complete for result in results)
    if rules:  # the lowered limits reach the report strategy's choice of users to re-read
        young = {resource for rule, resource, *_ in live if rule == "iam-access-key-not-rotated"}
        assert set(seeded.key_ids[("b", "twins")]) <= young


async def test_only_what_the_rules_of_the_run_need_is_read(aws):
    seeded = seed(aws, ORG)
    a = seeded.account_ids["a"]
    # Without the root rule, a denied GetAccountSummary and a missing report change nothing.
    aws.inject(
        [
            history(seeded),
            Fault(action="GenerateCredentialReport", account=a, error="AccessDenied"),
            Fault(action="GetAccountSummary", account=a, error="AccessDenied"),
        ]
    )
    only_keys = await run_scan(config(rules={"root-access-key-present": {"enabled": False}}))
    assert only_keys.run.complete
    assert all(r.root_keys is None for r in only_keys.accounts)
    assert calls(aws, "GetAccountSummary", a) == 0
    # One active key per user, alone: no report, no last use but the flagged users'.
    aws.inject([history(seeded)])
    one_rule = await run_scan(
        config(
            rules={
                name: {"enabled": False}
                for name in (
                    "iam-access-key-not-rotated",
                    "iam-access-key-unused",
                    "root-access-key-present",
                )
            }
        )
    )
    assert one_rule.run.complete
    assert calls(aws, "GenerateCredentialReport", a) == 0
    assert calls(aws, "GetAccountSummary", a) == 0
    assert [r.id for r in one_rule.run.rules] == ["iam-user-multiple-active-access-keys"]
    # The rotation rule alone reads no last use at all: a denied GetAccessKeyLastUsed is moot.
    aws.inject(
        [history(seeded), Fault(action="GetAccessKeyLastUsed", account=a, error="AccessDenied")]
    )
    rotation = await run_scan(config().with_rules(["iam-access-key-not-rotated"]))
    assert rotation.run.complete
    assert calls(aws, "GetAccessKeyLastUsed", a) == 0
    assert calls(aws, "GenerateCredentialReport", a) == 0
