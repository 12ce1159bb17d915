"""The evidence package: write_reports, manifest.json, verify_package, and re-rendering."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orgscan import evidence as codec
from orgscan.cli import ExitCode, app
from orgscan.model import ResourceType, ScanResult
from orgscan.reports.writer import write_reports
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, load_rules, parse_rule, rule_by_id
from tests.format_checks import verify_package
from tests.report_fixtures import (
    PARTIAL,
    SCP_DENIAL,
    UNREADABLE_ARN,
    account_in,
    scan_result,
    users_in,
)

FILES = [
    "findings.json",
    "report.html",
    "orgscan.sarif",
    "findings.csv",
    "findings.ocsf.jsonl",
    "manifest.json",
]


@pytest.fixture
def result() -> ScanResult:
    return scan_result()


@pytest.fixture
def package(result: ScanResult, tmp_path: Path) -> Path:
    write_reports(result, tmp_path)
    return tmp_path


def test_writes_every_file_in_order_manifest_last(result: ScanResult, tmp_path: Path) -> None:
    paths = write_reports(result, tmp_path / "out")
    assert [p.name for p in paths] == FILES
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES)


def test_manifest_matches_the_files(result: ScanResult, package: Path) -> None:
    manifest = json.loads((package / "manifest.json").read_bytes())
    entries = {e["name"]: e for e in manifest["files"]}
    assert sorted(entries) == sorted(set(FILES) - {"manifest.json"})
    for name, entry in entries.items():
        data = (package / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    findings = (package / "findings.json").read_bytes()
    assert manifest["findings_sha256"] == hashlib.sha256(findings).hexdigest()
    assert (manifest["run_id"], manifest["organization_id"], manifest["tool_version"]) == (
        result.run.id,
        result.run.organization_id,
        result.run.tool_version,
    )
    assert manifest["accounts"] == {"scanned": 4, "partial": 1, "failed": 1, "skipped": 1}
    assert verify_package(package) == []


def test_findings_json_records_an_unreadable_user_with_its_error_and_unknown_counts(
    package: Path,
) -> None:
    data = json.loads((package / "findings.json").read_bytes())
    assert data["schema_version"] == "2.1"
    (vendor,) = [u for u in users_in(data) if u["arn"] == UNREADABLE_ARN]
    assert vendor["error"] == {"code": SCP_DENIAL.code, "message": SCP_DENIAL.message}
    assert (vendor["key_count"], vendor["active_key_count"], vendor["access_keys"]) == (
        None,
        None,
        [],
    )
    assert all(u["error"] is None for u in users_in(data) if u["arn"] != UNREADABLE_ARN)
    account = account_in(data, PARTIAL)
    assert (account["scan_status"], account["user_count"], account["error"]) == ("partial", 2, None)
    summary = data["summary"]
    assert (summary["accounts_partial"], summary["accounts_failed"]) == (1, 1)
    assert summary["users_unreadable"] == 1
    assert data["run"]["complete"] is False
    assert all(f["arn"] != UNREADABLE_ARN for f in data["findings"])


def test_verify_catches_one_modified_byte(package: Path) -> None:
    path = package / "findings.csv"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    assert verify_package(package) == [
        "findings.csv: SHA-256 does not match the manifest",
        "findings.csv: differs from the report re-rendered from findings.json",
    ]


def test_verify_catches_a_missing_and_an_extra_file(package: Path) -> None:
    (package / "report.html").unlink()
    (package / "notes.txt").write_text("added later")
    assert verify_package(package) == ["report.html: missing", "notes.txt: not in the manifest"]


def test_verify_catches_a_changed_size(package: Path) -> None:
    with (package / "orgscan.sarif").open("ab") as handle:
        handle.write(b"\n")
    problems = verify_package(package)
    assert any(p.startswith("orgscan.sarif: size is") for p in problems)


def test_verify_without_manifest(package: Path) -> None:
    (package / "manifest.json").unlink()
    assert verify_package(package) == ["manifest.json: missing"]


def test_verify_refuses_paths_outside_the_package(package: Path) -> None:
    path = package / "manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["files"].append({"name": "../outside", "size": 0, "sha256": "0" * 64})
    path.write_text(json.dumps(manifest))
    assert verify_package(package) == [
        "manifest.json: invalid file entry {'name': '../outside', 'size': 0, 'sha256': '"
        + "0" * 64
        + "'}"
    ]


def test_verify_catches_a_swapped_evidence_file(result: ScanResult, tmp_path: Path) -> None:
    """A findings.json from another run, with the manifest's digests forged to match it."""
    write_reports(result, tmp_path)
    other = scan_result(run_id="20250401T000000Z-00000000")
    evidence = codec.encode(other)
    (tmp_path / "findings.json").write_bytes(evidence)
    manifest = json.loads((tmp_path / "manifest.json").read_bytes())
    digest = hashlib.sha256(evidence).hexdigest()
    for entry in manifest["files"]:
        if entry["name"] == "findings.json":
            entry.update(size=len(evidence), sha256=digest)
    manifest["findings_sha256"] = digest
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_package(tmp_path)
    assert problems[0].startswith("findings.json: run_id is '20250401T000000Z-00000000'")
    # The reports name the other run, so none of them re-renders from this evidence.
    assert "report.html: differs from the report re-rendered from findings.json" in problems
    assert "orgscan.sarif: differs from the report re-rendered from findings.json" in problems


def test_rerendering_from_findings_json_reproduces_every_file(
    package: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    write_reports(codec.read(package / "findings.json"), again)
    for name in FILES:
        assert (again / name).read_bytes() == (package / name).read_bytes(), name


def test_sarif_omit_changes_only_the_sarif(
    result: ScanResult, package: Path, tmp_path: Path
) -> None:
    omit = tmp_path / "omit"
    write_reports(result, omit, sarif_suppressed="omit")
    assert (omit / "orgscan.sarif").read_bytes() != (package / "orgscan.sarif").read_bytes()
    assert (omit / "findings.csv").read_bytes() == (package / "findings.csv").read_bytes()
    assert verify_package(omit) == []


def test_a_failing_renderer_writes_nothing(result: ScanResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="suppressed"):
        write_reports(result, tmp_path / "out", sarif_suppressed="everything")
    assert not (tmp_path / "out").exists()


def test_rule_metadata() -> None:
    rule = rule_by_id(MULTIPLE_ACTIVE_KEYS)
    assert rule.id == "iam-user-multiple-active-access-keys"
    assert rule.severity == "medium"
    assert float(rule.security_severity) == 5.5
    assert any("--status Inactive" in line for line in rule.remediation.cli)
    # Deactivation comes before any deletion.
    cli = " ".join(rule.remediation.cli)
    assert cli.index("update-access-key") < cli.index("delete-access-key")
    urls = " ".join(ref.url for ref in rule.references)
    for page in ("API_ListAccessKeys", "API_GetAccessKeyLastUsed", "cisecurity.org"):
        assert page in urls


def test_every_user_key_rule_deactivates_before_it_deletes() -> None:
    for rule in load_rules():
        cli = " ".join(rule.remediation.cli)
        if rule.resource is not ResourceType.ACCOUNT:
            assert cli.index("update-access-key") < cli.index("delete-access-key"), rule.id


def test_rule_rejects_a_non_numeric_security_severity() -> None:
    text = resources.files("orgscan").joinpath("rules.yaml").read_text()
    data = yaml.safe_load(text)["rules"][0]
    data["security_severity"] = "medium"
    with pytest.raises(ValueError, match="security_severity"):
        parse_rule(data)


def dump(data: dict) -> bytes:
    """JSON as orgscan writes it, without passing through the reader (which re-derives)."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


def forge(package: Path, name: str, content: bytes) -> None:
    """Replace one file and forge manifest.json to match it, as a careful tamperer would."""
    (package / name).write_bytes(content)
    path = package / "manifest.json"
    manifest = json.loads(path.read_bytes())
    digest = hashlib.sha256(content).hexdigest()
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry.update(size=len(content), sha256=digest)
    if name == "findings.json":
        manifest["findings_sha256"] = digest
    path.write_text(json.dumps(manifest, indent=2))


def test_verify_catches_a_manifest_claiming_an_incomplete_sweep_complete(package: Path) -> None:
    path = package / "manifest.json"
    manifest = json.loads(path.read_bytes())
    assert manifest["complete"] is False  # the fixture's scan has a failed account
    manifest["complete"] = True
    path.write_text(json.dumps(manifest, indent=2))
    assert verify_package(package) == ["findings.json: complete is False, the manifest says True"]


def test_verify_catches_a_manifest_with_a_claim_orgscan_never_writes(package: Path) -> None:
    path = package / "manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["sweep"] = "complete"
    path.write_text(json.dumps(manifest, indent=2))
    assert verify_package(package) == [
        "manifest.json: 'sweep' is not a field orgscan writes; it claims what the evidence "
        "does not back"
    ]


def test_verify_catches_evidence_that_contradicts_its_own_accounts(package: Path) -> None:
    data = json.loads((package / "findings.json").read_bytes())
    data["run"]["complete"] = True
    data["summary"]["accounts_failed"] = 0
    forge(package, "findings.json", dump(data))
    problems = verify_package(package)
    assert problems[:2] == [
        "findings.json: run.complete is true, but the accounts and errors it records show an "
        "incomplete sweep",
        "findings.json: summary.accounts_failed is 0; from the evidence, 1",
    ]


def test_verify_rerenders_every_report_and_names_the_one_that_differs(package: Path) -> None:
    html = (package / "report.html").read_bytes()
    assert b"INCOMPLETE" in html
    forge(package, "report.html", html.replace(b"INCOMPLETE", b"PASS"))
    assert verify_package(package) == [
        "report.html: differs from the report re-rendered from findings.json"
    ]


def test_verify_rerenders_sarif_as_it_was_written(result: ScanResult, tmp_path: Path) -> None:
    omitted, included = tmp_path / "omitted", tmp_path / "included"
    write_reports(result, omitted, sarif_suppressed="omit")
    assert verify_package(omitted) == []
    sarif = write_reports(result, included)[2].read_bytes()
    # The full SARIF, relabelled as the one without excepted findings.
    forge(omitted, "orgscan.sarif", sarif.replace(b'"included, suppressed"', b'"omitted"'))
    assert verify_package(omitted) == [
        "orgscan.sarif: differs from the report re-rendered from findings.json"
    ]


def test_report_derives_completeness_from_the_accounts_not_the_stored_flag(
    package: Path, tmp_path: Path
) -> None:
    data = json.loads((package / "findings.json").read_bytes())
    data["run"]["complete"] = True  # a failed account, and a flag that says otherwise
    (package / "findings.json").write_bytes(dump(data))
    rebuilt = tmp_path / "rebuilt"
    result = CliRunner().invoke(
        app, ["report", str(package / "findings.json"), "--output", str(rebuilt)]
    )
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    assert "run.complete is true, but the accounts and errors it records show an incomplete" in (
        result.output
    )
    assert json.loads((rebuilt / "findings.json").read_bytes())["run"]["complete"] is False
    assert 'id="scan-status" data-complete="false"' in (rebuilt / "report.html").read_text()
    sarif = json.loads((rebuilt / "orgscan.sarif").read_bytes())
    assert sarif["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_verify_always_says_whether_the_sweep_was_complete(package: Path) -> None:
    verified = CliRunner().invoke(app, ["verify", str(package)])
    assert verified.exit_code == 0, verified.output
    assert (
        "sweep:   INCOMPLETE (4 scanned, 1 skipped, of 7 accounts; "
        "777777777777: partial; 555555555555: failed)"
    ) in verified.output
    assert "555555555555: failed" in verified.output
    assert "every report re-renders from findings.json" in verified.output
    (package / "report.html").write_text("forged")
    failed = CliRunner().invoke(app, ["verify", str(package)])
    assert failed.exit_code == 1
    assert "sweep:   INCOMPLETE (" in failed.output
    assert "NOT verified" in failed.output
