"""findings.ocsf.jsonl: OCSF Compliance Findings, validated with py-ocsf-models."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from orgscan.delta import compare
from orgscan.model import AccessKey, Account, AccountResult, ScanResult, ScanStatus, UserKeys
from orgscan.reports.ocsf import OcsfRenderer, requirement
from orgscan.reports.sarif import SarifRenderer
from orgscan.rules import (
    MULTIPLE_ACTIVE_KEYS,
    NOT_ROTATED,
    ROOT_KEY,
    UNUSED,
    fingerprint,
    rule_by_id,
)
from tests.format_checks import ocsf_events
from tests.report_fixtures import (
    CAROL_NEWER,
    CAROL_OLDER,
    DEPLOYER_IN_USE,
    DEV,
    MGMT,
    PROD,
    STARTED,
    VALID_EXCEPTION,
    hygiene_result,
    round_trip,
    scan_result,
    without_open_findings,
)


def test_one_compliance_finding_per_finding_with_the_sarif_identity() -> None:
    result = scan_result()
    events = ocsf_events(OcsfRenderer().render(result))
    assert len(events) == len(result.findings) == 4
    sarif = json.loads(SarifRenderer().render(result))
    prints = {
        r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]: r["partialFingerprints"][
            "primaryLocationLineHash"
        ]
        for r in sarif["runs"][0]["results"]
    }
    assert {e["resources"][0]["uid"]: e["finding_info"]["uid"] for e in events} == prints
    event = events[0]
    assert event["cloud"]["provider"] == "AWS"
    assert event["cloud"]["account"]["uid"] == event["resources"][0]["data"]["account_id"]
    assert event["cloud"]["org"]["uid"] == "o-abc123defg"
    assert event["resources"][0]["cloud_partition"] == "aws"
    assert event["metadata"]["version"] == "1.5.0"
    assert "CIS AWS Foundations Benchmark v1.4.0 1.13" in event["compliance"]["requirements"]
    assert "NIST SP 800-53 Rev. 5 IA-5" in event["compliance"]["requirements"]
    assert event["compliance"]["status_id"] == 3  # Fail
    assert event["severity_id"] == 3  # Medium


def test_an_excepted_finding_is_suppressed_with_owner_expiry_and_ticket() -> None:
    events = ocsf_events(OcsfRenderer().render(scan_result()))
    suppressed = [e for e in events if e["status_id"] == 3]
    assert len(suppressed) == 1
    exception = suppressed[0]["unmapped"]["exception"]
    assert exception == {
        "owner": VALID_EXCEPTION.owner,
        "expires": VALID_EXCEPTION.expires.isoformat(),
        "ticket": VALID_EXCEPTION.ticket,
        "reason": VALID_EXCEPTION.reason,
    }
    assert VALID_EXCEPTION.owner in suppressed[0]["status_detail"]
    assert all(e["status_id"] == 1 for e in events if e is not suppressed[0])  # New


def test_findings_resolved_since_the_baseline_are_resolved_and_pass() -> None:
    baseline = scan_result()
    current = without_open_findings(scan_result(run_id="20250414T093000Z-1a2b3c4d"))
    current.delta = compare(baseline, current)
    events = ocsf_events(OcsfRenderer().render(round_trip(current)))
    assert events and {e["status_id"] for e in events} == {4}  # Resolved
    assert {e["activity_id"] for e in events} == {3}  # Close
    assert {e["compliance"]["status_id"] for e in events} == {1}  # Pass
    before = {e["finding_info"]["uid"] for e in ocsf_events(OcsfRenderer().render(baseline))}
    assert {e["finding_info"]["uid"] for e in events} <= before


def thousand_users(result=None):
    """A 1,000-user account beside the fixture's accounts; every third user has two keys."""
    result = result or scan_result()
    account_id = "888888888888"
    users = [
        UserKeys(
            account_id=account_id,
            user_name=f"user-{i:04d}",
            arn=f"arn:aws:iam::{account_id}:user/team/user-{i:04d}",
            path="/team/",
            access_keys=tuple(
                AccessKey(id=f"AKIA{i:08d}KEY{k:05d}", status="Active", created_at=STARTED)
                for k in range(2 if i % 3 == 0 else 1)
            ),
        )
        for i in range(1000)
    ]
    big = AccountResult(
        account=Account(account_id, "big", "big@example.com", "ACTIVE", "Root/Big", ("r-ab12",)),
        scan_status=ScanStatus.SCANNED,
        users=users,
        scanned_at=STARTED,
    )
    from orgscan.evaluate import evaluate

    accounts = [*result.accounts, big]
    findings = evaluate(accounts, result.run.rules, result.exceptions, "aws", STARTED)
    return round_trip(replace(result, accounts=accounts, findings=findings))


def test_a_thousand_user_account_renders_valid_events() -> None:
    result = thousand_users()
    events = ocsf_events(OcsfRenderer().render(result))
    assert len(events) == len(result.findings) == 4 + 334
    assert len({e["finding_info"]["uid"] for e in events}) == len(events)


def test_active_keys_are_resources_and_no_secret_is_written() -> None:
    events = ocsf_events(OcsfRenderer().render(scan_result()))
    keys = [r["uid"] for e in events for r in e["resources"] if r["type"] == "AWS::IAM::AccessKey"]
    assert CAROL_NEWER in keys
    assert all(r["data"]["account_id"] for e in events for r in e["resources"])
    assert PROD in {e["cloud"]["account"]["uid"] for e in events}


@pytest.mark.parametrize(
    ("where", "misspelled"),
    [
        ((), "finding_infos"),
        (("finding_info",), "uuid"),
        (("compliance",), "standard"),
        (("resources", 0), "acount"),
        (("cloud", "account"), "id"),
    ],
)
def test_the_ocsf_check_catches_unknown_members(where: tuple[Any, ...], misspelled: str) -> None:
    # py-ocsf-models ignores members it does not declare; the check must not.
    line = OcsfRenderer().render(scan_result()).splitlines()[0]
    event = json.loads(line)
    target = event
    for step in where:
        target = target[step]
    target[misspelled] = "x"
    with pytest.raises(AssertionError, match="members OCSF does not declare"):
        ocsf_events(json.dumps(event).encode() + b"\n")


# --- every rule: hygiene_result() fails all four ---------------------------------------------


def _events_by_rule(result: ScanResult) -> dict[tuple[str, str], dict[str, Any]]:
    """Each event by its rule and the uid of the resource it leads with."""
    events = ocsf_events(OcsfRenderer().render(result))
    return {(e["finding_info"]["types"][0], e["resources"][0]["uid"]): e for e in events}


def test_each_finding_is_its_rules_with_its_resource_first() -> None:
    result = hygiene_result()
    events = _events_by_rule(result)
    # One event per finding, each about the resource its rule judges.
    assert set(events) == {(f.rule_id, f.resource_id) for f in result.findings}
    for finding in result.findings:
        event, rule = events[(finding.rule_id, finding.resource_id)], rule_by_id(finding.rule_id)
        assert event["finding_info"]["uid"] == fingerprint(rule.id, finding.resource_id)
        assert event["finding_info"]["title"] == rule.title
        assert event["finding_info"]["desc"] == rule.short_description
        assert event["compliance"]["control"] == rule.id
        assert event["remediation"]["desc"] == rule.remediation.summary
        assert finding.detail in event["message"]
        # The rule's own controls, no other rule's.
        assert event["compliance"]["requirements"] == [
            requirement(c) for c in result.controls if c.rule == rule.id
        ]
    root = events[(ROOT_KEY, f"arn:aws:iam::{MGMT}:root")]
    assert root["severity_id"] == 5  # Critical
    assert root["resources"] == [
        {
            "cloud_partition": "aws",
            "data": {
                "account_id": MGMT,
                "root_keys_present": True,
                "root_keys_active": 1,
                "source": "credential-report",
                "as_of": "2025-03-14T08:30:00Z",
            },
            "name": "<root_account>",
            "type": "AWS::::Account",
            "uid": f"arn:aws:iam::{MGMT}:root",
        }
    ]
    assert "CIS AWS Foundations Benchmark v7.0.0 2.4" in root["compliance"]["requirements"]
    assert "CIS AWS Foundations Benchmark v1.4.0 1.13" not in root["compliance"]["requirements"]
    assert "NIST SP 800-53 Rev. 5 AC-6" in root["compliance"]["requirements"]
    # The one-key control has no CIS v7.0.0 equivalent; the rotation control has.
    one_key = events[(MULTIPLE_ACTIVE_KEYS, f"arn:aws:iam::{DEV}:user/engineering/carol")]
    assert not any("v7.0.0" in r for r in one_key["compliance"]["standards"])
    assert one_key["severity_id"] == 3
    assert [r["uid"] for r in one_key["resources"]] == [
        f"arn:aws:iam::{DEV}:user/engineering/carol",
        CAROL_OLDER,
        CAROL_NEWER,
    ]


def test_a_key_finding_carries_the_key_its_user_and_its_last_use() -> None:
    events = _events_by_rule(hygiene_result())
    rotation = events[(NOT_ROTATED, DEPLOYER_IN_USE)]
    key, user = rotation["resources"]
    assert (key["type"], user["type"]) == ("AWS::IAM::AccessKey", "AWS::IAM::User")
    assert user["uid"] == key["data"]["user_arn"] == f"arn:aws:iam::{PROD}:user/deployer"
    assert key["data"]["created"] == "2024-05-18T09:30:00Z"
    assert key["data"]["last_used"] == "2025-03-13T09:30:00Z"
    assert key["data"]["last_used_source"] == "credential-report"
    assert rotation["unmapped"]["thresholds"] == {"max_age_days": 90}
    assert "CIS AWS Foundations Benchmark v7.0.0 2.12" in rotation["compliance"]["requirements"]
    assert rotation["status_id"] == 3  # Suppressed: the rotation exception covers it
    unused = events[(UNUSED, CAROL_OLDER)]
    assert unused["resources"][0]["data"]["never_used"] is True
    assert "last_used" not in unused["resources"][0]["data"]
    assert unused["unmapped"] == {"thresholds": {"max_unused_days": 45}}
    assert "CIS AWS Foundations Benchmark v1.4.0 1.12" in unused["compliance"]["requirements"]


def test_a_resolved_key_finding_closes_that_rule_and_key_only() -> None:
    baseline = hygiene_result()
    current = hygiene_result()
    current.run.id = "20250414T093000Z-1a2b3c4d"
    # Carol's old key was rotated out of the rotation rule's reach; her other findings stay.
    current.findings = [
        f
        for f in current.findings
        if not (f.rule_id == NOT_ROTATED and f.resource_id == CAROL_OLDER)
    ]
    current.delta = compare(baseline, current)
    events = ocsf_events(OcsfRenderer().render(round_trip(current)))
    resolved = [e for e in events if e["status_id"] == 4]
    assert len(resolved) == 1
    (event,) = resolved
    assert event["finding_info"]["uid"] == fingerprint(NOT_ROTATED, CAROL_OLDER)
    assert event["resources"][0]["uid"] == CAROL_OLDER
    assert event["compliance"]["status_id"] == 1  # Pass
    assert "no longer fails iam-access-key-not-rotated" in event["message"]
    before = {e["finding_info"]["uid"] for e in ocsf_events(OcsfRenderer().render(baseline))}
    assert event["finding_info"]["uid"] in before
