"""The management account: a caller in it, a delegated administrator elsewhere, remediation."""

from __future__ import annotations

import pytest

from orgscan.demo.faults import MANAGEMENT_ACCOUNT, Fault
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import ScanStatus
from orgscan.remediation.apply import Outcome, apply_plan
from orgscan.remediation.plan import Evidence, build_plan
from tests.conftest import config, run_scan, seed
from tests.reliability import running_as

ORG = OrgSpec(
    management_users=(UserSpec("break-glass", (ACTIVE, ACTIVE)),),
    accounts=(
        AccountSpec("security", "Root/Security", (UserSpec("siem", (ACTIVE,)),)),
        AccountSpec("prod", "Root/Prod", (UserSpec("deployer", (ACTIVE, ACTIVE)),)),
    ),
)


@pytest.fixture
def delegated(aws):
    """The caller is an IAM user of the security account, registered as a delegated
    administrator: Organizations answers it with the organization's data."""
    seeded = seed(aws, ORG)
    security = seeded.account_ids["security"]
    with running_as(security):
        aws.inject([Fault(account=security, delegated_admin=True)])
        yield seeded


# apply_plan is given the plan itself here; the CLI is what checks a plan against its evidence.
EVIDENCE = Evidence("findings.json", "0" * 64)


def by_name(result, seeded):
    names = {v: k for k, v in seeded.account_ids.items()}
    return {names[r.account.id]: r for r in result.accounts}


async def test_a_delegated_administrator_scans_the_whole_org_by_default(aws, delegated):
    management = delegated.management_account_id
    result = await run_scan()

    # DescribeOrganization names the management account for every caller in the organization.
    assert result.run.management_account_id == management
    assert result.run.caller_arn == (
        f"arn:aws:iam::{delegated.account_ids['security']}:user/orgscan-runner"
    )
    accounts = by_name(result, delegated)
    assert all(r.scan_status is ScanStatus.SCANNED for r in accounts.values())
    assert result.run.complete
    # The management account was entered through the audit role, like any other.
    assert aws.faults.calls[("AssumeRole", management)] == 1
    assert f"arn:aws:iam::{management}:role/OrgScanAudit" in aws.faults.assumed_roles
    assert {f.user_name for f in result.findings} == {"break-glass", "deployer"}


async def test_caller_mode_still_refuses_a_caller_outside_the_management_account(aws, delegated):
    result = await run_scan(config(organization={"management_account": "caller"}))
    management = by_name(result, delegated)["management"]
    assert management.error.code == "CallerNotInManagementAccount"
    assert "set it to 'auto' or 'assume'" in management.error.message
    assert not result.run.complete


async def test_a_missing_role_in_the_management_account_says_how_to_deploy_it(aws, delegated):
    management = delegated.management_account_id
    aws.inject(
        [
            Fault(account=delegated.account_ids["security"], delegated_admin=True),
            Fault(action="AssumeRole", account=management, error="AccessDenied"),
        ]
    )
    result = await run_scan()
    error = by_name(result, delegated)["management"].error
    assert error.code == "AccessDenied"
    role = f"arn:aws:iam::{management}:role/OrgScanAudit"
    assert f"enters the management account {management} through {role}" in error.message
    assert "StackSets never deploy" in error.message and "as a plain stack" in error.message
    assert f"sts:AssumeRole on {role}" in error.message


async def test_a_caller_in_the_management_account_still_uses_its_own_credentials(aws):
    seeded = seed(aws, ORG)
    result = await run_scan()
    assert by_name(result, seeded)["management"].scan_status is ScanStatus.SCANNED
    assert ("AssumeRole", MANAGEMENT_ACCOUNT) not in aws.faults.calls
    assert result.run.complete


async def test_remediation_in_the_management_account_assumes_the_remediation_role(aws, tmp_path):
    seeded = seed(aws, ORG)
    management = seeded.management_account_id
    settings = config()  # management_account: auto, and the caller is in the management account
    plan = build_plan(await run_scan(settings), EVIDENCE)
    aws.inject([])
    journal = await apply_plan(plan, settings, tmp_path / "journal.json")

    outcomes = {(e.account_id, e.outcome) for e in journal.entries}
    assert (management, Outcome.DEACTIVATED) in outcomes
    assert f"arn:aws:iam::{management}:role/OrgScanRemediation" in aws.faults.assumed_roles
    # Not one key was changed, nor read, with the caller's own credentials.
    assert not {"ListAccessKeys", "UpdateAccessKey", "GetAccessKeyLastUsed"} & set(
        aws.faults.caller_calls
    )
    # What the caller's own credentials did: who it is, the organization, and the roles.
    assert set(aws.faults.caller_calls) <= {
        "GetCallerIdentity",
        "DescribeOrganization",
        "ListRoots",
        "ListOrganizationalUnitsForParent",
        "ListAccountsForParent",
        "AssumeRole",
    }


async def test_remediation_refuses_the_management_account_without_its_role(aws, tmp_path):
    seeded = seed(aws, ORG)
    management = seeded.management_account_id
    settings = config()
    plan = build_plan(await run_scan(settings), EVIDENCE)
    aws.inject([Fault(action="AssumeRole", account=management, error="AccessDenied")])
    journal = await apply_plan(plan, settings, tmp_path / "journal.json")

    entries = [e for e in journal.entries if e.account_id == management]
    assert entries and all(e.outcome is Outcome.FAILED for e in entries)
    role = f"arn:aws:iam::{management}:role/OrgScanRemediation"
    assert f"sts:AssumeRole on {role}" in entries[0].reason
    assert "UpdateAccessKey" not in aws.faults.caller_calls
    # The member account's key was still deactivated through its own remediation role.
    prod = seeded.account_ids["prod"]
    assert {e.outcome for e in journal.entries if e.account_id == prod} == {Outcome.DEACTIVATED}


async def test_remediation_honours_a_config_that_skips_the_management_account(aws, tmp_path):
    """The remediation role is how orgscan enters the management account, not a reason to
    enter it: a config that skips that account keeps its keys out of an apply."""
    seeded = seed(aws, ORG)
    management = seeded.management_account_id
    plan = build_plan(await run_scan(config()), EVIDENCE)
    aws.inject([])
    skipping = config(organization={"management_account": "skip"})
    journal = await apply_plan(plan, skipping, tmp_path / "journal.jsonl")

    (entry,) = [e for e in journal.entries if e.account_id == management]
    assert entry.outcome is Outcome.SKIPPED
    assert "organization.management_account is 'skip'" in (entry.reason or "")
    assert f"arn:aws:iam::{management}:role/OrgScanRemediation" not in aws.faults.assumed_roles
    prod = seeded.account_ids["prod"]
    assert {e.outcome for e in journal.entries if e.account_id == prod} == {Outcome.DEACTIVATED}
