"""Old evidence packages through the CLI: report, verify, diff, merge and --resume read them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgscan import evidence as codec
from orgscan.cli import ExitCode, app
from orgscan.reports.manifest import check_package
from orgscan.reports.writer import write_reports
from tests.report_fixtures import PARTIAL
from tests.unit.test_evidence import FIXTURES, OLD_PACKAGES, every_field


@pytest.mark.parametrize("version", OLD_PACKAGES)
def test_orgscan_report_rebuilds_an_old_package_in_todays_schema(
    version: str, tmp_path: Path
) -> None:
    rebuilt = tmp_path / "rebuilt"
    done = CliRunner().invoke(
        app, ["report", str(FIXTURES / version / "findings.json"), "-o", str(rebuilt)]
    )
    assert done.exit_code == ExitCode.INCOMPLETE, done.output
    data = json.loads((rebuilt / "findings.json").read_bytes())
    assert data["schema_version"] == codec.SCHEMA_VERSION
    assert check_package(rebuilt).problems == []
    # And today's package rebuilds byte for byte.
    again = tmp_path / "again"
    done = CliRunner().invoke(app, ["report", str(rebuilt / "findings.json"), "-o", str(again)])
    assert done.exit_code == ExitCode.INCOMPLETE, done.output
    for name in ("findings.json", "report.html", "orgscan.sarif", "findings.csv"):
        assert (again / name).read_bytes() == (rebuilt / name).read_bytes(), name


def test_orgscan_report_rebuilds_every_field_byte_for_byte(tmp_path: Path) -> None:
    write_reports(every_field(), tmp_path / "first")
    done = CliRunner().invoke(
        app, ["report", str(tmp_path / "first" / "findings.json"), "-o", str(tmp_path / "again")]
    )
    assert done.exit_code == ExitCode.INCOMPLETE, done.output
    for path in (tmp_path / "first").iterdir():
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("version", OLD_PACKAGES)
def test_an_old_package_verifies(version: str, tmp_path: Path) -> None:
    package = tmp_path / version
    shutil.copytree(FIXTURES / version, package)
    check = check_package(package)
    assert check.problems == []
    label = version[1:].replace("_", ".")
    assert check.notes and all(f"has schema {label}, and this orgscan" in n for n in check.notes)
    # What the old evidence says of itself is still checked.
    data = json.loads((package / "findings.json").read_bytes())
    data["summary"]["users"] = 99
    (package / "findings.json").write_text(json.dumps(data))
    users = len(check.evidence.users) if check.evidence else 0
    assert (
        f"findings.json: summary.users is 99; from the evidence, {users}"
        in check_package(package).problems
    )


def test_old_packages_diff_against_each_other() -> None:
    done = CliRunner().invoke(
        app,
        [
            "diff",
            str(FIXTURES / "v1_0" / "findings.json"),
            str(FIXTURES / "v1_1" / "findings.json"),
            "--json",
        ],
    )
    assert done.exit_code == 0, done.output
    delta = json.loads(done.output)
    assert delta["counts"] == {"new": 0, "unchanged": 4, "resolved": 0, "unverified": 0}
    assert delta["accounts_added"] == [PARTIAL]


@pytest.mark.parametrize("version", OLD_PACKAGES)
def test_merge_and_resume_read_an_old_package(version: str, aws, tmp_path: Path) -> None:
    """Both get past the evidence to their own checks: an unsharded run is not a shard, and
    the package's run used another configuration (a 1.0 run's digest cannot match any)."""
    merged = CliRunner().invoke(
        app, ["merge", str(FIXTURES / version), str(FIXTURES / version), "-o", str(tmp_path / "m")]
    )
    assert merged.exit_code == ExitCode.USAGE
    assert "shard" in merged.output and "schema" not in merged.output
    package = tmp_path / "resume"
    shutil.copytree(FIXTURES / version, package)
    config = tmp_path / "c.yaml"
    config.write_text("scan: {}\n")
    resumed = CliRunner().invoke(app, ["scan", "-c", str(config), "--resume", str(package), "-q"])
    assert resumed.exit_code == ExitCode.USAGE
    refusal = "made by an older orgscan" if version == "v1_0" else "used a different configuration"
    assert refusal in " ".join(resumed.output.split())
