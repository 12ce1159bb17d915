"""`findings.ocsf.jsonl`: one OCSF Compliance Finding (class 2003) per finding, one per line.

Each event is its rule's: title, description, severity, compliance (the controls that rule maps
to, no other) and remediation all come from the rule's data, and the resource is the one the
rule judges: the IAM user, the access key (with its user), or the account's root user.

Built with py-ocsf-models (the models Prowler uses), so every event is checked against the
OCSF schema those models carry (1.5.0) before a byte is written. OCSF minor versions only add
attributes, so a 1.5.0 Compliance Finding is one that readers of 1.6 (the new Security Hub)
and Security Lake's custom sources (any OCSF 1.x class) accept.

Identity: `finding_info.uid` is the SARIF fingerprint of the rule and resource, so a
code-scanning alert and an OCSF finding about the same resource are one finding to whoever
joins them.
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
    AccessKey,
    AccountResult,
    Change,
    Control,
    FindingState,
    ResourceType,
    ScanResult,
    iso,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.rules import Rule, fingerprint, rule_by_id

FILENAME = "findings.ocsf.jsonl"
SCHEMA_VERSION = OCSF_VERSION
# The cloud profile adds the top-level `cloud` object, which the class itself does not model.
PROFILES = ["cloud"]
# A resource's type as AWS names it: CloudFormation's for a user and a key, and AWS Config's
# (and Security Hub's control findings', e.g. IAM.4) for the account a root finding is about.
USER_TYPE = "AWS::IAM::User"
KEY_TYPE = "AWS::IAM::AccessKey"
ACCOUNT_TYPE = "AWS::::Account"

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


def _present(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _key_data(account_id: str, user_name: str, arn: str, key: AccessKey | None) -> dict[str, Any]:
    """An access key's evidence: its status, creation and last use, and where that was read.
    None when the key is no longer in the evidence (a finding resolved since the baseline)."""
    data: dict[str, Any] = {"account_id": account_id, "user_name": user_name, "user_arn": arn}
    if key is not None:
        data |= {
            "status": key.status,
            "created": iso(key.created_at),
            "last_used": iso(key.last_used_at),
            "last_used_service": key.last_used_service,
            "last_used_region": key.last_used_region,
            "last_used_source": key.last_used_source,
            "last_used_as_of": iso(key.last_used_as_of),
            "last_used_error": key.last_used_error.code if key.last_used_error else None,
            # A last use that was read and is empty: never used (not "unknown").
            "never_used": key.last_used_source is not None
            and key.last_used_at is None
            and key.last_used_error is None,
        }
    return _present(data)


class _Events:
    """What every event of one result shares, computed once."""

    def __init__(self, result: ScanResult) -> None:
        self.result = result
        self.users = {user.arn: user for user in result.users}
        self.accounts = view.accounts_by_id(result)
        self.changes = {
            (c.rule_id, c.resource_id): c.change
            for c in (result.delta.findings if result.delta else [])
        }
        self.thresholds = {rule.id: rule.thresholds for rule in result.run.rules}
        run = result.run
        self.time = _ms(run.finished_at or run.started_at)
        self.metadata = Metadata(
            product=Product(name="orgscan", vendor_name="orgscan", version=run.tool_version),
            version=SCHEMA_VERSION,
            profiles=PROFILES,
            log_name=f"orgscan/{run.organization_id}/{run.id}",
            log_provider="orgscan",
        )

    def _resources(self, found: view.Reported) -> list[ResourceDetails]:
        """The resource the finding is about first (its uid is the finding's resource id),
        then what it belongs to or holds."""
        partition = self.result.run.partition
        account_id, arn, name = found.account_id, found.arn, found.user_name
        if found.resource_type is ResourceType.ACCOUNT:
            account = self.accounts.get(account_id)
            root = account.root_keys if account else None
            data: dict[str, Any] = {"account_id": account_id}
            if root is not None:
                data |= _present(
                    {
                        "root_keys_present": root.present,
                        "root_keys_active": root.active,
                        "source": root.source,
                        "as_of": iso(root.as_of),
                    }
                )
            return [
                ResourceDetails(
                    type=ACCOUNT_TYPE, uid=arn, name=name, cloud_partition=partition, data=data
                )
            ]
        user = self.users.get(arn)
        user_data: dict[str, Any] = {"account_id": account_id}
        if user is not None:
            user_data |= _present({"path": user.path, "active_key_count": user.active_key_count})
        owner = ResourceDetails(
            type=USER_TYPE, uid=arn, name=name, cloud_partition=partition, data=user_data
        )
        keys = {key.id: key for key in user.access_keys if key.id} if user else {}
        if found.resource_type is ResourceType.ACCESS_KEY:
            key = ResourceDetails(
                type=KEY_TYPE,
                uid=found.resource_id,
                cloud_partition=partition,
                data=_key_data(account_id, name, arn, keys.get(found.resource_id)),
            )
            return [key, owner]
        # A user rule: the user, then its active keys, which are what the finding counts.
        return [owner] + [
            ResourceDetails(
                type=KEY_TYPE,
                uid=key_id,
                cloud_partition=partition,
                data=_key_data(account_id, name, arn, key),
            )
            for key_id, key in keys.items()
            if key.active
        ]

    def event(self, found: view.Reported) -> dict[str, Any]:
        """One Compliance Finding; `state` None means resolved since the baseline."""
        rule, run, state = rule_by_id(found.rule_id), self.result.run, found.state
        change = self.changes.get((found.rule_id, found.resource_id))
        if state is None:
            activity, status = ActivityID.Close, StatusID.Resolved
        elif state is FindingState.EXCEPTED:
            activity, status = ActivityID.Update, StatusID.Suppressed
        else:
            activity = ActivityID.Update if change is Change.UNCHANGED else ActivityID.Create
            status = StatusID.New
        compliance_status = ComplianceStatusID.Pass if state is None else ComplianceStatusID.Fail
        severity = _SEVERITIES.get(rule.severity.lower(), SeverityID.Other)
        controls = view.rule_controls(self.result, rule.id)
        standards = sorted({standard(c) for c in controls})
        account = self.accounts.get(found.account_id)
        account_name = account.account.name if account else found.account_id
        scanned = account.scanned_at if account and account.scanned_at else run.started_at
        uid = fingerprint(found.rule_id, found.resource_id)
        exception = found.exception
        unmapped: dict[str, Any] = {}
        if thresholds := self.thresholds.get(rule.id):
            unmapped["thresholds"] = dict(thresholds)
        if exception is not None:
            unmapped["exception"] = view.exception_data(exception)
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
            status_detail=view.exception_text(exception) if exception else None,
            message=_message(rule, found),
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
                standards=standards or None,
                requirements=[requirement(c) for c in controls] or None,
                status_id=compliance_status,
                checks=[
                    Check(
                        uid=rule.id,
                        name=rule.title,
                        severity=severity.name,
                        severity_id=severity,
                        standards=standards or None,
                        status=compliance_status.name,
                        status_id=compliance_status,
                    )
                ],
            ),
            resources=self._resources(found),
            remediation=Remediation(
                desc=rule.remediation.summary, references=[r.url for r in rule.references]
            ),
            unmapped=unmapped or None,
        )
        data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
        data["cloud"] = self._cloud(found.account_id, account_name, account)
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


def _message(rule: Rule, found: view.Reported) -> str:
    what = view.subject(found.resource_type, found.user_name, found.arn, found.resource_id)
    where = f"{what} in account {found.account_id}"
    if found.state is None:
        return f"Resolved since the baseline: {where} no longer fails {rule.id} ({rule.title})"
    return f"{rule.title}: {where}: {found.detail}"


def events(result: ScanResult) -> list[dict[str, Any]]:
    """Open and excepted findings, then the findings resolved since the baseline."""
    builder = _Events(result)
    return [builder.event(found) for found in view.reported_findings(result)]


class OcsfRenderer(Renderer):
    filename = FILENAME

    def render(self, result: ScanResult) -> bytes:
        # ASCII only: a name with U+2028 must not split a line for readers that split on it.
        lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=True) for e in events(result)]
        return "".join(line + "\n" for line in lines).encode("ascii")
