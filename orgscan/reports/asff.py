"""`findings.asff.json`: the findings in the AWS Security Finding Format, for Security Hub CSPM.

The file is the `Findings` list that BatchImportFindings takes, one finding per finding plus
one per finding resolved since the baseline (RecordState ARCHIVED, so Security Hub closes the
one it holds). `Id` is the SARIF fingerprint under the rule, so a later scan updates the same
Security Hub finding instead of adding one.

Security Hub is regional and IAM is global; findings.json records no region, so the file
names the partition's IAM home region (us-east-1 in `aws`), where Security Hub evaluates IAM.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orgscan.model import (
    AccountResult,
    ApprovedException,
    FindingState,
    ScanResult,
    UserKeys,
    iso,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.reports.ocsf import standard
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, fingerprint, rule_by_id

FILENAME = "findings.asff.json"
SCHEMA_VERSION = "2018-10-08"
# Where IAM, a global service, is homed in each partition.
HOME_REGIONS = {"aws": "us-east-1", "aws-us-gov": "us-gov-west-1", "aws-cn": "cn-north-1"}
# ASFF's documented length limits for the free-text fields we fill.
MAX_NOTE = 512
MAX_RECOMMENDATION = 512
FINDING_TYPE = (
    "Software and Configuration Checks/Industry and Regulatory Standards/"
    "CIS AWS Foundations Benchmark"
)


def home_region(partition: str) -> str:
    return HOME_REGIONS.get(partition, "us-east-1")


def product_arn(partition: str, region: str, account_id: str) -> str:
    """A custom integration's product: the account's own `default` product."""
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _note(exception: ApprovedException, at: str) -> dict[str, str]:
    ticket = f", ticket {exception.ticket}" if exception.ticket else ""
    text = (
        f"Excepted until {exception.expires.isoformat()} by {exception.owner}{ticket}: "
        f"{exception.reason}"
    )
    return {"Text": _clip(text, MAX_NOTE), "UpdatedBy": "orgscan", "UpdatedAt": at}


def _resources(
    partition: str, region: str, account_id: str, arn: str, user_name: str, user: UserKeys | None
) -> list[dict[str, Any]]:
    details: dict[str, str] = {"UserName": user_name}
    if user is not None:
        details["Path"] = user.path
    resources: list[dict[str, Any]] = [
        {
            "Type": "AwsIamUser",
            "Id": arn,
            "Partition": partition,
            "Region": region,
            "Details": {"AwsIamUser": details},
        }
    ]
    for key in user.access_keys if user is not None else ():
        if key.active and key.id:
            access_key: dict[str, str] = {
                "AccessKeyId": key.id,
                "Status": key.status,
                "UserName": user_name,
                "PrincipalName": user_name,
                "PrincipalType": "IAMUser",
                "AccountId": account_id,
            }
            if key.created_at is not None:
                access_key["CreatedAt"] = iso(key.created_at) or ""
            resources.append(
                {
                    "Type": "AwsIamAccessKey",
                    "Id": key.id,
                    "Partition": partition,
                    "Region": region,
                    "Details": {"AwsIamAccessKey": access_key},
                }
            )
    return resources


class _Findings:
    def __init__(self, result: ScanResult) -> None:
        self.result = result
        self.rule = rule_by_id(MULTIPLE_ACTIVE_KEYS)
        self.users = {user.arn: user for user in result.users}
        self.accounts = view.accounts_by_id(result)
        run = result.run
        self.partition = run.partition
        self.region = home_region(run.partition)
        self.updated = iso(run.finished_at or run.started_at) or ""
        self.requirements = [f"{standard(c)}/{c.id}" for c in result.controls]

    def _observed(self, account: AccountResult | None) -> str:
        start = self.result.run.started_at
        at: datetime = account.scanned_at if account and account.scanned_at else start
        return iso(at) or ""

    def finding(
        self,
        rule_id: str,
        account_id: str,
        user_name: str,
        arn: str,
        state: FindingState | None,
        exception: ApprovedException | None = None,
    ) -> dict[str, Any]:
        """One ASFF finding; `state` None means resolved since the baseline."""
        rule, run = self.rule, self.result.run
        account = self.accounts.get(account_id)
        observed = self._observed(account)
        uid = fingerprint(rule_id, arn)
        if state is None:
            workflow, record, compliance = "RESOLVED", "ARCHIVED", "PASSED"
        elif state is FindingState.EXCEPTED:
            workflow, record, compliance = "SUPPRESSED", "ACTIVE", "FAILED"
        else:
            workflow, record, compliance = "NEW", "ACTIVE", "FAILED"
        description = f"IAM user {user_name} ({arn}) in account {account_id} " + (
            "no longer has more than one active access key."
            if state is None
            else "has more than one active access key."
        )
        finding: dict[str, Any] = {
            "SchemaVersion": SCHEMA_VERSION,
            "Id": f"orgscan/{rule_id}/{uid}",
            "ProductArn": product_arn(self.partition, self.region, account_id),
            "ProductName": "orgscan",
            "CompanyName": "orgscan",
            "Region": self.region,
            "GeneratorId": f"orgscan/{rule_id}",
            "AwsAccountId": account_id,
            "Types": [FINDING_TYPE],
            "FirstObservedAt": observed,
            "LastObservedAt": observed,
            "CreatedAt": observed,
            "UpdatedAt": self.updated,
            "Severity": {"Label": rule.severity.upper(), "Original": rule.severity},
            # Where a finding provider's own severity and types belong (botocore's model).
            "FindingProviderFields": {
                "Severity": {"Label": rule.severity.upper(), "Original": rule.severity},
                "Types": [FINDING_TYPE],
            },
            "Title": rule.title,
            "Description": description,
            "Remediation": {
                "Recommendation": {
                    "Text": _clip(rule.remediation.summary, MAX_RECOMMENDATION),
                    "Url": rule.help_uri,
                }
            },
            "ProductFields": {
                "orgscan/RunId": run.id,
                "orgscan/OrganizationId": run.organization_id,
                "orgscan/Fingerprint": uid,
            },
            "Resources": _resources(
                self.partition, self.region, account_id, arn, user_name, self.users.get(arn)
            ),
            "Compliance": {"Status": compliance, "RelatedRequirements": self.requirements},
            "Workflow": {"Status": workflow},
            "RecordState": record,
        }
        if account is not None:
            finding["AwsAccountName"] = account.account.name
        if exception is not None:
            finding["Note"] = _note(exception, self.updated)
            finding["UserDefinedFields"] = {
                "orgscan/ExceptionOwner": exception.owner,
                "orgscan/ExceptionExpires": exception.expires.isoformat(),
                **({"orgscan/ExceptionTicket": exception.ticket} if exception.ticket else {}),
            }
        return finding


def findings(result: ScanResult) -> list[dict[str, Any]]:
    """Open and excepted findings, then those resolved since the baseline."""
    builder = _Findings(result)
    return [
        builder.finding(r.rule_id, r.account_id, r.user_name, r.arn, r.state, r.exception)
        for r in view.reported_findings(result)
    ]


class AsffRenderer(Renderer):
    filename = FILENAME

    def render(self, result: ScanResult) -> bytes:
        text = json.dumps(findings(result), indent=2, ensure_ascii=False)
        return (text + "\n").encode("utf-8")
