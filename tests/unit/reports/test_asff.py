"""findings.asff.json: ASFF for Security Hub CSPM, checked against botocore's service model."""

from __future__ import annotations

from typing import Any

from orgscan.delta import compare
from orgscan.model import ScanResult
from orgscan.reports.asff import AsffRenderer
from orgscan.reports.ocsf import standard
from orgscan.reports.sarif import fingerprint
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, UNUSED, rule_by_id
from tests.format_checks import asff_findings
from tests.report_fixtures import (
    CAROL_NEWER,
    CAROL_OLDER,
    DEPLOYER_IN_USE,
    DEV,
    MGMT,
    PROD,
    VALID_EXCEPTION,
    hygiene_result,
    round_trip,
    scan_result,
    without_open_findings,
)
from tests.unit.reports.test_ocsf import thousand_users


def test_one_finding_per_finding_with_requirements_and_workflow() -> None:
    result = scan_result()
    found = asff_findings(AsffRenderer().render(result))
    assert len(found) == len(result.findings) == 4
    for finding in found:
        user = finding["Resources"][0]
        assert user["Type"] == "AwsIamUser" and user["Partition"] == "aws"
        assert finding["Id"] == (
            "orgscan/iam-user-multiple-active-access-keys/"
            + fingerprint("iam-user-multiple-active-access-keys", user["Id"])
        )
        assert finding["GeneratorId"] == "orgscan/iam-user-multiple-active-access-keys"
        assert finding["ProductArn"] == (
            f"arn:aws:securityhub:us-east-1:{finding['AwsAccountId']}:product/"
            f"{finding['AwsAccountId']}/default"
        )
        requirements = finding["Compliance"]["RelatedRequirements"]
        assert "CIS AWS Foundations Benchmark v1.4.0/1.13" in requirements
        assert "NIST SP 800-53 Rev. 5/IA-5" in requirements
        assert finding["Compliance"]["Status"] == "FAILED"
    suppressed = [f for f in found if f["Workflow"]["Status"] == "SUPPRESSED"]
    assert len(suppressed) == 1
    assert suppressed[0]["UserDefinedFields"] == {
        "orgscan/ExceptionOwner": VALID_EXCEPTION.owner,
        "orgscan/ExceptionExpires": VALID_EXCEPTION.expires.isoformat(),
        "orgscan/ExceptionTicket": VALID_EXCEPTION.ticket,
    }
    assert VALID_EXCEPTION.owner in suppressed[0]["Note"]["Text"]
    assert {f["Workflow"]["Status"] for f in found if f not in suppressed} == {"NEW"}
    assert {f["RecordState"] for f in found} == {"ACTIVE"}


def test_resolved_since_the_baseline_is_archived() -> None:
    baseline = scan_result()
    current = without_open_findings(scan_result(run_id="20250414T093000Z-1a2b3c4d"))
    current.delta = compare(baseline, current)
    found = asff_findings(AsffRenderer().render(round_trip(current)))
    assert found and {f["RecordState"] for f in found} == {"ARCHIVED"}
    assert {f["Workflow"]["Status"] for f in found} == {"RESOLVED"}
    assert {f["Compliance"]["Status"] for f in found} == {"PASSED"}
    before = {f["Id"] for f in asff_findings(AsffRenderer().render(baseline))}
    assert {f["Id"] for f in found} <= before


def test_a_thousand_user_account_is_valid_in_batches_of_100() -> None:
    result = thousand_users()
    found = asff_findings(AsffRenderer().render(result))
    assert len(found) == len(result.findings) == 338
    assert len({f["Id"] for f in found}) == len(found)


# --- every rule: hygiene_result() fails all four ---------------------------------------------


def _by_rule(result: ScanResult) -> dict[tuple[str, str], dict[str, Any]]:
    found = asff_findings(AsffRenderer().render(result))
    return {
        (f["ProductFields"]["orgscan/RuleId"], f["ProductFields"]["orgscan/ResourceId"]): f
        for f in found
    }


def test_each_finding_is_its_rules_with_its_resource_first() -> None:
    result = hygiene_result()
    found = _by_rule(result)
    assert set(found) == {(f.rule_id, f.resource_id) for f in result.findings}
    for finding in result.findings:
        asff, rule = found[(finding.rule_id, finding.resource_id)], rule_by_id(finding.rule_id)
        assert asff["Id"] == f"orgscan/{rule.id}/{fingerprint(rule.id, finding.resource_id)}"
        assert asff["GeneratorId"] == f"orgscan/{rule.id}"
        assert asff["Title"] == rule.title
        assert asff["Remediation"]["Recommendation"]["Text"] == rule.remediation.summary
        assert asff["Remediation"]["Recommendation"]["Url"] == rule.help_uri
        assert asff["Severity"]["Label"] == rule.severity.upper()
        assert finding.detail in asff["Description"]
        # The rule's own controls, no other rule's.
        assert asff["Compliance"]["RelatedRequirements"] == [
            f"{standard(c)}/{c.id}" for c in result.controls if c.rule == rule.id
        ]
    root = found[(ROOT_KEY, f"arn:aws:iam::{MGMT}:root")]
    assert root["Severity"]["Label"] == "CRITICAL"
    assert root["Resources"] == [
        {
            "Type": "AwsAccount",
            "Id": f"AWS::::Account:{MGMT}",
            "Partition": "aws",
            "Region": "us-east-1",
            "Details": {
                "Other": {
                    "RootUserArn": f"arn:aws:iam::{MGMT}:root",
                    "RootAccessKeysPresent": "true",
                    "RootAccessKeysActive": "1",
                    "Source": "credential-report",
                    "AsOf": "2025-03-14T08:30:00Z",
                }
            },
        }
    ]
    assert "CIS AWS Foundations Benchmark v7.0.0/2.4" in root["Compliance"]["RelatedRequirements"]
    assert "NIST SP 800-53 Rev. 5/AC-6" in root["Compliance"]["RelatedRequirements"]
    assert "NIST SP 800-53 Rev. 5/IA-5" not in root["Compliance"]["RelatedRequirements"]
    one_key = found[(MULTIPLE_ACTIVE_KEYS, f"arn:aws:iam::{DEV}:user/engineering/carol")]
    assert not any("v7.0.0" in r for r in one_key["Compliance"]["RelatedRequirements"])
    assert [(r["Type"], r["Id"]) for r in one_key["Resources"]] == [
        ("AwsIamUser", f"arn:aws:iam::{DEV}:user/engineering/carol"),
        ("AwsIamAccessKey", CAROL_OLDER),
        ("AwsIamAccessKey", CAROL_NEWER),
    ]
    assert one_key["Types"] == [
        "Software and Configuration Checks/Industry and Regulatory Standards/" + classifier
        for classifier in (
            "CIS AWS Foundations Benchmark",
            "NIST 800-53 Controls (USA)",
            "NIST CSF Controls (USA)",
        )
    ]


def test_a_key_finding_names_the_key_then_its_user_with_its_dates() -> None:
    found = _by_rule(hygiene_result())
    rotation = found[(NOT_ROTATED, DEPLOYER_IN_USE)]
    key, user = rotation["Resources"]
    assert (key["Type"], key["Id"]) == ("AwsIamAccessKey", DEPLOYER_IN_USE)
    assert key["Details"]["AwsIamAccessKey"] == {
        "AccessKeyId": DEPLOYER_IN_USE,
        "PrincipalName": "deployer",
        "PrincipalType": "IAMUser",
        "AccountId": PROD,
        "Status": "Active",
        "CreatedAt": "2024-05-18T09:30:00Z",
    }
    assert (user["Type"], user["Id"]) == ("AwsIamUser", f"arn:aws:iam::{PROD}:user/deployer")
    fields = rotation["ProductFields"]
    assert fields["orgscan/Threshold/max_age_days"] == "90"
    assert fields["orgscan/KeyLastUsedAt"] == "2025-03-13T09:30:00Z"
    assert fields["orgscan/ResourceType"] == "access-key"
    assert rotation["Workflow"]["Status"] == "SUPPRESSED"  # the rotation exception
    assert (
        "CIS AWS Foundations Benchmark v7.0.0/2.12"
        in (rotation["Compliance"]["RelatedRequirements"])
    )
    unused = found[(UNUSED, CAROL_OLDER)]
    assert unused["ProductFields"]["orgscan/KeyLastUsedAt"] == "never"
    assert unused["ProductFields"]["orgscan/Threshold/max_unused_days"] == "45"
    assert unused["Workflow"]["Status"] == "NEW"


def test_a_resolved_key_finding_archives_that_rule_and_key_only() -> None:
    baseline = hygiene_result()
    current = hygiene_result()
    current.run.id = "20250414T093000Z-1a2b3c4d"
    current.findings = [
        f for f in current.findings if not (f.rule_id == UNUSED and f.resource_id == CAROL_OLDER)
    ]
    current.delta = compare(baseline, current)
    found = asff_findings(AsffRenderer().render(round_trip(current)))
    archived = [f for f in found if f["RecordState"] == "ARCHIVED"]
    assert len(archived) == 1
    (closed,) = archived
    assert closed["Id"] == _by_rule(baseline)[(UNUSED, CAROL_OLDER)]["Id"]
    assert closed["Resources"][0]["Id"] == CAROL_OLDER
    assert (closed["Workflow"]["Status"], closed["Compliance"]["Status"]) == ("RESOLVED", "PASSED")
    # The same key's rotation finding is still open.
    assert _by_rule(current)[(NOT_ROTATED, CAROL_OLDER)]["RecordState"] == "ACTIVE"
