"""`orgscan publish-securityhub DIR`: a package's findings.asff.json into Security Hub CSPM.

Each finding goes into its own account (a custom integration's findings must), through a role
of its own there (`securityhub.role_name`, off by default), so the audit role stays read-only.
Accounts are imported one after another at Security Hub's documented rate.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from orgscan.aws.clients import ClientFactory
from orgscan.aws.credentials import AccountCredentials, caller_identity
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.aws.securityhub import RATE, AccountImport, for_region, import_findings
from orgscan.config import Config
from orgscan.model import AccountFailure
from orgscan.reports.asff import FILENAME
from orgscan.reports.manifest import check_package


class PublishError(Exception):
    """The package or the config cannot be published: a usage error."""


@dataclass(frozen=True, slots=True)
class Publication:
    region: str
    accounts: list[AccountImport]
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(a.failed == 0 and a.skipped == 0 for a in self.accounts)


# Without a baseline the package lists no resolved findings, so none is closed.
NO_DELTA = (
    "the package has no delta (the scan ran without --baseline): findings fixed since an "
    "earlier publish stay open in Security Hub; scan with --baseline to close them"
)


def checked(directory: Path) -> list[str]:
    """What `orgscan verify` checks, before anything is published; warnings, or PublishError
    when the package does not verify (findings.asff.json must say what findings.json says)."""
    check = check_package(directory)
    if check.problems:
        listed = "; ".join(check.problems[:5]) + ("; ..." if len(check.problems) > 5 else "")
        raise PublishError(
            f"{directory}: refusing to publish a package that does not verify "
            f"({len(check.problems)} problem(s): {listed}); see 'orgscan verify {directory}'"
        )
    if check.evidence is not None and check.evidence.delta is None:
        return [NO_DELTA]
    return []


def read_findings(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """The package's ASFF findings by account, in file order."""
    path = directory / FILENAME
    if not path.is_file():
        raise PublishError(
            f"{path} not found: write it with --formats asff (or all), or rebuild the package "
            "with 'orgscan report findings.json --formats asff'"
        )
    try:
        findings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PublishError(f"{path}: not JSON ({exc})") from None
    if not isinstance(findings, list):
        raise PublishError(f"{path}: expected a list of ASFF findings")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index, finding in enumerate(findings):
        account = finding.get("AwsAccountId") if isinstance(finding, dict) else None
        if not isinstance(account, str) or not account:
            raise PublishError(f"{path}: finding {index} has no AwsAccountId")
        grouped[account].append(finding)
    return dict(grouped)


def role_config(config: Config) -> Config:
    """The config that enters accounts with the Security Hub import role, or PublishError."""
    role = config.securityhub.role_name
    if role is None:
        raise PublishError(
            "securityhub.role_name: not set; publishing to Security Hub is off until the config "
            "names the import role deployed in each account (deploy/: EnableSecurityHubImportRole"
            "=true, default name OrgScanSecurityHubImport)"
        )
    return replace(
        config,
        role=replace(config.role, name=role),
        organization=replace(config.organization, management_account="assume"),
    )


async def publish(config: Config, directory: Path) -> Publication:
    settings = role_config(config)
    warnings = checked(directory)
    by_account = read_findings(directory)
    try:
        done = await _publish(settings, by_account)
    except NoCredentialsError:
        raise PublishError(
            "no AWS credentials found; set AWS_PROFILE, AWS_ACCESS_KEY_ID or use SSO"
        ) from None
    except NoRegionError:
        raise PublishError("no AWS region configured; set AWS_REGION") from None
    return replace(done, warnings=warnings)


async def _publish(settings: Config, by_account: dict[str, list[dict[str, Any]]]) -> Publication:
    factory = ClientFactory(settings.scan)
    calls = CallCounter()
    async with factory, factory.client("sts", RateLimiter(RATE), calls) as sts:
        identity = await caller_identity(sts)
        credentials = AccountCredentials(
            sts,
            identity,
            settings.role,
            settings.organization.management_account,
            identity.account_id,
        )
        # One limiter for the whole run: Security Hub's rate is per account and region, and
        # one shared pace keeps every account under it.
        limiter = RateLimiter(RATE)
        results = []
        for account_id, findings in sorted(by_account.items()):
            findings = [for_region(f, identity.partition, factory.region) for f in findings]
            try:
                creds = await credentials.get(account_id)
                async with factory.client("securityhub", limiter, calls, creds) as hub:
                    results.append(await import_findings(hub, account_id, findings))
            except AccountFailure as exc:
                reason = f"{exc.error.code}: {exc.error.message}"
                results.append(AccountImport(account_id, failed=len(findings), errors=[reason]))
            except (ClientError, BotoCoreError) as exc:
                reason = f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
                results.append(AccountImport(account_id, failed=len(findings), errors=[reason]))
        return Publication(factory.region, results)
