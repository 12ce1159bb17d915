"""orgscan.sarif: valid SARIF 2.1.0 that GitHub code scanning accepts, stable across runs."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from orgscan.delta import compare
from orgscan.model import Change, Coverage, FindingState, ResourceType, RuleCoverage, ScanResult
from orgscan.reports import sarif
from orgscan.reports.sarif import SarifRenderer
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, rule_by_id
from tests.format_checks import github_sarif_problems, sarif_document, sarif_schema
from tests.report_fixtures import (
    CAROL_NEWER,
    CAROL_OLDER,
    DEPLOYER_IN_USE,
    DEPLOYER_NEWER,
    DEV,
    FAILED,
    MGMT,
    ORG,
    PARTIAL,
    PROD,
    SANDBOX,
    SCP_DENIAL,
    STARTED,
    SUSPENDED,
    UNREADABLE_ARN,
    hygiene_result,
    round_trip,
    scan_result,
    without_open_findings,
)


def _schema() -> dict[str, Any]:
    return sarif_schema()


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
    assert github_sarif_problems(log) == []


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
    assert f"Keep {DEPLOYER_IN_USE} (most recently used)" in text


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
    assert {"CIS-1.13-v1.4.0-v4.0.1", "CIS-1.12-v5.0.0", "CIS-2.12-v6.0.0"} <= set(tags)


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
    # The partial account: its scan, and the one rule that could not judge all of it there.
    assert [(n["properties"]["accountId"], n["descriptor"]["id"]) for n in errors] == [
        (FAILED, "account-not-scanned"),
        (PARTIAL, "account-partially-scanned"),
        (PARTIAL, "rule-incomplete"),
    ]
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


@pytest.mark.parametrize("make", [scan_result, hygiene_result], ids=["one-rule", "four-rules"])
def test_taxonomies_and_relationships_resolve_to_each_rules_own_controls(make: Any) -> None:
    result = make()
    run = _render(result)["runs"][0]
    taxonomies = run["taxonomies"]
    evaluated = {r.id for r in result.run.rules}
    mapped = [c for c in result.controls if c.rule in evaluated]
    # One taxonomy per framework and version of the run's rules, each control once in it.
    assert sorted((t["name"], t["version"]) for t in taxonomies) == sorted(
        {(c.framework, c.version) for c in mapped}
    )
    for taxonomy in taxonomies:
        ids = [taxon["id"] for taxon in taxonomy["taxa"]]
        assert len(ids) == len(set(ids))
    assert ("CIS AWS Foundations Benchmark", "1.4.0") in {
        (t["name"], t["version"]) for t in taxonomies
    }
    for rule in run["tool"]["driver"]["rules"]:
        targets = []
        for relationship in rule["relationships"]:
            target = relationship["target"]
            taxonomy = taxonomies[target["toolComponent"]["index"]]
            assert taxonomy["name"] == target["toolComponent"]["name"]
            assert taxonomy["guid"] == target["toolComponent"]["guid"]
            assert taxonomy["taxa"][target["index"]]["id"] == target["id"]
            targets.append((taxonomy["name"], taxonomy["version"], target["id"]))
        assert targets == [(c.framework, c.version, c.id) for c in mapped if c.rule == rule["id"]]


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
    assert sarif.github_limit_warnings(5_000, mb) == []
    # GitHub stores and shows only the top 5,000 results of a run.
    (shown,) = sarif.github_limit_warnings(5_001, mb)
    assert "only the top 5,000" in shown and "other 1 will not appear" in shown
    assert "25,000" not in shown
    (near,) = sarif.github_limit_warnings(20_000, mb)
    assert "top 5,000" in near and "close to the 25,000" in near
    (over,) = sarif.github_limit_warnings(25_001, mb)
    assert "over" in over and "25,000" in over and "reject" in over
    (big,) = sarif.github_limit_warnings(100, 11 * mb)
    assert "reject" in big
    assert len(sarif.github_limit_warnings(30_000, 12 * mb)) == 2


def test_render_warns_on_stderr_logger_when_a_limit_is_crossed(
    result: ScanResult, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sarif, "GITHUB_SHOWN_RESULTS", 2)
    with caplog.at_level(logging.WARNING, logger="orgscan"):
        SarifRenderer().render(result)
    assert any("GitHub" in r.getMessage() and r.name == "orgscan" for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="orgscan"):
        SarifRenderer().render(without_open_findings(result))
    assert not caplog.records


# --- Every rule of the run (hygiene_result: all four rules) ---


@pytest.fixture(scope="module")
def hygiene() -> ScanResult:
    return hygiene_result()


@pytest.fixture(scope="module")
def hygiene_log(hygiene: ScanResult) -> dict[str, Any]:
    return _render(hygiene)


def _results_of(log: dict[str, Any], rule_id: str) -> list[dict[str, Any]]:
    return [r for r in log["runs"][0]["results"] if r["ruleId"] == rule_id]


@pytest.mark.parametrize("suppressed", ["include", "omit"])
def test_every_rule_passes_the_oasis_schema_and_githubs_rules(
    hygiene: ScanResult, suppressed: str
) -> None:
    log = sarif_document(SarifRenderer(suppressed).render(hygiene))
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {r.id for r in hygiene.run.rules}


def test_github_checks_are_not_vacuous(hygiene_log: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(hygiene_log))
    first, second = broken["runs"][0]["results"][:2]
    second["partialFingerprints"] = first["partialFingerprints"]
    second["ruleId"] = first["ruleId"]
    first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "arn:aws:iam::1:root"
    problems = github_sarif_problems(broken)
    assert any("fingerprint" in p for p in problems)
    assert any("not relative" in p for p in problems)
    assert any("ruleIndex" in p for p in problems)


def test_one_rules_entry_per_rule_of_the_run_in_its_order(
    hygiene: ScanResult, hygiene_log: dict[str, Any], log: dict[str, Any]
) -> None:
    rules = hygiene_log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in hygiene.run.rules]
    assert len(rules) == 4
    for entry in rules:
        rule = rule_by_id(entry["id"])
        assert entry["name"] == rule.name
        assert entry["shortDescription"]["text"] == rule.short_description
        assert entry["fullDescription"]["text"] == rule.full_description
        assert rule.remediation.summary in entry["help"]["text"]
        assert rule.remediation.cli[0] in entry["help"]["markdown"]
        assert entry["properties"]["security-severity"] == rule.security_severity
        assert entry["properties"]["precision"] == "very-high"
        assert entry["defaultConfiguration"]["level"] == sarif.level(rule.severity)
        assert set(rule.tags) <= set(entry["properties"]["tags"])
    # Old evidence (one rule evaluated) lists that rule alone.
    assert [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]] == [MULTIPLE_ACTIVE_KEYS]


def test_results_point_at_their_rule_by_id_and_index(hygiene_log: dict[str, Any]) -> None:
    run = hygiene_log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert {r["ruleIndex"] for r in run["results"]} == {0, 1, 2, 3}
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_level_follows_each_rules_severity(hygiene_log: dict[str, Any]) -> None:
    rules = {r["id"]: r for r in hygiene_log["runs"][0]["tool"]["driver"]["rules"]}
    root = rule_by_id("root-access-key-present")
    assert root.severity == "critical" and float(root.security_severity) >= 9.0
    (root_result,) = _results_of(hygiene_log, root.id)
    assert root_result["level"] == "error"
    assert rules[root.id]["properties"]["problem.severity"] == "error"
    for rule_id in rules.keys() - {root.id}:
        assert {r["level"] for r in _results_of(hygiene_log, rule_id)} == {"warning"}
        assert rules[rule_id]["properties"]["problem.severity"] == "warning"
    assert sarif.level("low") == "note"


def test_relationships_of_each_rule_name_only_its_controls(hygiene_log: dict[str, Any]) -> None:
    rules = {r["id"]: r for r in hygiene_log["runs"][0]["tool"]["driver"]["rules"]}

    def targets(rule_id: str) -> set[tuple[int, str]]:
        return {
            (t["target"]["toolComponent"]["index"], t["target"]["id"])
            for t in rules[rule_id]["relationships"]
        }

    cis_140 = 0  # the first taxonomy: CIS v1.4.0, where each rule has its own number
    assert (cis_140, "1.4") in targets("root-access-key-present")
    assert (cis_140, "1.13") not in targets("root-access-key-present")
    assert (cis_140, "1.13") in targets(MULTIPLE_ACTIVE_KEYS)
    assert (cis_140, "1.14") in targets("iam-access-key-not-rotated")
    assert (cis_140, "1.12") in targets("iam-access-key-unused")
    nist = {t["target"]["id"] for t in rules["root-access-key-present"]["relationships"]}
    assert "IA-5" not in nist and "AC-6" in nist
    # Our rationale for a mapping is the relationship's: it differs from rule to rule.
    unused_ia5 = next(
        t for t in rules["iam-access-key-unused"]["relationships"] if t["target"]["id"] == "IA-5"
    )
    assert "revo" in unused_ia5["description"]["text"]


def test_cis_tags_name_their_versions_and_no_two_rules_share_one(
    hygiene_log: dict[str, Any],
) -> None:
    seen: dict[str, str] = {}
    for rule in hygiene_log["runs"][0]["tool"]["driver"]["rules"]:
        tags = rule["properties"]["tags"]
        assert tags[0] == "security" and len(tags) <= 10
        for tag in (t for t in tags if t.startswith("CIS-")):
            assert tag not in seen, f"{tag} on {rule['id']} and {seen[tag]}"
            seen[tag] = rule["id"]
    assert seen["CIS-1.12-v1.4.0-v4.0.1"] == "iam-access-key-unused"
    assert seen["CIS-1.12-v5.0.0"] == MULTIPLE_ACTIVE_KEYS
    assert seen["CIS-2.4-v7.0.0"] == "root-access-key-present"


def test_a_key_finding_has_a_path_and_fingerprint_of_its_own(
    hygiene: ScanResult, hygiene_log: dict[str, Any]
) -> None:
    rotation = {
        r["properties"]["accessKeyId"]: r
        for r in _results_of(hygiene_log, "iam-access-key-not-rotated")
    }
    # The deployer's two keys: two results, two paths, two fingerprints, both unlike the user's.
    (user_result,) = [
        r
        for r in _results_of(hygiene_log, MULTIPLE_ACTIVE_KEYS)
        if r["properties"]["userName"] == "deployer"
    ]
    uris = {
        key: rotation[key]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for key in (DEPLOYER_IN_USE, DEPLOYER_NEWER)
    }
    assert uris[DEPLOYER_IN_USE] == f"aws/{PROD}/iam/access-keys/{DEPLOYER_IN_USE}"
    assert uris[DEPLOYER_NEWER] == f"aws/{PROD}/iam/access-keys/{DEPLOYER_NEWER}"
    prints = {
        rotation[k]["partialFingerprints"]["primaryLocationLineHash"]
        for k in (DEPLOYER_IN_USE, DEPLOYER_NEWER)
    }
    assert len(prints) == 2
    assert user_result["partialFingerprints"]["primaryLocationLineHash"] not in prints
    assert prints == {
        sarif.fingerprint("iam-access-key-not-rotated", k)
        for k in rotation
        if k.startswith("AKIADEPLOYER")
    }
    # The key is the second logical location; its user (and ARN) the first.
    logical = rotation[DEPLOYER_IN_USE]["locations"][0]["logicalLocations"]
    assert [entry["name"] for entry in logical] == ["deployer", DEPLOYER_IN_USE]
    assert logical[0]["fullyQualifiedName"] == f"arn:aws:iam::{PROD}:user/deployer"
    (root,) = _results_of(hygiene_log, "root-access-key-present")
    assert root["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        f"aws/{MGMT}/iam/root"
    )
    assert root["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        f"arn:aws:iam::{MGMT}:root"
    )
    assert root["properties"]["rootKeys"]["present"] is True


def test_a_key_keeps_its_alert_across_quarters(hygiene: ScanResult) -> None:
    later = replace(
        hygiene_result(),
        run=replace(
            hygiene.run, id="20250614T093000Z-99999999", started_at=STARTED + timedelta(days=92)
        ),
    )

    def prints(log: dict[str, Any]) -> dict[tuple[str, str], str]:
        return {
            (r["ruleId"], r["properties"]["resourceId"]): r["partialFingerprints"][
                "primaryLocationLineHash"
            ]
            for r in log["runs"][0]["results"]
        }

    first, second = prints(_render(hygiene)), prints(_render(round_trip(later)))
    assert first == second
    assert ("iam-access-key-unused", CAROL_OLDER) in first
    assert len(set(first.values())) == len(first) == len(hygiene.findings)


# sha256("iam-user-multiple-active-access-keys\narn:aws:iam::222222222222:user/deployer"), as
# orgscan wrote it before there were several rules.
PINNED_DEPLOYER = "c091d01bac9d78d749c582bdd9db6dfc5cff3f35f549a0086a1799c80a6dafef"


def test_the_one_active_key_rules_fingerprints_are_those_of_before(log: dict[str, Any]) -> None:
    # Pinned from the release before rules were many: an old alert must survive the upgrade.
    deployer = _by_user(log)["deployer"]
    assert deployer["partialFingerprints"]["primaryLocationLineHash"] == PINNED_DEPLOYER
    assert deployer["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        f"aws/{PROD}/iam/users/deployer"
    )


def test_each_message_is_its_findings_detail_and_its_rules_remedy(
    hygiene: ScanResult, hygiene_log: dict[str, Any]
) -> None:
    by_identity = {(f.rule_id, f.resource_id): f for f in hygiene.findings}
    for result in hygiene_log["runs"][0]["results"]:
        finding = by_identity[(result["ruleId"], result["properties"]["resourceId"])]
        text = result["message"]["text"]
        assert finding.detail in text
        assert rule_by_id(finding.rule_id).remediation.summary in text
        assert finding.arn in text
        assert result["properties"]["detail"] == finding.detail
        if finding.resource_type is ResourceType.ACCESS_KEY:
            assert "Keep " not in text.replace(rule_by_id(finding.rule_id).remediation.summary, "")
    (root,) = _results_of(hygiene_log, "root-access-key-present")
    assert root["message"]["text"].startswith(f"Account {MGMT} (management): the root user has")
    # The rotation exception excepts the deployer's keys under that rule only.
    rotation = {
        r["properties"]["accessKeyId"]: r
        for r in _results_of(hygiene_log, "iam-access-key-not-rotated")
    }
    assert rotation[DEPLOYER_IN_USE]["suppressions"][0]["properties"]["ticket"] == "SEC-1002"
    (deployer,) = [
        r
        for r in _results_of(hygiene_log, MULTIPLE_ACTIVE_KEYS)
        if r["properties"]["userName"] == "deployer"
    ]
    assert "suppressions" not in deployer


def test_incomplete_coverage_is_a_notification_per_rule_and_account(
    hygiene: ScanResult, hygiene_log: dict[str, Any]
) -> None:
    notes = [
        n
        for n in hygiene_log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        if n["descriptor"]["id"] == "rule-incomplete"
    ]
    rules = hygiene_log["runs"][0]["tool"]["driver"]["rules"]
    # The partial account: every rule over its users is incomplete; the root's keys were read.
    assert [(n["properties"]["accountId"], n["properties"]["ruleId"]) for n in notes] == [
        (PARTIAL, MULTIPLE_ACTIVE_KEYS),
        (PARTIAL, "iam-access-key-not-rotated"),
        (PARTIAL, "iam-access-key-unused"),
    ]
    partial = next(a for a in hygiene.accounts if a.account.id == PARTIAL)
    for note in notes:
        assert note["level"] == "error"
        assert rules[note["associatedRule"]["index"]]["id"] == note["associatedRule"]["id"]
        assert note["associatedRule"]["id"] == note["properties"]["ruleId"]
        gaps = next(c.gaps for c in partial.coverage if c.rule_id == note["properties"]["ruleId"])
        assert note["properties"]["gaps"] == list(gaps) and gaps
        assert "INCOMPLETE" in note["message"]["text"] and UNREADABLE_ARN in note["message"]["text"]


def test_a_gap_of_one_rule_alone_names_that_rule(hygiene: ScanResult) -> None:
    gaps = tuple(
        f"key AKIAGAP{n:013d} of user u{n}: last use unknown: Throttling" for n in range(5)
    )
    accounts = [
        replace(
            a,
            coverage=[
                RuleCoverage(c.rule_id, Coverage.INCOMPLETE, gaps)
                if c.rule_id == "iam-access-key-unused"
                else c
                for c in a.coverage
            ],
        )
        if a.account.id == PROD
        else a
        for a in hygiene.accounts
    ]
    log = _render(replace(hygiene, accounts=accounts))
    (note,) = [
        n
        for n in log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        if n["descriptor"]["id"] == "rule-incomplete" and n["properties"]["accountId"] == PROD
    ]
    assert note["associatedRule"] == {"id": "iam-access-key-unused", "index": 2}
    assert note["properties"]["gaps"] == list(gaps)
    text = note["message"]["text"]
    assert "could not judge 5 item(s)" in text and gaps[2] in text and gaps[3] not in text
    assert "and 2 more" in text


def test_resolved_findings_are_absent_results_of_their_own_rule(hygiene: ScanResult) -> None:
    current = without_open_findings(hygiene)
    current = replace(current, findings=[], delta=compare(hygiene, current))
    log = sarif_document(SarifRenderer().render(round_trip(current)))
    run = log["runs"][0]
    absent = run["results"]
    assert absent and {r["baselineState"] for r in absent} == {"absent"}
    resolved = {(c.rule_id, c.resource_id) for c in current.delta.of(Change.RESOLVED)}
    assert len(absent) == len(resolved)
    rules = run["tool"]["driver"]["rules"]
    for result in absent:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert rule_by_id(result["ruleId"]).title in result["message"]["text"]
    keys = [r for r in absent if r["ruleId"] == "iam-access-key-unused"]
    assert f"aws/{DEV}/iam/access-keys/{CAROL_OLDER}" in {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in keys
    }
    (root,) = [r for r in absent if r["ruleId"] == "root-access-key-present"]
    assert (
        root["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == f"aws/{MGMT}/iam/root"
    )


def test_a_finding_of_a_rule_the_run_did_not_evaluate_is_refused(hygiene: ScanResult) -> None:
    with pytest.raises(ValueError, match="iam-access-key-unused"):
        sarif.build(replace(hygiene, run=replace(hygiene.run, rules=hygiene.run.rules[:2])))
