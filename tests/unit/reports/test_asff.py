"""findings.asff.json: ASFF for Security Hub CSPM, checked against botocore's service model."""

from __future__ import annotations

from orgscan.delta import compare
from orgscan.reports.asff import AsffRenderer
from orgscan.reports.sarif import fingerprint
from tests.format_checks import asff_findings
from tests.report_fixtures import (
    VALID_EXCEPTION,
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
