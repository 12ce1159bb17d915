"""Stopping, resuming, hanging endpoints and the output directory: nothing lost, nothing mixed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orgscan.cli import app
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import ScanStatus, iso
from orgscan.progress import Progress
from orgscan.scanner import ScanOptions, scan
from tests.conftest import config, run_scan, seed

SIX = OrgSpec(
    accounts=tuple(
        AccountSpec(f"acct-{i}", "Root/Work", (UserSpec(f"user-{i}", (ACTIVE, ACTIVE)),))
        for i in range(6)
    )
)
CONFIG = {
    "organization": {"management_account": "skip"},
    "scan": {"max_accounts_in_flight": 2, "account_rate_limit": 500},
}


def write_config(tmp_path: Path, data: dict = CONFIG) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_scan(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orgscan",
            "scan",
            "--config",
            str(cfg),
            "--output",
            str(out),
            "--quiet",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def wait_for_first_account(aws, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(action == "ListUsers" for action, _ in aws.faults.calls):
        assert time.monotonic() < deadline, "the scan never reached an account"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_writes_a_partial_package_and_resume_completes_it(aws, tmp_path, signum, code):
    seeded = seed(aws, SIX)
    # Slow accounts, two at a time: the signal lands with accounts in flight and queued.
    aws.inject([Fault(action="ListAccessKeys", delay=1.0)])
    cfg, out = write_config(tmp_path), tmp_path / "out"
    process = start_scan(cfg, out)
    wait_for_first_account(aws)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr

    data = json.loads((out / "findings.json").read_text())
    assert data["run"]["complete"] is False
    assert data["run"]["interrupted"] == signal.Signals(signum).name
    members = [a["account"] | a for a in data["accounts"]]
    members = [a for a in members if a["id"] != seeded.management_account_id]
    assert len(members) == 6  # every listed account is in the evidence, finished or not
    interrupted = [a for a in members if a["error"] and a["error"]["code"] == "Interrupted"]
    assert interrupted, "the signal should have caught accounts unfinished"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == data["run"]["id"]
    done_before = {a["id"] for a in members if a["scan_status"] == "scanned"}

    aws.inject([])
    resumed = CliRunner().invoke(app, ["scan", "--config", str(cfg), "--resume", str(out), "-q"])
    assert resumed.exit_code == 1, resumed.output  # complete now, with six open findings
    final = json.loads((out / "findings.json").read_text())
    assert final["run"]["complete"] is True
    assert final["run"]["resumed_from"] == data["run"]["id"]
    assert final["run"]["started_at"] == data["run"]["started_at"]
    assert {a["account"]["id"] for a in final["accounts"] if a["scan_status"] == "scanned"} == {
        a["id"] for a in members
    }
    assert len(final["findings"]) == 6
    # Accounts finished before the signal were not scanned again.
    rescanned = {account for action, account in aws.faults.calls if action == "ListUsers"}
    assert not rescanned & done_before
    assert rescanned == {a["id"] for a in interrupted}


def test_resume_refuses_a_different_config(aws, tmp_path):
    seed(aws, SIX)
    out = tmp_path / "out"
    first = CliRunner().invoke(
        app, ["scan", "-c", str(write_config(tmp_path)), "-o", str(out), "-q"]
    )
    assert first.exit_code == 1
    other = write_config(tmp_path, {**CONFIG, "scan": {**CONFIG["scan"], "max_attempts": 3}})
    result = CliRunner().invoke(app, ["scan", "-c", str(other), "--resume", str(out), "-q"])
    assert result.exit_code == 2
    assert "used a different configuration" in result.output


def test_scan_rules_narrows_the_run_and_a_resume_must_name_the_same_rules(aws, tmp_path):
    seed(aws, SIX)
    out, cfg = tmp_path / "out", str(write_config(tmp_path))
    two = "iam-user-multiple-active-access-keys,root-access-key-present"
    first = CliRunner().invoke(app, ["scan", "-c", cfg, "-o", str(out), "-q", "--rules", two])
    assert first.exit_code == 1, first.output
    data = json.loads((out / "findings.json").read_text())
    assert [r["id"] for r in data["run"]["rules"]] == two.split(",")
    assert {f["rule_id"] for f in data["findings"]} <= set(two.split(","))
    everything = CliRunner().invoke(app, ["scan", "-c", cfg, "--resume", str(out), "-q"])
    assert everything.exit_code == 2
    assert f"evaluated only the rules {two}; resume it with --rules {two}" in " ".join(
        everything.output.split()
    )
    same = CliRunner().invoke(app, ["scan", "-c", cfg, "--resume", str(out), "-q", "--rules", two])
    assert same.exit_code == 1, same.output
    unknown = CliRunner().invoke(
        app, ["scan", "-c", cfg, "-o", str(tmp_path / "x"), "--rules", "nope"]
    )
    assert unknown.exit_code == 2
    assert "--rules: unknown rule 'nope'" in unknown.output


def test_resume_of_a_schema_1_0_run_says_it_was_made_by_an_older_orgscan(aws, tmp_path):
    """1.0's config digest covered settings whose meaning changed (include_suspended, the
    management_account default): no config file matches it, so 'the same config' cannot help."""
    seed(aws, SIX)
    out = tmp_path / "out"
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "evidence" / "v1_0", out)
    data = json.loads((out / "findings.json").read_text())
    cfg = write_config(tmp_path)
    aws.inject([])

    result = CliRunner().invoke(app, ["scan", "-c", str(cfg), "--resume", str(out), "-q"])
    assert result.exit_code == 2
    assert (
        f"--resume: the previous run {data['run']['id']} was made by an older orgscan "
        "(findings.json schema 1.0) and cannot be continued; scan anew with --output"
    ) in " ".join(result.output.split())
    assert "same config" not in result.output
    assert aws.faults.calls == {}  # refused before any AWS call


async def test_interrupting_stops_new_accounts_and_cancels_those_in_flight(aws):
    seed(aws, SIX)
    aws.inject([Fault(action="ListUsers", delay=0.3)])
    stop = asyncio.Event()

    class StopAfterFirst(Progress):
        def finished(self, result):
            super().finished(result)
            stop.set()

    result = await scan(
        config(**CONFIG), progress=StopAfterFirst(), options=ScanOptions(), stop=stop
    )
    members = [r for r in result.accounts if r.scan_status is not ScanStatus.SKIPPED]
    assert len(members) == 6  # nothing lost: every listed account is in the result
    scanned = sum(r.scan_status is ScanStatus.SCANNED for r in members)
    messages = Counter(r.error.message for r in members if r.interrupted)
    # Two in flight: the first to finish stopped the run; the other was cancelled, unless it
    # finished in the same instant (finished work is kept). The four queued never started.
    assert messages["the run was interrupted before this account was scanned"] == 4
    assert scanned + messages["the run was interrupted while this account was scanned"] == 2
    assert scanned >= 1
    assert scanned + sum(messages.values()) == 6  # no other outcome
    assert not result.run.complete


async def test_a_hanging_endpoint_fails_its_account_not_the_run(aws):
    seeded = seed(aws, SIX)
    slow = seeded.account_ids["acct-2"]
    aws.inject([Fault(action="ListUsers", account=slow, delay=2.0)])
    result = await run_scan(
        config(**{**CONFIG, "scan": {**CONFIG["scan"], "call_timeout": 0.3, "max_attempts": 2}})
    )
    by_id = {r.account.id: r for r in result.accounts}
    assert by_id[slow].scan_status is ScanStatus.FAILED
    assert by_id[slow].error.code == "ReadTimeoutError"
    assert sum(r.scan_status is ScanStatus.SCANNED for r in result.accounts) == 5
    assert not result.run.complete


def test_output_holding_an_older_run_is_refused_without_force(aws, tmp_path):
    seed(aws, SIX)
    cfg, out = write_config(tmp_path), tmp_path / "out"
    assert CliRunner().invoke(app, ["scan", "-c", str(cfg), "-o", str(out), "-q"]).exit_code == 1
    first_run = json.loads((out / "findings.json").read_text())["run"]["id"]
    (out / "notes.txt").write_text("the auditor's own file")

    refused = CliRunner().invoke(app, ["scan", "-c", str(cfg), "-o", str(out), "-q"])
    assert refused.exit_code == 2
    assert "already holds a run" in refused.output
    assert json.loads((out / "findings.json").read_text())["run"]["id"] == first_run

    forced = CliRunner().invoke(app, ["scan", "-c", str(cfg), "-o", str(out), "-q", "--force"])
    assert forced.exit_code == 1
    assert json.loads((out / "findings.json").read_text())["run"]["id"] != first_run
    assert (out / "notes.txt").read_text() == "the auditor's own file"


def test_unwritable_output_fails_before_any_aws_call(aws, tmp_path):
    seed(aws, SIX)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = CliRunner().invoke(
        app, ["scan", "-c", str(write_config(tmp_path)), "-o", str(blocker / "out"), "-q"]
    )
    assert result.exit_code == 2
    assert f"cannot write to {blocker / 'out'}" in result.output
    assert aws.faults.calls == {}


def test_resume_refuses_a_different_shard_and_rechecks_skips(aws, tmp_path):
    seed(aws, SIX)
    cfg, out = write_config(tmp_path), tmp_path / "out"
    first = CliRunner().invoke(
        app, ["scan", "-c", str(cfg), "-o", str(out), "-q", "--shard", "1/2"]
    )
    assert first.exit_code in (0, 1), first.output
    unsharded = CliRunner().invoke(app, ["scan", "-c", str(cfg), "--resume", str(out), "-q"])
    assert unsharded.exit_code == 2
    assert "resume it with the same --shard (got none)" in unsharded.output
    same = CliRunner().invoke(
        app, ["scan", "-c", str(cfg), "--resume", str(out), "-q", "--shard", "1/2"]
    )
    assert same.exit_code in (0, 1), same.output
    data = json.loads((out / "findings.json").read_text())
    assert data["run"]["shard"] == "1/2"
    skipped = [a for a in data["accounts"] if a["scan_status"] == "skipped"]
    assert skipped and all(
        "shard" in a["skip_reason"] or "management" in a["skip_reason"] for a in skipped
    )


def rewrite(path: Path, change) -> dict:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))
    return data


def test_resume_judges_each_accounts_exceptions_on_the_day_it_was_scanned(aws, tmp_path):
    seeded = seed(aws, SIX)
    kept, late = seeded.account_ids["acct-0"], seeded.account_ids["acct-1"]
    lapsed = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    approval = {"reason": "rotation", "owner": "ops@example.com", "expires": lapsed}
    cfg = write_config(
        tmp_path,
        {
            **CONFIG,
            "exceptions": [
                {"account": kept, "user": "user-0", **approval},
                {"account": late, "user": "user-1", **approval},
            ],
        },
    )
    out = tmp_path / "out"
    aws.inject([Fault(action="AssumeRole", account=late, error="AccessDenied")])
    first = CliRunner().invoke(app, ["scan", "-c", str(cfg), "-o", str(out), "-q"])
    assert first.exit_code == 3, first.output

    # As if that run had started ten days ago, when both approvals were still valid, and a
    # signal had stopped it before acct-1.
    ten_days_ago = iso(datetime.now(UTC) - timedelta(days=10))

    def ten_days_back(data: dict) -> None:
        data["run"]["started_at"] = ten_days_ago
        for account in data["accounts"]:
            if account["account"]["id"] == late:
                account["scan_status"] = "failed"
                account["error"] = {"code": "Interrupted", "message": "the run was interrupted"}
            elif account.get("scanned_at"):
                account["scanned_at"] = ten_days_ago

    rewrite(out / "findings.json", ten_days_back)
    aws.inject([])
    resumed = CliRunner().invoke(app, ["scan", "-c", str(cfg), "--resume", str(out), "-q"])
    assert resumed.exit_code == 1, resumed.output
    final = json.loads((out / "findings.json").read_text())
    states = {f["account_id"]: f for f in final["findings"]}
    # acct-0 was scanned ten days ago, when its approval held; acct-1 only today, after its
    # approval lapsed.
    assert states[kept]["state"] == "excepted"
    assert states[late]["state"] == "open"
    assert states[late]["expired_exception"]["expires"] == lapsed
    scanned_at = {a["account"]["id"]: a["scanned_at"] for a in final["accounts"]}
    assert scanned_at[late][:10] == datetime.now(UTC).date().isoformat()
    assert scanned_at[kept] == ten_days_ago


def test_resume_retry_failed_rescans_failed_accounts_and_keeps_scanned_ones(aws, tmp_path):
    seeded = seed(aws, SIX)
    flaky = seeded.account_ids["acct-2"]
    cfg = write_config(tmp_path, {**CONFIG, "scan": {**CONFIG["scan"], "max_attempts": 2}})
    out = tmp_path / "out"
    # A throttle that outlasts the retries: transient, but the account failed this run.
    aws.inject([Fault(action="AssumeRole", account=flaky, error="Throttling")])
    first = CliRunner().invoke(app, ["scan", "-c", str(cfg), "-o", str(out), "-q"])
    assert first.exit_code == 3, first.output

    aws.inject([])
    plain = CliRunner().invoke(app, ["scan", "-c", str(cfg), "--resume", str(out), "-q"])
    assert plain.exit_code == 3  # a plain resume keeps the failure as it was
    assert not any(action == "ListUsers" for action, _ in aws.faults.calls)

    alone = CliRunner().invoke(
        app, ["scan", "-c", str(cfg), "-o", str(tmp_path / "x"), "--retry-failed"]
    )
    assert alone.exit_code == 2
    assert "--retry-failed needs --resume" in alone.output

    aws.inject([])
    retried = CliRunner().invoke(
        app, ["scan", "-c", str(cfg), "--resume", str(out), "--retry-failed", "-q"]
    )
    assert retried.exit_code == 1, retried.output  # complete now, six open findings
    final = json.loads((out / "findings.json").read_text())
    assert final["run"]["complete"] is True
    assert len(final["findings"]) == 6
    assert {account for action, account in aws.faults.calls if action == "ListUsers"} == {flaky}
