"""--formats and output.formats: which files a package holds, rebuilt and verified."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgscan.cli import ExitCode, app
from orgscan.config import ConfigError, parse_config
from orgscan.formats import DEFAULT_FORMATS, FORMATS
from orgscan.reports.writer import write_reports
from tests.format_checks import verify_package
from tests.integration.cli.test_package import forge
from tests.report_fixtures import scan_result

ALWAYS = {"findings.json", "manifest.json"}


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_all_writes_every_format_and_verify_covers_each(tmp_path: Path) -> None:
    write_reports(scan_result(), tmp_path, formats=FORMATS)
    assert {"findings.ocsf.jsonl", "report.html", "findings.csv"} <= names(tmp_path)
    assert verify_package(tmp_path) == []
    # A careful tamperer fixes the manifest too: the re-rendering still catches the change.
    ocsf = tmp_path / "findings.ocsf.jsonl"
    forge(tmp_path, ocsf.name, ocsf.read_bytes().replace(b'"status_id":1', b'"status_id":4', 1))
    assert verify_package(tmp_path) == [
        "findings.ocsf.jsonl: differs from the report re-rendered from findings.json"
    ]


def test_report_rebuilds_the_formats_the_manifest_lists_byte_for_byte(tmp_path: Path) -> None:
    package = tmp_path / "package"
    write_reports(scan_result(complete=True), package, formats=("csv", "ocsf", "oscal"))
    assert names(package) == ALWAYS | {
        "findings.csv",
        "findings.ocsf.jsonl",
        "assessment-results.oscal.json",
    }
    rebuilt = tmp_path / "rebuilt"
    done = CliRunner().invoke(app, ["report", str(package / "findings.json"), "-o", str(rebuilt)])
    assert done.exit_code == ExitCode.FINDINGS, done.output
    assert names(rebuilt) == names(package)
    for name in names(package):
        assert (rebuilt / name).read_bytes() == (package / name).read_bytes(), name


def test_report_formats_option_and_its_refusal(tmp_path: Path) -> None:
    package = tmp_path / "package"
    write_reports(scan_result(complete=True), package)
    assert names(package) - ALWAYS == {
        "report.html",
        "orgscan.sarif",
        "findings.csv",
        "findings.ocsf.jsonl",
    }
    runner = CliRunner()
    evidence = str(package / "findings.json")
    some = tmp_path / "some"
    done = runner.invoke(app, ["report", evidence, "-o", str(some), "--formats", "sarif"])
    assert done.exit_code == ExitCode.FINDINGS, done.output
    assert names(some) == ALWAYS | {"orgscan.sarif"}
    assert verify_package(some) == []
    bad = runner.invoke(app, ["report", evidence, "-o", str(tmp_path / "x"), "--formats", "pdf"])
    assert bad.exit_code == ExitCode.USAGE
    assert "--formats: unknown format 'pdf'; expected 'all' or any of:" in bad.output


def test_config_formats_key() -> None:
    assert parse_config(None).output.formats == DEFAULT_FORMATS
    assert parse_config({"output": {"formats": ["all"]}}).output.formats == FORMATS
    assert parse_config({"output": {"formats": ["ocsf", "csv"]}}).output.formats == (
        "csv",
        "ocsf",
    )
    with pytest.raises(ConfigError, match=r"output\.formats\[1\]: expected one of 'all'"):
        parse_config({"output": {"formats": ["csv", "pdf"]}})
