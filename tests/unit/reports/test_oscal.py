"""assessment-results.oscal.json: OSCAL 1.1.3, checked against NIST's published JSON schema."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from orgscan.model import FindingState
from orgscan.reports.oscal import OscalRenderer
from tests.format_checks import oscal_document
from tests.report_fixtures import (
    FAILED,
    PARTIAL,
    VALID_EXCEPTION,
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
    # One observation for the evaluated resource type, with the evidence files, and one per
    # skipped account saying it was not assessed.
    users, skipped = run["observations"]
    assert {e["href"] for e in users["relevant-evidence"]} == {"findings.json", "report.html"}
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
