"""Sharded scans merged into one package equal one unsharded scan; mismatched shards refused."""

from __future__ import annotations

import json
from collections import Counter

import yaml
from typer.testing import CliRunner

from orgscan.accounts import Shard
from orgscan.cli import ExitCode, app
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from tests.conftest import seed
from tests.format_checks import verify_package
from tests.report_fixtures import account_in, users_in

ORG = OrgSpec(
    management_users=(UserSpec("ops", (ACTIVE, ACTIVE)),),
    accounts=tuple(
        AccountSpec(
            f"acct-{i}", f"Root/Unit-{i % 2}", (UserSpec(f"u{i}", (ACTIVE,) * (1 + i % 2)),)
        )
        for i in range(9)
    ),
)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def evidence(path) -> dict:
    return json.loads((path / "findings.json").read_text())


def test_shards_merge_into_the_same_result_as_one_scan(aws, tmp_path):
    seeded = seed(aws, ORG)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"scan": {"account_rate_limit": 500}}))
    for k in (1, 2, 3):
        result = run(
            "scan", "-c", str(cfg), "-o", str(tmp_path / f"s{k}"), "-q", "--shard", f"{k}/3"
        )
        assert result.exit_code in (ExitCode.CLEAN, ExitCode.FINDINGS), result.output
    # Every account was entered by exactly one shard.
    assumed = Counter(
        account
        for (action, account), n in aws.faults.calls.items()
        if action == "AssumeRole"
        for _ in range(n)
    )
    assert set(assumed.values()) == {1}
    assert len(assumed) == 9

    merged = run("merge", *(str(tmp_path / f"s{k}") for k in (1, 2, 3)), "-o", str(tmp_path / "m"))
    assert merged.exit_code == ExitCode.FINDINGS, merged.output
    aws.inject([])
    single = run("scan", "-c", str(cfg), "-o", str(tmp_path / "single"), "-q")
    assert single.exit_code == ExitCode.FINDINGS

    m, s = evidence(tmp_path / "m"), evidence(tmp_path / "single")
    assert m["summary"] == s["summary"]
    assert m["run"]["complete"] is True and m["run"]["shard"] is None
    assert [(f["arn"], f["state"]) for f in m["findings"]] == [
        (f["arn"], f["state"]) for f in s["findings"]
    ]
    assert {u["arn"]: u["active_key_count"] for u in users_in(m)} == {
        u["arn"]: u["active_key_count"] for u in users_in(s)
    }
    assert {a["account"]["id"]: a["scan_status"] for a in m["accounts"]} == {
        a["account"]["id"]: a["scan_status"] for a in s["accounts"]
    }
    sarif = json.loads((tmp_path / "m" / "orgscan.sarif").read_text())
    assert len(sarif["runs"]) == 1
    assert len(sarif["runs"][0]["results"]) == len(s["findings"])
    assert verify_package(tmp_path / "m") == []
    assert seeded.management_account_id in {a["account"]["id"] for a in m["accounts"]}


def test_a_missing_shard_makes_the_merge_incomplete(aws, tmp_path):
    seed(aws, ORG)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}")
    for k in (1, 2):
        run("scan", "-c", str(cfg), "-o", str(tmp_path / f"s{k}"), "-q", "--shard", f"{k}/3")
    merged = run("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "-o", str(tmp_path / "m"))
    assert merged.exit_code == ExitCode.INCOMPLETE
    assert "ShardMissing: shard 3/3 was not merged" in merged.output


def test_merge_refuses_mixed_configs_organizations_and_unsharded_runs(aws, tmp_path):
    seed(aws, ORG)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("{}")
    b.write_text(yaml.safe_dump({"scan": {"max_attempts": 3}}))
    run("scan", "-c", str(a), "-o", str(tmp_path / "s1"), "-q", "--shard", "1/2")
    run("scan", "-c", str(b), "-o", str(tmp_path / "s2"), "-q", "--shard", "2/2")
    run("scan", "-c", str(a), "-o", str(tmp_path / "s2a"), "-q", "--shard", "2/2")
    run("scan", "-c", str(a), "-o", str(tmp_path / "whole"), "-q")

    mixed = run("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "-o", str(tmp_path / "m1"))
    assert mixed.exit_code == ExitCode.USAGE
    assert "the shards come from different configs" in mixed.output
    whole = run("merge", str(tmp_path / "s1"), str(tmp_path / "whole"), "-o", str(tmp_path / "m2"))
    assert whole.exit_code == ExitCode.USAGE
    assert "is not a shard" in whole.output

    other = tmp_path / "s2a" / "findings.json"
    data = json.loads(other.read_text())
    data["run"]["organization_id"] = "o-someoneelse"
    other.write_text(json.dumps(data))
    foreign = run("merge", str(tmp_path / "s1"), str(tmp_path / "s2a"), "-o", str(tmp_path / "m3"))
    assert foreign.exit_code == ExitCode.USAGE
    assert "the shards come from different organizations" in foreign.output


def test_shard_assignment_is_stable_and_spreads_accounts():
    ids = [f"{n:012d}" for n in range(100000000000, 100000000000 + 70000, 7)]  # 10,000
    owners = Counter(Shard.owner(i, 4) for i in ids)
    assert set(owners) == {1, 2, 3, 4}
    assert max(owners.values()) < 1.08 * min(owners.values())
    assert [Shard.owner(i, 4) for i in ids] == [Shard.owner(i, 4) for i in ids]
    assert str(Shard.parse("2/4")) == "2/4"
    for bad in ("0/4", "5/4", "2", "a/b"):
        try:
            Shard.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")


def test_bad_shard_option_is_a_usage_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}")
    result = run("scan", "-c", str(cfg), "-o", str(tmp_path / "o"), "--shard", "4/3")
    assert result.exit_code == ExitCode.USAGE
    assert "--shard: expected K/N with 1 <= K <= N" in result.output


def test_an_account_that_joined_between_shard_runs_is_not_taken_as_skipped(aws, tmp_path):
    import boto3

    seed(aws, ORG)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}")
    run("scan", "-c", str(cfg), "-o", str(tmp_path / "s2"), "-q", "--shard", "2/2")
    org = boto3.client("organizations")
    while True:  # a new account that shard 2 owns, created after shard 2 ran
        created = org.create_account(Email="late@example.com", AccountName="late")
        late = created["CreateAccountStatus"]["AccountId"]
        if Shard.owner(late, 2) == 2:
            break
    run("scan", "-c", str(cfg), "-o", str(tmp_path / "s1"), "-q", "--shard", "1/2")
    merged = run("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "-o", str(tmp_path / "m"))
    assert merged.exit_code == ExitCode.INCOMPLETE, merged.output
    account = account_in(evidence(tmp_path / "m"), late)
    assert account["scan_status"] == "failed"
    assert account["error"]["code"] == "NotScannedByOwningShard"


def shard_package(tmp_path, name: str, shard: str, started) -> str:
    """A shard's package from the report fixture (no moto), started at `started`."""
    from dataclasses import replace

    from orgscan.reports.writer import write_reports
    from tests.report_fixtures import scan_result

    result = scan_result(started=started)
    result.run = replace(result.run, shard=shard, id=f"run-{name}")
    write_reports(result, tmp_path / name)
    return str(tmp_path / name)


def test_merge_refuses_shards_further_apart_than_the_window(tmp_path):
    from datetime import timedelta

    from tests.report_fixtures import STARTED

    early = shard_package(tmp_path, "s1", "1/2", STARTED)
    late = shard_package(tmp_path, "s2", "2/2", STARTED + timedelta(days=8))
    refused = run("merge", early, late, "-o", str(tmp_path / "m"))
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "the shards are 8 days apart (shard 1/2 started 2025-03-14T09:30:00Z" in refused.output
    assert "more than one sweep's window of 7 days" in refused.output
    assert not (tmp_path / "m" / "findings.json").exists()

    widened = run("merge", early, late, "-o", str(tmp_path / "m"), "--window", "9")
    # The fixture's shards each record a failed account: the merge says so, whatever the
    # shards' stored flags claim.
    assert widened.exit_code == ExitCode.INCOMPLETE, widened.output
    assert evidence(tmp_path / "m")["run"]["complete"] is False
    assert verify_package(tmp_path / "m") == []
