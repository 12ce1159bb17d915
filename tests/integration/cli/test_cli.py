"""The CLI over a real scan: exit codes, outputs, and no secret in anything written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orgscan import evidence as codec
from orgscan.cli import ExitCode, FailOn, app, exit_code
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec
from tests.conftest import findings_schema, seed
from tests.format_checks import asff_findings, ocsf_events, oscal_document
from tests.report_fixtures import account_in, users_in

CLEAN = OrgSpec(accounts=(AccountSpec("a", "Root/Prod", (UserSpec("solo", (ACTIVE, INACTIVE)),)),))
DIRTY = OrgSpec(
    accounts=(
        AccountSpec("a", "Root/Prod", (UserSpec("pair", (ACTIVE, ACTIVE)),)),
        AccountSpec("b", "Root/Dev", (UserSpec("solo", (ACTIVE,)),)),
    )
)


def scan_cli(tmp_path: Path, *extra: str, cfg: dict | None = None, out: str = "out"):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg or {"scan": {"account_rate_limit": 500}}))
    out = tmp_path / out
    result = CliRunner().invoke(
        app, ["scan", "--config", str(path), "--output", str(out), "-q", *extra]
    )
    return result, out


def test_clean_scan_exits_0(aws, tmp_path):
    seed(aws, CLEAN)
    result, out = scan_cli(tmp_path)
    assert result.exit_code == ExitCode.CLEAN, result.output
    data = json.loads((out / "findings.json").read_text())
    assert data["run"]["complete"] is True
    assert data["summary"]["findings_open"] == 0
    (solo,) = users_in(data)
    assert (solo["user_name"], solo["key_count"], solo["active_key_count"]) == ("solo", 2, 1)


def test_open_findings_exit_1_unless_fail_on_never(aws, tmp_path):
    seed(aws, DIRTY)
    result, _ = scan_cli(tmp_path)
    assert result.exit_code == ExitCode.FINDINGS
    assert "findings: 1 open, 0 excepted" in result.output
    never, _ = scan_cli(tmp_path, "--fail-on", "never", out="never")
    assert never.exit_code == ExitCode.CLEAN


def test_incomplete_scan_exits_3_even_with_findings(aws, tmp_path):
    seeded = seed(aws, DIRTY)
    b = seeded.account_ids["b"]
    aws.inject([Fault(action="AssumeRole", account=b, error="AccessDenied")])
    result, out = scan_cli(tmp_path)
    assert result.exit_code == ExitCode.INCOMPLETE
    assert f"failed:   {b} (b): AccessDenied" in result.output
    data = json.loads((out / "findings.json").read_text())
    assert data["run"]["complete"] is False
    account = account_in(data, b)
    assert account["scan_status"] == "failed"
    assert account["error"]["code"] == "AccessDenied"
    assert data["summary"]["findings_open"] == 1


def test_strategy_override_is_recorded(aws, tmp_path):
    seed(aws, DIRTY)
    result, out = scan_cli(tmp_path, "--strategy", "credential-report")
    assert result.exit_code == ExitCode.FINDINGS
    assert json.loads((out / "findings.json").read_text())["run"]["strategy"] == "credential-report"
    bad, _ = scan_cli(tmp_path, "--strategy", "fast", out="bad")
    assert bad.exit_code == ExitCode.USAGE


def test_findings_json_has_the_documented_fields(aws, tmp_path):
    seeded = seed(aws, DIRTY)
    _, out = scan_cli(tmp_path)
    data = json.loads((out / "findings.json").read_text())
    assert data["schema_version"] == "2.1"
    assert set(data["run"]) >= {
        "id",
        "started_at",
        "finished_at",
        "tool_version",
        "caller_arn",
        "organization_id",
        "strategy",
        "complete",
    }
    assert data["run"]["started_at"].endswith("Z")
    account = account_in(data, seeded.account_ids["a"])
    assert set(account["account"]) >= {"id", "name", "ou_path", "state"}
    assert set(account) >= {
        "scan_status",
        "error",
        "user_count",
        "scanned_at",
        "root_keys",
    }
    assert account["root_keys"]["source"] == "credential-report"
    assert (account["account"]["ou_path"], account["account"]["state"], account["user_count"]) == (
        "Root/Prod",
        "ACTIVE",
        1,
    )
    pair = next(u for u in users_in(data) if u["user_name"] == "pair")
    assert pair["active_key_count"] == 2
    assert pair["access_keys"][0]["last_used_service"] is not None or all(
        k["last_used_at"] is None for k in pair["access_keys"]
    )
    # Every field is always there (2.0); every active key's last use is read, with its source.
    solo = next(u for u in users_in(data) if u["user_name"] == "solo")
    assert (
        set(solo["access_keys"][0])
        == set(pair["access_keys"][0])
        == {
            "id",
            "status",
            "created_at",
            "last_used_at",
            "last_used_service",
            "last_used_region",
            "last_used_error",
            "last_used_source",
            "last_used_as_of",
        }
    )
    assert solo["access_keys"][0]["last_used_at"] is None
    assert solo["access_keys"][0]["last_used_source"] == "credential-report"
    (finding,) = data["findings"]
    assert finding == {
        "rule_id": "iam-user-multiple-active-access-keys",
        "account_id": seeded.account_ids["a"],
        "user_name": "pair",
        "arn": f"arn:aws:iam::{seeded.account_ids['a']}:user/pair",
        "resource_type": "user",
        "resource_id": f"arn:aws:iam::{seeded.account_ids['a']}:user/pair",
        "detail": "2 active access keys",
        "active_key_count": 2,
        "access_key_id": None,
        "severity": "medium",
        "state": "open",
        "exception": None,
        "expired_exception": None,
    }
    # Every rule of the run, with its thresholds, and its coverage of each account.
    assert [r["id"] for r in data["run"]["rules"]] == [
        "iam-user-multiple-active-access-keys",
        "iam-access-key-not-rotated",
        "iam-access-key-unused",
        "root-access-key-present",
    ]
    assert {c["rule_id"]: c["coverage"] for c in account["coverage"]} == dict.fromkeys(
        [r["id"] for r in data["run"]["rules"]], "complete"
    )


def test_no_secret_reaches_any_output(aws, tmp_path):
    seeded = seed(aws, DIRTY)
    result, out = scan_cli(tmp_path, "--verbose")
    issued = aws.faults.issued_secrets
    assert seeded.secrets and issued
    secrets = [*seeded.secrets, *issued, os.environ["AWS_SECRET_ACCESS_KEY"]]
    written = [p.read_text() for p in out.iterdir()] + [result.output]
    for secret in secrets:
        for text in written:
            assert secret not in text


def test_exit_code_precedence():
    class Run:
        complete = False

    class Result:
        run = Run()

        def findings_in(self, state):
            return ["finding"]

    assert exit_code(Result(), FailOn.OPEN) is ExitCode.INCOMPLETE
    Result.run.complete = True
    assert exit_code(Result(), FailOn.OPEN) is ExitCode.FINDINGS
    assert exit_code(Result(), FailOn.NEVER) is ExitCode.CLEAN


@pytest.mark.slow
def test_demo_runs_the_real_pipeline_and_exits_3(tmp_path):
    # A subprocess: the demo starts its own moto server and rewrites the AWS environment.
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "orgscan", "demo", "-o", str(out), "-q", "--formats", "all"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == ExitCode.INCOMPLETE, done.stderr
    # Every format of the demo against its standard's model or schema.
    assert len(ocsf_events((out / "findings.ocsf.jsonl").read_bytes())) == 11
    assert len(asff_findings((out / "findings.asff.json").read_bytes())) == 11
    oscal = oscal_document((out / "assessment-results.oscal.json").read_bytes())
    run = oscal["assessment-results"]["results"][0]
    assert run["risks"]  # the partial/failed accounts
    data = json.loads((out / "findings.json").read_text())
    assert {k: v for k, v in data["summary"].items() if k != "rules"} == {
        "accounts": 12,
        "accounts_scanned": 9,
        "accounts_partial": 1,
        "accounts_failed": 1,
        "accounts_skipped": 1,
        "users": 18,
        "users_unreadable": 1,
        "findings": 11,
        "findings_open": 9,
        "findings_excepted": 2,
    }
    # A case of each rule, from key dates and a root key moto cannot hold (the fault layer's).
    by_rule = {(f["rule_id"], f["user_name"]): f["state"] for f in data["findings"] if f["rule_id"]}
    assert {k for k, v in by_rule.items() if k[0] != "iam-user-multiple-active-access-keys"} == {
        ("iam-access-key-not-rotated", "deploy-bot"),
        ("iam-access-key-not-rotated", "cdn-purger"),
        ("iam-access-key-not-rotated", "siem-forwarder"),
        ("iam-access-key-unused", "dave"),
        ("iam-access-key-unused", "analyst-bob"),
        ("root-access-key-present", "<root_account>"),
    }
    assert by_rule[("iam-access-key-not-rotated", "siem-forwarder")] == "excepted"
    accounts = {a["account"]["name"]: a["account"] | a for a in data["accounts"]}
    assert accounts["dev-beta"]["error"]["code"] == "AccessDenied"
    assert accounts["shared-network"]["scan_status"] == "partial"
    assert accounts["sandbox-old"]["scan_status"] == "skipped"
    # Organizations answers the demo as today's AWS does: `State` only, in every state.
    assert (accounts["sandbox-old"]["state"], accounts["sandbox-old"]["scan_status"]) == (
        "CLOSED",
        "skipped",
    )
    assert (accounts["sandbox-frank"]["state"], accounts["sandbox-frank"]["scan_status"]) == (
        "PENDING_CLOSURE",
        "scanned",
    )
    findings = {
        f["user_name"]: f
        for f in data["findings"]
        if f["rule_id"] == "iam-user-multiple-active-access-keys"
    }
    assert findings["ci-deployer"]["state"] == "excepted"
    assert findings["etl-runner"]["expired_exception"]["ticket"] == "SEC-1187"
    users = {u["user_name"]: u for u in users_in(data)}
    assert users["alice"]["path"] == "/engineering/"
    # Written in another process: valid against the published schema, and read back exactly.
    findings_schema().validate(data)
    stored = (out / "findings.json").read_bytes()
    assert codec.encode(codec.read(out / "findings.json")) == stored
    assert (users["backup-agent"]["key_count"], users["backup-agent"]["active_key_count"]) == (2, 0)
    assert "INCOMPLETE" in done.stdout


def test_report_rebuilds_the_package_from_findings_json_alone(aws, tmp_path):
    seeded = seed(aws, DIRTY)
    aws.inject([Fault(action="AssumeRole", account=seeded.account_ids["b"], error="AccessDenied")])
    scanned, out = scan_cli(tmp_path)
    assert scanned.exit_code == ExitCode.INCOMPLETE
    aws.inject([])
    rebuilt = tmp_path / "rebuilt"
    result = CliRunner().invoke(app, ["report", str(out / "findings.json"), "-o", str(rebuilt)])
    assert result.exit_code == ExitCode.INCOMPLETE  # it exits as the scan did
    assert aws.faults.calls == {}  # and reads nothing from AWS
    assert {p.name for p in rebuilt.iterdir()} == {p.name for p in out.iterdir()}
    for name in (
        "findings.json",
        "findings.csv",
        "orgscan.sarif",
        "report.html",
        "findings.ocsf.jsonl",
    ):
        assert (rebuilt / name).read_bytes() == (out / name).read_bytes(), name


def test_verify_passes_a_package_and_catches_one_changed_byte(aws, tmp_path):
    seed(aws, DIRTY)
    _, out = scan_cli(tmp_path)
    ok = CliRunner().invoke(app, ["verify", str(out)])
    assert ok.exit_code == 0
    assert "verified" in ok.output
    sarif = out / "orgscan.sarif"
    data = bytearray(sarif.read_bytes())
    data[100] ^= 1
    sarif.write_bytes(bytes(data))
    bad = CliRunner().invoke(app, ["verify", str(out)])
    assert bad.exit_code == 1
    assert "orgscan.sarif: SHA-256 does not match the manifest" in bad.output


def test_sarif_suppressed_omit_drops_excepted_results(aws, tmp_path):
    seeded = seed(aws, DIRTY)
    exception = {
        "account": seeded.account_ids["a"],
        "user": "pair",
        "reason": "rotation",
        "owner": "team@example.com",
        "expires": "2099-01-01",
    }
    cfg = {"exceptions": [exception]}
    kept, out = scan_cli(tmp_path, cfg=cfg)
    assert kept.exit_code == ExitCode.CLEAN  # the only finding is excepted
    results = json.loads((out / "orgscan.sarif").read_text())["runs"][0]["results"]
    assert [r["suppressions"][0]["status"] for r in results] == ["accepted"]
    omitted, out2 = scan_cli(tmp_path, "--sarif-suppressed", "omit", cfg=cfg, out="omit")
    assert omitted.exit_code == ExitCode.CLEAN
    assert json.loads((out2 / "orgscan.sarif").read_text())["runs"][0]["results"] == []


@pytest.mark.slow
def test_demo_serve_keeps_the_organization_up_for_other_commands(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "orgscan", "demo", "--output", "demo", "--serve", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip().startswith("export "):
                break
        env = dict(item.split("=", 1) for item in line.split()[1:])
        env["PATH"] = os.environ["PATH"]
        # The same orgscan as the demo process, where PYTHONPATH chooses a source tree.
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
        plan = subprocess.run(
            [
                sys.executable,
                "-m",
                "orgscan",
                "remediate",
                "plan",
                "demo/findings.json",
                "--output",
                "plan.json",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert plan.returncode == 0, plan.stderr
        applied = subprocess.run(
            [
                sys.executable,
                "-m",
                "orgscan",
                "remediate",
                "apply",
                "plan.json",
                "--config",
                "demo-config.yaml",
                "--yes",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert applied.returncode == 0, applied.stdout + applied.stderr
        # Four users' extra keys (one active key) and two unused keys (dave's, analyst-bob's).
        assert "6 deactivated, 0 skipped, 0 failed" in applied.stdout
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[0]
    assert process.returncode == ExitCode.INCOMPLETE
    assert "the demo organization stopped." in rest
