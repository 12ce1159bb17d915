"""The evidence package: write_reports, manifest.json, verify_package, and re-rendering."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from orgscan.model import ScanResult
from orgscan.reports import json as findings_json
from orgscan.reports.manifest import verify_package
from orgscan.reports.rule import load_rule, parse_rule
from orgscan.reports.writer import write_reports

from .report_fixtures import scan_result

FILES = ["findings.json", "report.html", "orgscan.sarif", "findings.csv", "manifest.json"]


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
    assert verify_package(package) == []


def test_verify_catches_one_modified_byte(package: Path) -> None:
    path = package / "findings.csv"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    assert verify_package(package) == ["findings.csv: SHA-256 does not match the manifest"]


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
    evidence = findings_json.dumps(other)
    (tmp_path / "findings.json").write_bytes(evidence)
    manifest = json.loads((tmp_path / "manifest.json").read_bytes())
    digest = hashlib.sha256(evidence).hexdigest()
    for entry in manifest["files"]:
        if entry["name"] == "findings.json":
            entry.update(size=len(evidence), sha256=digest)
    manifest["findings_sha256"] = digest
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (problem,) = verify_package(tmp_path)
    assert problem.startswith("findings.json: run_id is '20250401T000000Z-00000000'")


def test_rerendering_from_findings_json_reproduces_every_file(
    package: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    write_reports(findings_json.read(package / "findings.json"), again)
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
    rule = load_rule()
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


def test_rule_rejects_a_non_numeric_security_severity() -> None:
    data = yaml.safe_load(resources.files("orgscan").joinpath("rule.yaml").read_text())
    data["security_severity"] = "medium"
    with pytest.raises(ValueError, match="security_severity"):
        parse_rule(data)


def as_schema_1_0(result: ScanResult) -> dict:
    """The same evidence as orgscan wrote it before schema 1.1: the lifecycle was `status`."""
    data = json.loads(findings_json.dumps(result))
    data["schema_version"] = "1.0"
    for account in data["accounts"]:
        account["status"] = account.pop("state")
    return data


def test_a_schema_1_0_package_is_still_read_and_its_status_becomes_state(
    result: ScanResult, tmp_path: Path
) -> None:
    old = findings_json.from_dict(as_schema_1_0(result))
    assert [a.account.state for a in old.accounts] == [a.account.state for a in result.accounts]
    # Re-rendered, it is today's schema with the same evidence.
    write_reports(old, tmp_path)
    rebuilt = json.loads((tmp_path / "findings.json").read_text())
    assert rebuilt["schema_version"] == findings_json.SCHEMA_VERSION == "1.1"
    assert rebuilt == json.loads(findings_json.dumps(result))
    assert "status" not in rebuilt["accounts"][0]


def test_an_unknown_schema_names_both_readable_versions(result: ScanResult) -> None:
    data = as_schema_1_0(result) | {"schema_version": "2.0"}
    with pytest.raises(findings_json.EvidenceError, match=r"reads '1\.0' and '1\.1'"):
        findings_json.from_dict(data)
