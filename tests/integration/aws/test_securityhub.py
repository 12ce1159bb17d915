"""orgscan publish-securityhub against moto's Security Hub, behind the fault layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto.securityhub.models import securityhub_backends
from typer.testing import CliRunner

from orgscan.aws.securityhub import MAX_FINDINGS, batches, for_region
from orgscan.cli import ExitCode, app
from orgscan.delta import compare
from orgscan.demo.faults import Fault
from orgscan.demo.server import MotoServer
from orgscan.reports.asff import AsffRenderer
from orgscan.reports.writer import write_reports
from tests.format_checks import asff_findings
from tests.report_fixtures import DEV, PROD, SANDBOX, VALID_EXCEPTION, round_trip, scan_result
from tests.unit.reports.test_ocsf import thousand_users

REGION = "eu-west-1"


def _package(tmp_path: Path, **fixture: Any) -> Path:
    package = tmp_path / "package"
    write_reports(scan_result(**fixture), package, formats=("asff",))
    return package


def _config(tmp_path: Path, **securityhub: str) -> Path:
    path = tmp_path / "c.yaml"
    sections = {"scan": {"management_rate_limit": 1000, "account_rate_limit": 1000}}
    path.write_text(yaml.safe_dump({**sections, "securityhub": securityhub}))
    return path


def _imported(account: str) -> list[dict]:
    return [f.as_dict() for f in securityhub_backends[account][REGION].findings]


def test_refuses_without_the_import_role(aws: MotoServer, tmp_path: Path) -> None:
    done = CliRunner().invoke(
        app, ["publish-securityhub", str(_package(tmp_path)), "-c", str(_config(tmp_path))]
    )
    assert done.exit_code == ExitCode.USAGE
    assert "securityhub.role_name: not set" in done.output
    assert aws.faults.calls == {}


def test_imports_each_account_in_its_own_role_and_region(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # Security Hub is not enabled in the sandbox account: AWS refuses, moto would import.
    aws.inject(
        [Fault(action="BatchImportFindings", account=SANDBOX, error="InvalidAccessException")]
    )
    cfg = _config(tmp_path, role_name="OrgScanSecurityHubImport")
    done = CliRunner().invoke(app, ["publish-securityhub", str(_package(tmp_path)), "-c", str(cfg)])
    assert done.exit_code == ExitCode.INCOMPLETE, done.output
    assert f"{SANDBOX}: 0 imported, 0 failed, 1 skipped ({REGION})" in done.output
    assert "Security Hub not enabled" in done.output
    assert f"{PROD}: 1 imported, 0 failed, 0 skipped" in done.output
    assert f"{DEV}: 2 imported, 0 failed, 0 skipped" in done.output
    assert {arn.split(":")[4] for arn in aws.faults.assumed_roles} == {PROD, DEV, SANDBOX}
    assert {arn.rsplit("/", 1)[1] for arn in aws.faults.assumed_roles} == {
        "OrgScanSecurityHubImport"
    }
    # Imported in the finding's account, with ProductArn and Region naming where it went.
    found = _imported(DEV)
    assert len(found) == 2
    assert {f["ProductArn"] for f in found} == {
        f"arn:aws:securityhub:{REGION}:{DEV}:product/{DEV}/default"
    }
    assert {f["Region"] for f in found} == {REGION}
    assert not aws.faults.caller_calls.get("BatchImportFindings")


def test_batches_stay_within_100_findings_and_6_mb() -> None:
    findings = asff_findings(AsffRenderer().render(thousand_users()))
    split = batches(findings)
    assert [len(b) for b in split] == [100, 100, 100, len(findings) - 300]
    assert [f for batch in split for f in batch] == findings
    big = [{**findings[0], "Description": "x" * 1000, "Id": str(i)} for i in range(MAX_FINDINGS)]
    padded = [{**f, "ProductFields": {"pad": "y" * 100_000}} for f in big]
    for batch in batches(padded):
        assert len(json.dumps({"Findings": batch}).encode()) <= 6 * 1024 * 1024
    assert len(batches(padded)) == 2
    moved = for_region(findings[0], "aws", "ap-south-1")
    assert moved["ProductArn"].startswith("arn:aws:securityhub:ap-south-1:")
    assert {r["Region"] for r in moved["Resources"]} == {"ap-south-1"}


def _workflows(updates: list[tuple[str, dict]], account: str) -> dict[str, tuple[str, str]]:
    """What the BatchUpdateFindings calls into `account` set: user ARN tail -> (status, note)."""
    held = {f["Id"]: f["Resources"][0]["Id"] for f in _imported(account)}
    return {
        held[ident["Id"]].rsplit("/", 1)[1]: (params["Workflow"]["Status"], params["Note"]["Text"])
        for acct, params in updates
        if acct == account
        for ident in params["FindingIdentifiers"]
    }


def test_sets_the_workflow_on_every_import_as_exceptions_come_and_go(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchImportFindings no longer changes Workflow or Note once a finding exists, and a
    SUPPRESSED finding is no longer updated: each publish sets them with BatchUpdateFindings."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    cfg = _config(tmp_path, role_name="OrgScanSecurityHubImport")
    runs = {"open": (), "excepted": (VALID_EXCEPTION,), "expired": ()}
    seen = {}
    for name, exceptions in runs.items():
        aws.faults.finding_updates.clear()
        package = _package(tmp_path / name, exceptions=exceptions)
        done = CliRunner().invoke(app, ["publish-securityhub", str(package), "-c", str(cfg)])
        assert done.exit_code == ExitCode.CLEAN, done.output
        seen[name] = _workflows(aws.faults.finding_updates, DEV)
        for _, params in aws.faults.finding_updates:
            assert len(params["FindingIdentifiers"]) <= 100
            assert params["Note"]["UpdatedBy"] == "orgscan"
        assert {
            ident["ProductArn"]
            for _, p in aws.faults.finding_updates
            for ident in p["FindingIdentifiers"]
        } >= {f"arn:aws:securityhub:{REGION}:{DEV}:product/{DEV}/default"}
    assert seen["open"]["ci-runner"][0] == "NEW"
    status, note = seen["excepted"]["ci-runner"]
    assert status == "SUPPRESSED"
    assert "platform-team@example.com" in note and "SEC-1001" in note
    assert "2099-12-31" in note
    assert seen["excepted"]["carol"][0] == "NEW"
    # The exception lapsed: the finding is open again and its note no longer says excepted.
    assert seen["expired"]["ci-runner"] == ("NEW", "Open: no approved exception applies.")
    held = {f["Resources"][0]["Id"].rsplit("/", 1)[1]: f for f in _imported(DEV)}
    assert held["ci-runner"]["Workflow"]["Status"] == "NEW"
    assert held["ci-runner"]["FindingProviderFields"]["Types"] == held["ci-runner"]["Types"]


def _publish(tmp_path: Path, package: Path) -> Any:
    cfg = _config(tmp_path, role_name="OrgScanSecurityHubImport")
    return CliRunner().invoke(app, ["publish-securityhub", str(package), "-c", str(cfg)])


def test_refuses_a_package_that_does_not_verify(aws: MotoServer, tmp_path: Path) -> None:
    package = _package(tmp_path)
    path = package / "findings.asff.json"
    # Someone suppressed a finding by hand: the file no longer says what findings.json says.
    path.write_text(path.read_text().replace('"NEW"', '"SUPPRESSED"', 1))
    done = _publish(tmp_path, package)
    assert done.exit_code == ExitCode.USAGE, done.output
    assert "refusing to publish a package that does not verify" in done.output
    assert "findings.asff.json" in done.output
    assert aws.faults.calls == {}


def test_a_finding_without_an_account_is_a_usage_error(tmp_path: Path) -> None:
    from orgscan.securityhub_publish import PublishError, read_findings

    (tmp_path / "findings.asff.json").write_text(json.dumps([{"Id": "x"}]))
    with pytest.raises(PublishError, match="finding 0 has no AwsAccountId"):
        read_findings(tmp_path)


def test_warns_that_without_a_baseline_nothing_is_closed(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    done = _publish(tmp_path, _package(tmp_path))
    assert done.exit_code == ExitCode.CLEAN, done.output
    assert "warning: the package has no delta" in done.output
    baseline = scan_result()
    current = scan_result(run_id="20250414T093000Z-1a2b3c4d")
    current.delta = compare(baseline, current)
    package = tmp_path / "with-delta"
    write_reports(round_trip(current), package, formats=("asff",))
    done = _publish(tmp_path, package)
    assert done.exit_code == ExitCode.CLEAN, done.output
    assert "warning" not in done.output


def test_not_enabled_per_finding_is_skipped(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS may answer "not enabled" per finding, in FailedFindings with InvalidAccess.
    monkeypatch.setenv("AWS_REGION", REGION)
    aws.inject(
        [
            Fault(
                action="BatchImportFindings",
                account=DEV,
                failed_findings="InvalidAccess",
                message="Account is not subscribed to AWS Security Hub",
            )
        ]
    )
    done = _publish(tmp_path, _package(tmp_path))
    assert done.exit_code == ExitCode.INCOMPLETE, done.output
    assert f"{DEV}: 0 imported, 0 failed, 2 skipped ({REGION})" in done.output
    assert "Security Hub not enabled" in done.output
    assert f"{PROD}: 1 imported, 0 failed, 0 skipped" in done.output
    assert not [a for a, _ in aws.faults.finding_updates if a == DEV]


def test_a_throttled_import_is_retried(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    aws.inject(
        [Fault(action="BatchImportFindings", account=DEV, error="ThrottlingException", first=2)]
    )
    done = _publish(tmp_path, _package(tmp_path))
    assert done.exit_code == ExitCode.CLEAN, done.output
    assert f"{DEV}: 2 imported, 0 failed, 0 skipped" in done.output
    assert aws.faults.calls[("BatchImportFindings", DEV)] == 3
    assert len(_imported(DEV)) == 2


def test_no_credentials_is_a_usage_error(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    done = _publish(tmp_path, _package(tmp_path))
    assert done.exit_code == ExitCode.USAGE, done.output
    assert "no AWS credentials found" in done.output
    assert "Traceback" not in done.output
