"""The one place orgscan calls Security Hub: BatchImportFindings and BatchUpdateFindings,
within their documented limits.

BatchImportFindings takes at most 100 findings and 6 MB per call and admits 10 requests per
second with a burst of 30; the caller paces calls with a RateLimiter at that rate and botocore's
standard retries take care of throttles. A custom integration's findings must be imported in
(or for) their own account, into the region named by their ProductArn.

Once a finding exists, BatchImportFindings no longer changes its Workflow or Note, and a
SUPPRESSED finding is no longer updated at all (botocore's model). So after each import,
BatchUpdateFindings sets every imported finding's Workflow.Status and Note to what this run says:
a finding excepted since its first import becomes SUPPRESSED, one whose exception expired goes
back to NEW (its other fields catch up on the next import), a resolved one becomes RESOLVED.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from orgscan.aws.errors import error_code, error_message
from orgscan.aws.interfaces import SecurityHubImporter

MAX_FINDINGS = 100
MAX_BYTES = 6 * 1024 * 1024
MAX_UPDATE = 100  # BatchUpdateFindings: at most 100 finding identifiers per call
RATE = 10.0  # requests per second (burst 30): RateLimiter stays under both
NOT_ENABLED = "InvalidAccessException"
# BatchImportFindings answers "not enabled" per finding too, in FailedFindings.
NOT_ENABLED_CODES = (NOT_ENABLED, "InvalidAccess")
# The Note set on findings without an exception, so an expired exception's note does not stay.
NOTES = {
    "NEW": "Open: no approved exception applies.",
    "RESOLVED": "Resolved: no longer found since the baseline.",
}


@dataclass(slots=True)
class AccountImport:
    """What one account's import came to."""

    account_id: str
    imported: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _size(finding: dict[str, Any]) -> int:
    return len(json.dumps(finding, separators=(",", ":"), ensure_ascii=False).encode())


def batches(findings: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive batches of at most MAX_FINDINGS findings and MAX_BYTES of JSON each."""
    out: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    size = len(b'{"Findings":[]}')
    for finding in findings:
        cost = _size(finding) + 1  # and its comma
        if batch and (len(batch) == MAX_FINDINGS or size + cost > MAX_BYTES):
            out.append(batch)
            batch, size = [], len(b'{"Findings":[]}')
        batch.append(finding)
        size += cost
    if batch:
        out.append(batch)
    return out


def for_region(finding: dict[str, Any], partition: str, region: str) -> dict[str, Any]:
    """The finding as imported into `region`: its ProductArn and Region name that region."""
    account = finding["AwsAccountId"]
    product = f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"
    resources = [{**r, "Region": region} for r in finding.get("Resources", [])]
    return {**finding, "ProductArn": product, "Region": region, "Resources": resources}


def updates(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BatchUpdateFindings requests setting each finding's Workflow.Status and Note, grouped by
    the two (one request sets them alike for all its findings), at most MAX_UPDATE per call."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for finding in findings:
        status = finding["Workflow"]["Status"]
        note = finding.get("Note", {}).get("Text") or NOTES.get(status, "")
        ident = {"Id": finding["Id"], "ProductArn": finding["ProductArn"]}
        groups.setdefault((status, note), []).append(ident)
    return [
        {
            "FindingIdentifiers": idents[i : i + MAX_UPDATE],
            "Workflow": {"Status": status},
            "Note": {"Text": note, "UpdatedBy": "orgscan"},
        }
        for (status, note), idents in groups.items()
        for i in range(0, len(idents), MAX_UPDATE)
    ]


async def _update(
    hub: SecurityHubImporter, done: AccountImport, imported: list[dict[str, Any]]
) -> None:
    """Set the imported findings' workflow; a finding it fails for counts as failed."""
    for request in updates(imported):
        try:
            answer = await hub.batch_update_findings(**request)
        except ClientError as exc:
            count = len(request["FindingIdentifiers"])
            done.imported -= count
            done.failed += count
            done.errors.append(f"workflow not set: {error_code(exc)}: {error_message(exc)}")
            continue
        for miss in answer.get("UnprocessedFindings", []):
            done.imported -= 1
            done.failed += 1
            ident = miss.get("FindingIdentifier", {})
            done.errors.append(
                f"{ident.get('Id', '?')}: workflow not set: {miss.get('ErrorCode', '?')}: "
                f"{miss.get('ErrorMessage', '')}"
            )


async def import_findings(
    hub: SecurityHubImporter, account_id: str, findings: list[dict[str, Any]]
) -> AccountImport:
    """Every finding of one account, batch by batch. Security Hub not enabled there skips
    the rest of the account; any other error fails that batch and the next one is tried."""
    done = AccountImport(account_id)
    pending = batches(findings)
    for index, batch in enumerate(pending):
        try:
            answer = await hub.batch_import_findings(Findings=batch)
        except ClientError as exc:
            if error_code(exc) == NOT_ENABLED:
                done.skipped += sum(len(b) for b in pending[index:])
                done.errors.append(f"Security Hub not enabled: {error_message(exc)}")
                return done
            done.failed += len(batch)
            done.errors.append(f"{error_code(exc)}: {error_message(exc)}")
            continue
        failures = answer.get("FailedFindings", [])
        for failure in failures:
            reason = f"{failure.get('ErrorCode', '?')}: {failure.get('ErrorMessage', '')}"
            if failure.get("ErrorCode") in NOT_ENABLED_CODES:
                done.skipped += 1
                done.errors.append(f"{failure.get('Id', '?')}: Security Hub not enabled: {reason}")
            else:
                done.failed += 1
                done.errors.append(f"{failure.get('Id', '?')}: {reason}")
        rejected = {f.get("Id") for f in failures}
        imported = [f for f in batch if f["Id"] not in rejected]
        done.imported += len(imported)
        await _update(hub, done, imported)
    return done
