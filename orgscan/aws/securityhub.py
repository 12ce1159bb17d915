"""The one place orgscan calls Security Hub: BatchImportFindings, within its documented limits.

BatchImportFindings takes at most 100 findings and 6 MB per call and admits 10 requests per
second with a burst of 30; the caller paces calls with a RateLimiter at that rate and botocore's
standard retries take care of throttles. A custom integration's findings must be imported in
(or for) their own account, into the region named by their ProductArn.
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
RATE = 10.0  # requests per second (burst 30): RateLimiter stays under both
NOT_ENABLED = "InvalidAccessException"


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
        done.imported += int(answer.get("SuccessCount", 0))
        done.failed += int(answer.get("FailedCount", 0))
        done.errors += [
            f"{f.get('Id', '?')}: {f.get('ErrorCode', '?')}: {f.get('ErrorMessage', '')}"
            for f in answer.get("FailedFindings", [])
        ]
    return done
