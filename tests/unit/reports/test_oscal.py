"""assessment-results.oscal.json: OSCAL 1.1.3, checked against NIST's published JSON schema."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from orgscan.model import Coverage, FindingState, ScanResult
from orgscan.reports.oscal import OscalRenderer
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, UNUSED, rule_by_id
from tests.format_checks import oscal_document
from tests.report_fixtures import (
    CAROL_OLDER,
    DEPLOYER_IN_USE,
    FAILED,
    MGMT,
    PARTIAL,
    PROD,
    ROTATION_EXCEPTION,
    VALID_EXCEPTION,
    hygiene_result,
    scan_result,
    without_open_findings,
)
from tests.unit.reports.test_ocsf import thousand_users


def _result(data: bytes) -> dict[str, Any]:
    results: list[dict[str, Any]] = oscal_document(data)["assessment-results"]["results"]
    assert len(results) == 1
    return results[0]


def _statuses(result: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        f["target"]["target-id"]: f["target"]["status"]
        for f in result["findings"]
        if "resource-arn" not in {p["name"] for p in f.get("props", [])}
    }


def test_reviewed_controls_findings_and_evidence() -> None:
    result = scan_result(complete=True)
    document = oscal_document(OscalRenderer().render(result))["assessment-results"]
    assert document["metadata"]["oscal-version"] == "1.1.3"
    assert {"name": "tool-version", "ns": "urn:orgscan:oscal", "value": "0.1.0"} in document[
        "metadata"
    ]["props"]
    run = document["results"][0]
    selected = run["reviewed-controls"]["control-selections"][0]["include-controls"]
    assert [c["control-id"] for c in selected] == ["ia-5", "ac-2"]
    # One observation of the users read and one of what the rule judged, with the evidence
    # files; one per finding; one per skipped account saying it was not assessed.
    users, rule, *violations, skipped = run["observations"]
    assert {e["href"] for e in users["relevant-evidence"]} == {"findings.json", "report.html"}
    assert {e["href"] for e in rule["relevant-evidence"]} == {"findings.json", "report.html"}
    assert len(violations) == len(result.findings)
    assert "not assessed" in skipped["title"]
    # One finding per control (not satisfied: findings are open) and one per finding.
    statuses = _statuses(run)
    assert set(statuses) == {"ia-5_obj", "ac-2_obj"}
    assert {(s["state"], s["reason"]) for s in statuses.values()} == {("not-satisfied", "fail")}
    per_user = [f for f in run["findings"] if f["target"]["target-id"] == "ia-5_obj"][1:]
    assert len(per_user) == len(result.findings) == 4
    excepted = [f for f in per_user if VALID_EXCEPTION.owner in f["remarks"]]
    assert len(excepted) == 1 and VALID_EXCEPTION.ticket in excepted[0]["remarks"]
    # The exception is an accepted risk, linked from its finding.
    (risk,) = run["risks"]
    assert risk["status"] == "deviation-approved" and VALID_EXCEPTION.owner in risk["statement"]
    assert excepted[0]["related-risks"] == [{"risk-uuid": risk["uuid"]}]
    # import-ap is the documented placeholder in the back matter.
    href = document["import-ap"]["href"]
    assert href[1:] in {r["uuid"] for r in document["back-matter"]["resources"]}


def test_a_complete_clean_sweep_is_satisfied() -> None:
    result = without_open_findings(scan_result(complete=True))
    run = _result(OscalRenderer().render(result))
    assert {s["state"] for s in _statuses(run).values()} == {"satisfied"}
    assert "risks" not in run


def test_an_excepted_finding_is_an_accepted_risk_never_a_satisfied_control() -> None:
    # A complete sweep whose only finding is excepted: the control is not satisfied either.
    full = scan_result(complete=True)
    result = replace(full, findings=full.findings_in(FindingState.EXCEPTED))
    run = _result(OscalRenderer().render(result))
    statuses = _statuses(run)
    assert {(s["state"], s["reason"]) for s in statuses.values()} == {("not-satisfied", "other")}
    assert all("approved exception" in s["remarks"] for s in statuses.values())
    (risk,) = run["risks"]
    assert risk["status"] == "deviation-approved"
    for finding in run["findings"]:
        assert finding["target"]["status"]["state"] == "not-satisfied"
        assert {"risk-uuid": risk["uuid"]} in finding["related-risks"]


def test_an_incomplete_sweep_never_reads_as_satisfied() -> None:
    # No open finding, but a failed and a partial account: risks, and no control satisfied.
    result = without_open_findings(scan_result(complete=False))
    run = _result(OscalRenderer().render(result))
    risks = run["risks"]
    assert sorted(r["title"] for r in risks) == sorted(
        [
            f"Account {FAILED} was not fully assessed (failed)",
            f"Account {PARTIAL} was not fully assessed (partial)",
        ]
    )
    assert {r["status"] for r in risks} == {"open"}
    statuses = _statuses(run)
    assert statuses and {s["state"] for s in statuses.values()} == {"not-satisfied"}
    assert {s["reason"] for s in statuses.values()} == {"other"}
    for finding in run["findings"]:
        assert {r["risk-uuid"] for r in finding["related-risks"]} == {r["uuid"] for r in risks}
    assert "INCOMPLETE" in run["description"]


def test_deterministic_and_a_thousand_user_account_is_valid() -> None:
    result = thousand_users()
    data = OscalRenderer().render(result)
    assert OscalRenderer().render(result) == data
    run = _result(data)
    uuids = [f["uuid"] for f in run["findings"]]
    assert len(uuids) == len(set(uuids)) == 2 + len(result.findings)
    # A different run gets different uuids: they derive from the run id.
    other = OscalRenderer().render(scan_result(run_id="20250414T093000Z-1a2b3c4d"))
    assert (
        json.loads(other)["assessment-results"]["uuid"]
        != json.loads(data)["assessment-results"]["uuid"]
    )


def test_the_schema_check_is_not_vacuous() -> None:
    data = json.loads(OscalRenderer().render(scan_result()))
    finding = data["assessment-results"]["results"][0]["findings"][0]
    finding["target"]["target-id"] = "1 not a token"
    with pytest.raises(AssertionError, match="does not match"):
        oscal_document(json.dumps(data).encode())


# --- every rule: hygiene_result() fails all four ---------------------------------------------


def _nist(result: ScanResult, rule_id: str) -> list[str]:
    """The rule's NIST SP 800-53 Rev. 5 controls as OSCAL spells them: `AC-2(3)` → `ac-2.3`."""
    return [
        c.id.lower().replace("(", ".").rstrip(")")
        for c in result.controls
        if c.rule == rule_id and c.framework == "NIST SP 800-53"
    ]


def _prop(item: dict[str, Any], name: str) -> str | None:
    return next((p["value"] for p in item.get("props", []) if p["name"] == name), None)


def _control_statuses(run: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """Each control finding's (state, reason) by its rule and target."""
    return {
        (_prop(f, "rule-id") or "", f["target"]["target-id"]): (
            f["target"]["status"]["state"],
            f["target"]["status"]["reason"],
        )
        for f in run["findings"]
        if _prop(f, "resource-id") is None
    }


def test_each_rule_is_an_activity_related_to_its_own_controls_only() -> None:
    result = hygiene_result()
    document = oscal_document(OscalRenderer().render(result))["assessment-results"]
    activities = document["local-definitions"]["activities"]
    assert [_prop(a, "rule-id") for a in activities] == [rule.id for rule in result.run.rules]
    for activity in activities:
        rule_id = _prop(activity, "rule-id") or ""
        selected = activity["related-controls"]["control-selections"][0]["include-controls"]
        assert [c["control-id"] for c in selected] == _nist(result, rule_id)
        assert activity["title"] == rule_by_id(rule_id).title
    root = next(a for a in activities if _prop(a, "rule-id") == ROOT_KEY)
    assert _prop(root, "severity") == "critical"
    rotation = next(a for a in activities if _prop(a, "rule-id") == NOT_ROTATED)
    assert _prop(rotation, "threshold-max_age_days") == "90"
    # The result reviews every rule's controls, each once.
    run = document["results"][0]
    reviewed = run["reviewed-controls"]["control-selections"][0]["include-controls"]
    assert [c["control-id"] for c in reviewed] == ["ia-5", "ac-2", "ac-2.3", "ac-6", "ac-6.2"]
    # A control finding per rule and control it maps to, and no other pairing.
    assert set(_control_statuses(run)) == {
        (rule.id, f"{oscal_id}_obj")
        for rule in result.run.rules
        for oscal_id in _nist(result, rule.id)
    }


def test_each_violation_is_an_observation_and_a_finding_under_its_rules_control() -> None:
    result = hygiene_result()
    run = _result(OscalRenderer().render(result))
    violations = {
        (_prop(f, "rule-id"), _prop(f, "resource-id")): f
        for f in run["findings"]
        if _prop(f, "resource-id") is not None
    }
    assert set(violations) == {(f.rule_id, f.resource_id) for f in result.findings}
    observations = {o["uuid"]: o for o in run["observations"]}
    for finding in result.findings:
        oscal = violations[(finding.rule_id, finding.resource_id)]
        first, *others = _nist(result, finding.rule_id)
        assert oscal["target"]["target-id"] == f"{first}_obj"
        assert [p["value"] for p in oscal["props"] if p["name"] == "control-id"] == others
        assert finding.detail in oscal["description"]
        (linked,) = oscal["related-observations"]
        evidence = observations[linked["observation-uuid"]]
        assert _prop(evidence, "resource-id") == finding.resource_id
        assert _prop(evidence, "rule-id") == finding.rule_id
    root = violations[(ROOT_KEY, f"arn:aws:iam::{MGMT}:root")]
    assert root["target"]["target-id"] == "ac-6_obj"
    assert _prop(root, "resource-type") == "account"
    key = violations[(UNUSED, CAROL_OLDER)]
    assert key["target"]["target-id"] == "ac-2.3_obj"
    assert _prop(key, "access-key-id") == CAROL_OLDER
    # The rotation exception is an accepted risk of that rule's key finding and controls.
    excepted = violations[(NOT_ROTATED, DEPLOYER_IN_USE)]
    (risk,) = excepted["related-risks"]
    accepted = next(r for r in run["risks"] if r["uuid"] == risk["risk-uuid"])
    assert accepted["status"] == "deviation-approved"
    assert ROTATION_EXCEPTION.owner in accepted["statement"]


def _complete_without(result: ScanResult, keep: set[tuple[str, str]]) -> ScanResult:
    """A complete sweep whose findings are only those of `keep` (rule id, resource id)."""
    return replace(
        result, findings=[f for f in result.findings if (f.rule_id, f.resource_id) in keep]
    )


def test_each_rules_controls_take_that_rules_status() -> None:
    result = hygiene_result(complete=True)
    # Only the root key is open, and only the rotation rule has (excepted) findings left.
    keep = {(ROOT_KEY, f"arn:aws:iam::{MGMT}:root")} | {
        (f.rule_id, f.resource_id)
        for f in result.findings
        if f.rule_id == NOT_ROTATED and f.state is FindingState.EXCEPTED
    }
    run = _result(OscalRenderer().render(_complete_without(result, keep)))
    statuses = _control_statuses(run)
    assert statuses == {
        (MULTIPLE_ACTIVE_KEYS, "ia-5_obj"): ("satisfied", "pass"),
        (MULTIPLE_ACTIVE_KEYS, "ac-2_obj"): ("satisfied", "pass"),
        (NOT_ROTATED, "ia-5_obj"): ("not-satisfied", "other"),
        (UNUSED, "ac-2.3_obj"): ("satisfied", "pass"),
        (UNUSED, "ia-5_obj"): ("satisfied", "pass"),
        (ROOT_KEY, "ac-6_obj"): ("not-satisfied", "fail"),
        (ROOT_KEY, "ac-6.2_obj"): ("not-satisfied", "fail"),
    }


def test_a_rule_that_could_not_judge_an_account_is_never_satisfied() -> None:
    # A complete, clean sweep, but one account's key last uses could not be read: the unused
    # rule is incomplete there (only it), so its controls are not satisfied and the account
    # is a risk of its control findings alone.
    result = hygiene_result(complete=True)
    accounts = [
        replace(
            a,
            coverage=[
                replace(c, coverage=Coverage.INCOMPLETE, gaps=("key AKIA…: last use unreadable",))
                if c.rule_id == UNUSED
                else c
                for c in a.coverage
            ],
        )
        if a.account.id == PROD
        else a
        for a in result.accounts
    ]
    run = _result(OscalRenderer().render(replace(result, accounts=accounts, findings=[])))
    statuses = _control_statuses(run)
    assert {k: v for k, v in statuses.items() if k[0] == UNUSED} == {
        (UNUSED, "ac-2.3_obj"): ("not-satisfied", "other"),
        (UNUSED, "ia-5_obj"): ("not-satisfied", "other"),
    }
    assert {v for k, v in statuses.items() if k[0] != UNUSED} == {("satisfied", "pass")}
    (risk,) = run["risks"]
    assert risk["title"] == f"Account {PROD} was not fully assessed (scanned)"
    assert "last use unreadable" in risk["description"]
    assert [p["value"] for p in risk["props"] if p["name"] == "rule-id"] == [UNUSED]
    linked = {
        _prop(f, "rule-id")
        for f in run["findings"]
        if {"risk-uuid": risk["uuid"]} in f.get("related-risks", [])
    }
    assert linked == {UNUSED}
