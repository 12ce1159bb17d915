"""`orgscan preflight`: what a scan would meet, checked without scanning.

For the first contact with a real organization: the caller, access to Organizations, the STS
region, and in every account the scan would enter (or a sample of them) the audit role, with
AssumeRole and one `ListUsers MaxItems=1` (and, with the root-key rule, one GetAccountSummary:
the permission roles deployed before that rule lack), and the remediation role if asked. Each
problem comes with its fix. Nothing is changed anywhere, and no key is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from botocore.exceptions import NoCredentialsError, NoRegionError

from orgscan.accounts import AccountFilter, config_warnings
from orgscan.aws.clients import ClientFactory, region_hint
from orgscan.aws.credentials import (
    CHAINED_MAX_SECONDS,
    AccountCredentials,
    Credentials,
    Identity,
    RefreshableCredentials,
    caller_identity,
    region_disabled_fix,
    role_arn,
)
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.interfaces import OrganizationsReader
from orgscan.aws.management import management_session
from orgscan.aws.organizations import Organization, describe_organization, walk_accounts
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.collect.usage import Needs
from orgscan.config import Config
from orgscan.model import Account, AccountFailure

PERMISSIONS = "deploy/permissions.json"
TEMPLATE = "deploy/cloudformation/orgscan-roles.yaml"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that would leave a scan incomplete (or a remediation failing), and its fix."""

    where: str
    what: str
    fix: str
    remediation: bool = False  # only `orgscan remediate` would fail; a scan would not

    def line(self) -> str:
        return f"problem:  {self.where}: {self.what}. Fix: {self.fix}"


@dataclass(slots=True)
class Preflight:
    facts: list[str] = field(default_factory=list)  # what was found, one line each
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """No problem: a scan now would be complete (for the accounts checked), and so would
        remediation's entry, if it was checked."""
        return not self.problems

    def _verdict(self) -> str:
        if self.complete:
            return "preflight: no problem found; a scan now would be complete"
        remediation = sum(1 for p in self.problems if p.remediation)
        scan = len(self.problems) - remediation
        said = [f"preflight: {len(self.problems)} problem(s)"]
        said.append("a scan now would be INCOMPLETE" if scan else "a scan now would be complete")
        if remediation:
            said.append(
                f"orgscan remediate could not enter {remediation} account(s) with "
                "remediation.role_name"
            )
        return "; ".join(said)

    def lines(self) -> list[str]:
        verdict = self._verdict()
        return [
            *self.facts,
            *(f"warning:  {w}" for w in self.warnings),
            *(p.line() for p in self.problems),
            verdict,
        ]


def sample(accounts: list[Account], size: int | None, management_id: str) -> list[Account]:
    """`size` accounts spread over the listing, the management account first when in scope:
    it is the one most often set up differently (no StackSet, or the caller's own keys)."""
    if size is None or size >= len(accounts):
        return accounts
    first = [a for a in accounts if a.id == management_id][:size]
    rest = [a for a in accounts if a.id != management_id]
    wanted = size - len(first)
    return first + [rest[i * len(rest) // wanted] for i in range(wanted)]


def _describe(account: Account) -> str:
    return f"{account.id} ({account.name})"


def _principal(identity: Identity) -> str:
    """What a trust policy names for the caller: a role session's role, not the session."""
    if identity.chained:
        role = identity.arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
        return f"the role {role} of account {identity.account_id}"
    return identity.arn


def _failure(exc: Exception) -> tuple[str, str]:
    """Code and AWS's own message; orgscan's explanation of it is the problem's fix here."""
    if isinstance(exc, AccountFailure):
        cause = exc.__cause__
        return exc.error.code, error_message(cause) if cause else exc.error.message
    return error_code(exc), error_message(exc)


class _Checks:
    def __init__(
        self, config: Config, factory: ClientFactory, identity: Identity, org: Organization
    ) -> None:
        self.config = config
        self.factory = factory
        self.identity = identity
        self.org = org

    def _enter_fix(self, code: str, role: str, account: Account, purpose: str) -> str:
        if code == "RegionDisabledException":
            return region_disabled_fix(self.factory.region, account.id, self.identity.partition)
        if code == "CallerNotInManagementAccount":
            return "set organization.management_account: auto (the audit role there) or skip"
        if code == "ValidationError":
            return (
                "lower role.duration_seconds to at most the role's maximum session duration "
                f"({CHAINED_MAX_SECONDS} for a caller that is itself a role session)"
            )
        where = (
            "as a plain stack (StackSets never deploy to the management account)"
            if account.id == self.org.management_account_id
            else "with the StackSet"
        )
        external = (
            "; and check that role.external_id matches its trust policy"
            if self.config.role.external_id
            else ""
        )
        return (
            f"deploy {role} in the account {where} ({TEMPLATE}{purpose}), trusting "
            f"{_principal(self.identity)}, and allow that principal sts:AssumeRole on it "
            f"({PERMISSIONS}){external}"
        )

    async def audit_role(self, account: Account, credentials: AccountCredentials) -> list[Problem]:
        role = role_arn(self.identity, account.id, self.config.role.name)
        try:
            keys = await credentials.get(account.id)
        except Exception as exc:
            code, message = _failure(exc)
        else:
            return await self._list_users(account, keys, role)
        return [
            Problem(
                _describe(account),
                f"cannot enter with {role}: {code}: {message}",
                self._enter_fix(code, role, account, ""),
            )
        ]

    async def _list_users(
        self, account: Account, keys: Credentials | RefreshableCredentials | None, role: str
    ) -> list[Problem]:
        limiter = RateLimiter(self.config.scan.account_rate_limit)
        principal = role if keys is not None else f"the caller {self.identity.arn}"
        statement = "CountAccessKeys" if keys is not None else "ScanManagementAccountAsCaller"
        async with self.factory.client("iam", limiter, CallCounter(), keys) as iam:
            try:
                await iam.list_users(MaxItems=1)
            except Exception as exc:
                return [
                    Problem(
                        _describe(account),
                        f"{principal} cannot list IAM users: {error_code(exc)}: "
                        f"{error_message(exc)}",
                        f"grant it the {statement} statement of {PERMISSIONS} (iam:ListUsers "
                        "and the other IAM reads a scan makes)",
                    )
                ]
            if not Needs.of(self.config.rules).root_keys:
                return []
            try:
                await iam.get_account_summary()
            except Exception as exc:
                return [
                    Problem(
                        _describe(account),
                        f"{principal} cannot call GetAccountSummary: {error_code(exc)}: "
                        f"{error_message(exc)}; where the credential report cannot be had, the "
                        "root user's keys would be unknown",
                        f"grant it iam:GetAccountSummary, in the {statement} statement of "
                        f"{PERMISSIONS} since the root-key rule (update the deployed role), or "
                        "turn the rule off (rules.root-access-key-present.enabled: false)",
                    )
                ]
        return []

    async def remediation_role(
        self, account: Account, credentials: AccountCredentials
    ) -> list[Problem]:
        role = role_arn(self.identity, account.id, self.config.remediation.role_name)
        try:
            await credentials.get(account.id)
        except Exception as exc:
            code, message = _failure(exc)
        else:
            return []
        return [
            Problem(
                _describe(account),
                f"orgscan remediate cannot enter with {role}: {code}: {message}",
                self._enter_fix(code, role, account, " with EnableRemediationRole=true"),
                remediation=True,
            )
        ]


async def _organization(
    org: OrganizationsReader, config: Config, identity: Identity, result: Preflight
) -> tuple[Organization, list[Account], AccountFilter] | None:
    delegation = (
        "the management account must delegate Organizations' read calls to the caller's "
        "account: deploy/organizations-delegation-policy.json (deploy/README.md, 'A delegated "
        "administrator account')"
    )
    read = f"grant the caller the ReadOrganization statement of {PERMISSIONS}"
    try:
        organization = await describe_organization(org)
    except Exception as exc:
        result.problems.append(
            Problem(
                "organization",
                f"DescribeOrganization failed: {error_code(exc)}: {error_message(exc)}",
                f"run orgscan with credentials of an account in the organization; {read}",
            )
        )
        return None
    delegated = identity.account_id != organization.management_account_id
    result.facts.append(
        f"organization: {organization.id}, management account "
        f"{organization.management_account_id}; "
        + (
            f"the caller's account {identity.account_id} is not it (a delegated administrator)"
            if delegated
            else "the caller is in it"
        )
    )
    account_filter = AccountFilter(config.organization, organization.management_account_id)
    accounts: list[Account] = []
    try:
        async for account in walk_accounts(org):
            accounts.append(account)
    except Exception as exc:
        result.problems.append(
            Problem(
                "organization",
                f"listing the organization failed: {error_code(exc)}: {error_message(exc)}",
                f"{read}; {delegation}" if delegated else read,
            )
        )
        return None
    return organization, accounts, account_filter


async def preflight(
    config: Config, *, size: int | None = None, remediation: bool = False
) -> Preflight:
    """Check what a scan with `config` would meet. `size` checks a sample of the accounts.

    NoCredentialsError and NoRegionError propagate: they are setup errors, not findings.
    """
    result = Preflight()
    async with management_session(config.scan) as management:
        factory, org, sts = management.factory, management.organizations, management.sts
        try:
            identity = await caller_identity(sts)
        except (NoCredentialsError, NoRegionError):
            raise
        except Exception as exc:
            result.problems.append(
                Problem(
                    "caller",
                    f"GetCallerIdentity failed: {error_code(exc)}: {error_message(exc)}"
                    f"{region_hint(factory, exc)}",
                    "use valid credentials (AWS_PROFILE, aws sso login, or the CI's role)",
                )
            )
            return result
        result.facts.append(
            f"caller:   {identity.arn} (account {identity.account_id}, partition "
            f"{identity.partition})"
        )
        if identity.chained:
            result.facts.append(
                "          a role session: each AssumeRole into an account is role chaining, "
                f"which AWS caps at {CHAINED_MAX_SECONDS} s"
            )
            if config.role.duration_seconds > CHAINED_MAX_SECONDS:
                result.warnings.append(
                    f"role.duration_seconds is {config.role.duration_seconds}, above the "
                    f"{CHAINED_MAX_SECONDS} s that role chaining allows; set it to "
                    f"{CHAINED_MAX_SECONDS}"
                )
        configured = "" if factory.region_configured else " (no region configured: the default)"
        result.facts.append(
            f"sts:      region {factory.region}{configured}, {await factory.endpoint_url('sts')}; "
            "every AssumeRole goes there, so the region must be active in every account"
        )
        found = await _organization(org, config, identity, result)
        if found is None:
            return result
        organization, accounts, account_filter = found
        in_scope = [a for a in accounts if account_filter.skip_reason(a) is None]
        checked = sample(in_scope, size, organization.management_account_id)
        partly = " (a sample: the others may differ)" if checked != in_scope else ""
        result.facts.append(
            f"accounts: {len(accounts)} in the organization, {len(in_scope)} to scan, "
            f"{len(accounts) - len(in_scope)} skipped (by state or filter); checking "
            f"{len(checked)}{partly}"
        )
        result.warnings.extend(config_warnings(config) + account_filter.unmatched())

        checks = _Checks(config, factory, identity, organization)
        remediating = config.for_remediation()
        audit = AccountCredentials(
            sts,
            identity,
            config.role,
            config.organization.management_account,
            organization.management_account_id,
        )
        remediate = AccountCredentials(
            sts,
            identity,
            remediating.role,
            remediating.organization.management_account,
            organization.management_account_id,
        )
        cap = asyncio.Semaphore(config.scan.max_accounts_in_flight)

        async def check(account: Account) -> list[Problem]:
            async with cap:
                problems = await checks.audit_role(account, audit)
                if remediation:
                    problems += await checks.remediation_role(account, remediate)
                return problems

        for problems in await asyncio.gather(*(check(a) for a in checked)):
            result.problems.extend(problems)
    return result
