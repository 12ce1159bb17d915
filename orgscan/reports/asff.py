"""`findings.asff.json`: the findings in the AWS Security Finding Format, for Security Hub CSPM.

The file is the `Findings` list that BatchImportFindings takes, one finding per finding plus
one per finding resolved since the baseline (RecordState ARCHIVED, so Security Hub closes the
one it holds). `Id` is the SARIF fingerprint of the rule and resource, under the rule, so a
later scan updates the same Security Hub finding instead of adding one.

Everything else is the finding's rule's: GeneratorId names it; Title, Severity, Types,
Remediation and Compliance.RelatedRequirements come from its data and its own controls; and
Resources lead with what it judges: AwsIamUser, AwsIamAccessKey (then its user), or AwsAccount
for the root user, with the Id Security Hub's own IAM.4 findings give an account.

Security Hub is regional and IAM is global; findings.json records no region, so the file
names the partition's IAM home region (us-east-1 in `aws`), where Security Hub evaluates IAM.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orgscan.model import (
    AccessKey,
    AccountResult,
    ApprovedException,
    Control,
    FindingState,
    ResourceType,
    ScanResult,
    iso,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.reports.ocsf import standard
from orgscan.rules import fingerprint, rule_by_id

FILENAME = "findings.asff.json"
SCHEMA_VERSION = "2018-10-08"
# Where IAM, a global service, is homed in each partition.
HOME_REGIONS = {"aws": "us-east-1", "aws-us-gov": "us-gov-west-1", "aws-cn": "cn-north-1"}
# ASFF's documented limits for the fields we fill.
MAX_NOTE = 512
MAX_RECOMMENDATION = 512
MAX_DESCRIPTION = 1024
MAX_REQUIREMENTS = 32  # Compliance.RelatedRequirements
# ASFF's Types taxonomy: the classifier of each framework controls.yaml maps to. A framework
# without one adds no type; a rule mapped to none is a best-practice check.
STANDARDS = "Software and Configuration Checks/Industry and Regulatory Standards/"
BEST_PRACTICES = "Software and Configuration Checks/AWS Security Best Practices"
FRAMEWORK_TYPES = {
    "CIS AWS Foundations Benchmark": "CIS AWS Foundations Benchmark",
    "NIST SP 800-53": "NIST 800-53 Controls (USA)",
    "NIST Cybersecurity Framework": "NIST CSF Controls (USA)",
}


def home_region(partition: str) -> str:
    return HOME_REGIONS.get(partition, "us-east-1")


def product_arn(partition: str, region: str, account_id: str) -> str:
    """A custom integration's product: the account's own `default` product."""
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _note(exception: ApprovedException, at: str) -> dict[str, str]:
    text = view.exception_text(exception)
    return {"Text": _clip(text, MAX_NOTE), "UpdatedBy": "orgscan", "UpdatedAt": at}


def finding_types(controls: list[Control]) -> list[str]:
    """ASFF's Types for a rule: one per framework its controls come from, in mapping order."""
    types: list[str] = []
    for control in controls:
        classifier = FRAMEWORK_TYPES.get(control.framework)
        if classifier is not None and STANDARDS + classifier not in types:
            types.append(STANDARDS + classifier)
    return types or [BEST_PRACTICES]


def _text(data: dict[str, object]) -> dict[str, str]:
    """A string map (ProductFields, Details.Other) without the members that have no value."""
    return {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in data.items()
        if v is not None
    }


class _Findings:
    def __init__(self, result: ScanResult) -> None:
        self.result = result
        self.users = {user.arn: user for user in result.users}
        self.accounts = view.accounts_by_id(result)
        self.thresholds = {rule.id: rule.thresholds for rule in result.run.rules}
        run = result.run
        self.partition = run.partition
        self.region = home_region(run.partition)
        self.updated = iso(run.finished_at or run.started_at) or ""

    def _observed(self, account: AccountResult | None) -> str:
        start = self.result.run.started_at
        at: datetime = account.scanned_at if account and account.scanned_at else start
        return iso(at) or ""

    def _resource(self, kind: str, resource_id: str, details: dict[str, Any]) -> dict[str, Any]:
        return {
            "Type": kind,
            "Id": resource_id,
            "Partition": self.partition,
            "Region": self.region,
            "Details": details,
        }

    def _key(self, found: view.Reported, key_id: str, key: AccessKey | None) -> dict[str, Any]:
        # PrincipalName, not the deprecated UserName; a key no longer in the evidence (resolved
        # since the baseline) is named by its id alone.
        details: dict[str, str] = {
            "AccessKeyId": key_id,
            "PrincipalName": found.user_name,
            "PrincipalType": "IAMUser",
            "AccountId": found.account_id,
        }
        if key is not None:
            details["Status"] = key.status
            if key.created_at is not None:
                details["CreatedAt"] = iso(key.created_at) or ""
        return self._resource("AwsIamAccessKey", key_id, {"AwsIamAccessKey": details})

    def _user_key(self, found: view.Reported) -> AccessKey | None:
        user = self.users.get(found.arn)
        keys = user.access_keys if user is not None else ()
        return next((key for key in keys if key.id == found.resource_id), None)

    def resources(self, found: view.Reported) -> list[dict[str, Any]]:
        """The resource the finding is about first, then what it belongs to or holds."""
        if found.resource_type is ResourceType.ACCOUNT:
            account = self.accounts.get(found.account_id)
            root = account.root_keys if account else None
            other = {"RootUserArn": found.arn}
            if root is not None:
                other |= _text(
                    {
                        "RootAccessKeysPresent": root.present,
                        "RootAccessKeysActive": root.active,
                        "Source": root.source,
                        "AsOf": iso(root.as_of),
                    }
                )
            return [
                self._resource("AwsAccount", f"AWS::::Account:{found.account_id}", {"Other": other})
            ]
        user = self.users.get(found.arn)
        user_details: dict[str, str] = {"UserName": found.user_name}
        if user is not None:
            user_details["Path"] = user.path
        owner = self._resource("AwsIamUser", found.arn, {"AwsIamUser": user_details})
        if found.resource_type is ResourceType.ACCESS_KEY:
            return [self._key(found, found.resource_id, self._user_key(found)), owner]
        # A user rule: the user, then its active keys, which are what the finding counts.
        active = [k for k in (user.access_keys if user else ()) if k.active and k.id]
        return [owner] + [self._key(found, key.id or "", key) for key in active]

    def _key_evidence(self, found: view.Reported) -> dict[str, str]:
        """A key's last use, which ASFF's AwsIamAccessKey has no member for."""
        key = self._user_key(found) if found.resource_type is ResourceType.ACCESS_KEY else None
        if key is None or key.last_used_source is None:
            return {}
        return _text(
            {
                "orgscan/KeyLastUsedAt": iso(key.last_used_at)
                or ("unknown" if key.last_used_error else "never"),
                "orgscan/KeyLastUsedSource": key.last_used_source,
                "orgscan/KeyLastUsedAsOf": iso(key.last_used_as_of),
            }
        )

    def finding(self, found: view.Reported) -> dict[str, Any]:
        """One ASFF finding; `state` None means resolved since the baseline."""
        rule, run, state = rule_by_id(found.rule_id), self.result.run, found.state
        account = self.accounts.get(found.account_id)
        observed = self._observed(account)
        uid = fingerprint(found.rule_id, found.resource_id)
        controls = view.rule_controls(self.result, rule.id)
        types = finding_types(controls)
        if state is None:
            workflow, record, compliance = "RESOLVED", "ARCHIVED", "PASSED"
        elif state is FindingState.EXCEPTED:
            workflow, record, compliance = "SUPPRESSED", "ACTIVE", "FAILED"
        else:
            workflow, record, compliance = "NEW", "ACTIVE", "FAILED"
        what = view.subject(found.resource_type, found.user_name, found.arn, found.resource_id)
        where = f"{what} in account {found.account_id}"
        description = (
            f"{where} no longer fails {rule.id}: {rule.title}."
            if state is None
            else f"{where}: {found.detail}."
        )
        severity = {"Label": rule.severity.upper(), "Original": rule.severity}
        thresholds = self.thresholds.get(rule.id, {})
        requirements = [f"{standard(c)}/{c.id}" for c in controls][:MAX_REQUIREMENTS]
        finding: dict[str, Any] = {
            "SchemaVersion": SCHEMA_VERSION,
            "Id": f"orgscan/{rule.id}/{uid}",
            "ProductArn": product_arn(self.partition, self.region, found.account_id),
            "ProductName": "orgscan",
            "CompanyName": "orgscan",
            "Region": self.region,
            "GeneratorId": f"orgscan/{rule.id}",
            "AwsAccountId": found.account_id,
            "Types": types,
            "FirstObservedAt": observed,
            "LastObservedAt": observed,
            "CreatedAt": observed,
            "UpdatedAt": self.updated,
            "Severity": severity,
            # Where a finding provider's own severity and types belong (botocore's model).
            "FindingProviderFields": {"Severity": dict(severity), "Types": list(types)},
            "Title": rule.title,
            "Description": _clip(description, MAX_DESCRIPTION),
            "Remediation": {
                "Recommendation": {
                    "Text": _clip(rule.remediation.summary, MAX_RECOMMENDATION),
                    "Url": rule.help_uri,
                }
            },
            "ProductFields": {
                "orgscan/RunId": run.id,
                "orgscan/OrganizationId": run.organization_id,
                "orgscan/RuleId": rule.id,
                "orgscan/ResourceType": found.resource_type.value,
                "orgscan/ResourceId": found.resource_id,
                "orgscan/Fingerprint": uid,
                **{f"orgscan/Threshold/{name}": str(value) for name, value in thresholds.items()},
                **self._key_evidence(found),
            },
            "Resources": self.resources(found),
            "Compliance": {"Status": compliance},
            "Workflow": {"Status": workflow},
            "RecordState": record,
        }
        if requirements:
            finding["Compliance"]["RelatedRequirements"] = requirements
        if account is not None:
            finding["AwsAccountName"] = account.account.name
        if found.exception is not None:
            exception = found.exception
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
    return [builder.finding(found) for found in view.reported_findings(result)]


class AsffRenderer(Renderer):
    filename = FILENAME

    def render(self, result: ScanResult) -> bytes:
        text = json.dumps(findings(result), indent=2, ensure_ascii=False)
        return (text + "\n").encode("utf-8")
