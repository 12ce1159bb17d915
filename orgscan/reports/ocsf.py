"""`findings.ocsf.jsonl`: one OCSF Compliance Finding (class 2003) per finding, one per line.

Built with py-ocsf-models (the models Prowler uses), so every event is checked against the
OCSF schema those models carry (1.5.0) before a byte is written. OCSF minor versions only add
attributes, so a 1.5.0 Compliance Finding is one that readers of 1.6 (the new Security Hub)
and Security Lake's custom sources (any OCSF 1.x class) accept.

Identity: `finding_info.uid` is the SARIF fingerprint, so a code-scanning alert and an OCSF
finding about the same user are one finding to whoever joins them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from py_ocsf_models import OCSF_VERSION
from py_ocsf_models.events.findings.activity_id import ActivityID
from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding
from py_ocsf_models.events.findings.compliance_finding_type_id import ComplianceFindingTypeID
from py_ocsf_models.events.findings.severity_id import SeverityID
from py_ocsf_models.events.findings.status_id import StatusID
from py_ocsf_models.objects.account import Account as OcsfAccount
from py_ocsf_models.objects.account import TypeID as AccountTypeID
from py_ocsf_models.objects.check import Check
from py_ocsf_models.objects.cloud import Cloud
from py_ocsf_models.objects.compliance import Compliance
from py_ocsf_models.objects.compliance_status import StatusID as ComplianceStatusID
from py_ocsf_models.objects.finding_info import FindingInformation
from py_ocsf_models.objects.metadata import Metadata
from py_ocsf_models.objects.organization import Organization
from py_ocsf_models.objects.product import Product
from py_ocsf_models.objects.remediation import Remediation
from py_ocsf_models.objects.resource_details import ResourceDetails

from orgscan.model import (
    AccountResult,
    ApprovedException,
    Change,
    Control,
    FindingState,
    ScanResult,
    UserKeys,
    iso,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, Rule, fingerprint, rule_by_id

FILENAME = "findings.ocsf.jsonl"
SCHEMA_VERSION = OCSF_VERSION
# The cloud profile adds the top-level `cloud` object, which the class itself does not model.
PROFILES = ["cloud"]

_SEVERITIES = {
    "informational": SeverityID.Informational,
    "low": SeverityID.Low,
    "medium": SeverityID.Medium,
    "high": SeverityID.High,
    "critical": SeverityID.Critical,
}


def requirement(control: Control) -> str:
    """A control as one string, `CIS AWS Foundations Benchmark v1.4.0 1.13`."""
    return f"{standard(control)} {control.id}"


def standard(control: Control) -> str:
    version = control.version
    return f"{control.framework} {version if version[:1].isalpha() else 'v' + version}"


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _exception_text(exception: ApprovedException) -> str:
    ticket = f", ticket {exception.ticket}" if exception.ticket else ""
    return (
        f"Excepted until {exception.expires.isoformat()} by {exception.owner}{ticket}: "
        f"{exception.reason}"
    )


def _resources(
    result: ScanResult, account_id: str, arn: str, user_name: str, user: UserKeys | None
) -> list[ResourceDetails]:
    partition = result.run.partition
    data: dict[str, object] = {"account_id": account_id}
    if user is not None:
        data |= {"path": user.path, "active_key_count": user.active_key_count}
    resources = [
        ResourceDetails(
            type="AWS::IAM::User", uid=arn, name=user_name, cloud_partition=partition, data=data
        )
    ]
    # The active keys are what the finding is about; their ids are not secrets.
    for key in user.access_keys if user is not None else ():
        if key.active and key.id:
            resources.append(
                ResourceDetails(
                    type="AWS::IAM::AccessKey",
                    uid=key.id,
                    cloud_partition=partition,
                    data={
                        "account_id": account_id,
                        "user_arn": arn,
                        "status": key.status,
                        "created": iso(key.created_at),
                        "last_used": iso(key.last_used_at),
                    },
                )
            )
    return resources


class _Events:
    """What every event of one result shares, computed once."""

    def __init__(self, result: ScanResult) -> None:
        self.result = result
        self.rule: Rule = rule_by_id(MULTIPLE_ACTIVE_KEYS)
        self.users = {user.arn: user for user in result.users}
        self.accounts = view.accounts_by_id(result)
        self.changes = {
            (c.rule_id, c.arn): c.change for c in (result.delta.findings if result.delta else [])
        }
        run = result.run
        self.time = _ms(run.finished_at or run.started_at)
        self.metadata = Metadata(
            product=Product(name="orgscan", vendor_name="orgscan", version=run.tool_version),
            version=SCHEMA_VERSION,
            profiles=PROFILES,
            log_name=f"orgscan/{run.organization_id}/{run.id}",
            log_provider="orgscan",
        )

    def event(
        self,
        rule_id: str,
        account_id: str,
        user_name: str,
        arn: str,
        state: FindingState | None,
        exception: ApprovedException | None = None,
    ) -> dict[str, Any]:
        """One Compliance Finding; `state` None means resolved since the baseline."""
        rule, run = self.rule, self.result.run
        change = self.changes.get((rule_id, arn))
        if state is None:
            activity, status = ActivityID.Close, StatusID.Resolved
        elif state is FindingState.EXCEPTED:
            activity, status = ActivityID.Update, StatusID.Suppressed
        else:
            activity = ActivityID.Update if change is Change.UNCHANGED else ActivityID.Create
            status = StatusID.New
        compliance_status = ComplianceStatusID.Pass if state is None else ComplianceStatusID.Fail
        severity = _SEVERITIES.get(rule.severity.lower(), SeverityID.Other)
        controls = self.result.controls
        standards = sorted({standard(c) for c in controls})
        account = self.accounts.get(account_id)
        account_name = account.account.name if account else account_id
        scanned = account.scanned_at if account and account.scanned_at else run.started_at
        uid = fingerprint(rule_id, arn)
        model = ComplianceFinding(
            activity_id=activity,
            activity_name=activity.name,
            class_name="Compliance Finding",  # the class's caption in the OCSF schema
            type_uid=ComplianceFindingTypeID(200300 + activity.value),
            type_name=f"Compliance Finding: {activity.name}",
            severity_id=severity,
            severity=severity.name,
            status_id=status,
            status=status.name,
            status_detail=_exception_text(exception) if exception else None,
            message=_message(user_name, account_id, arn, state),
            time=self.time,
            metadata=self.metadata.model_copy(update={"uid": f"{run.id}/{uid}"}),
            finding_info=FindingInformation(
                uid=uid,
                title=rule.title,
                desc=rule.short_description,
                types=[rule.id],
                src_url=rule.help_uri,
                last_seen_time=_ms(scanned),
                modified_time=self.time,
            ),
            compliance=Compliance(
                control=rule.id,
                desc=rule.short_description,
                standards=standards,
                requirements=[requirement(c) for c in controls],
                status_id=compliance_status,
                checks=[
                    Check(
                        uid=rule.id,
                        name=rule.title,
                        severity=severity.name,
                        severity_id=severity,
                        standards=standards,
                        status=compliance_status.name,
                        status_id=compliance_status,
                    )
                ],
            ),
            resources=_resources(self.result, account_id, arn, user_name, self.users.get(arn)),
            remediation=Remediation(
                desc=rule.remediation.summary, references=[r.url for r in rule.references]
            ),
            unmapped={"exception": view.exception_data(exception)} if exception else None,
        )
        data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
        data["cloud"] = self._cloud(account_id, account_name, account)
        return data

    def _cloud(
        self, account_id: str, account_name: str, account: AccountResult | None
    ) -> dict[str, Any]:
        run = self.result.run
        cloud = Cloud(
            provider="AWS",
            account=OcsfAccount(
                uid=account_id, name=account_name, type_id=AccountTypeID.AWS_Account
            ),
            org=Organization(
                uid=run.organization_id,
                ou_uid=account.account.ou_ids[-1] if account and account.account.ou_ids else None,
                ou_name=account.account.ou_path if account else None,
            ),
        )
        dumped: dict[str, Any] = cloud.model_dump(mode="json", exclude_none=True)
        return dumped


def _message(user_name: str, account_id: str, arn: str, state: FindingState | None) -> str:
    if state is None:
        return (
            f"IAM user {user_name} ({arn}) in account {account_id} no longer has more than one "
            "active access key"
        )
    return f"IAM user {user_name} ({arn}) in account {account_id} has more than one active key"


def events(result: ScanResult) -> list[dict[str, Any]]:
    """Open and excepted findings, then the findings resolved since the baseline."""
    builder = _Events(result)
    return [
        builder.event(r.rule_id, r.account_id, r.user_name, r.arn, r.state, r.exception)
        for r in view.reported_findings(result)
    ]


class OcsfRenderer(Renderer):
    filename = FILENAME

    def render(self, result: ScanResult) -> bytes:
        # ASCII only: a name with U+2028 must not split a line for readers that split on it.
        lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=True) for e in events(result)]
        return "".join(line + "\n" for line in lines).encode("ascii")
