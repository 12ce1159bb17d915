"""`orgscan preflight`: checks without scanning, one line per problem, exit 0 only when clean."""

from __future__ import annotations

import boto3
import yaml
from typer.testing import CliRunner

from orgscan.aws.credentials import region_disabled_fix
from orgscan.cli import ExitCode, app
from orgscan.demo.faults import MANAGEMENT_ACCOUNT, Fault
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from tests.conftest import seed
from tests.reliability import running_as

ORG = OrgSpec(
    management_users=(UserSpec("ops", (ACTIVE,)),),
    accounts=tuple(
        AccountSpec(name, f"Root/{name.title()}", (UserSpec(f"u-{name}", (ACTIVE, ACTIVE)),))
        for name in ("security", "denied", "opted-out", "no-list")
    ),
)


def preflight(tmp_path, *extra: str, cfg: dict | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg or {"scan": {"account_rate_limit": 500}}))
    return CliRunner().invoke(app, ["preflight", "--config", str(path), *extra])


def problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("problem:")]


def test_a_ready_organization_passes_with_one_assume_role_and_one_list_users_each(aws, tmp_path):
    seeded = seed(aws, ORG)
    result = preflight(tmp_path)
    assert result.exit_code == ExitCode.CLEAN, result.output
    assert f"caller:   arn:aws:sts::{MANAGEMENT_ACCOUNT}:user/moto" in result.output
    assert f"sts:      region us-east-1, {aws.url}" in result.output
    assert "accounts: 5 in the organization, 5 to scan, 0 skipped" in result.output
    assert result.output.rstrip().endswith("no problem found; a scan now would be complete")
    members = set(seeded.account_ids.values()) - {seeded.management_account_id}
    calls = aws.faults.calls
    assert {a for (action, a) in calls if action == "AssumeRole"} == members
    assert all(calls[("AssumeRole", a)] == 1 for a in members)
    assert all(calls[("ListUsers", a)] == 1 for a in seeded.account_ids.values())
    # The root-key rule's fallback permission, new with that rule: one read each.
    assert all(calls[("GetAccountSummary", a)] == 1 for a in seeded.account_ids.values())
    # Nothing is scanned: no key is listed or read.
    assert {action for action, _ in calls} <= {
        "GetCallerIdentity",
        "DescribeOrganization",
        "ListRoots",
        "ListOrganizationalUnitsForParent",
        "ListAccountsForParent",
        "AssumeRole",
        "ListUsers",
        "GetAccountSummary",
    }


def test_a_role_without_the_root_rules_permission_is_told_to_update(aws, tmp_path):
    seeded = seed(aws, ORG)
    ids = seeded.account_ids
    aws.inject([Fault(action="GetAccountSummary", account=ids["no-list"], error="AccessDenied")])
    result = preflight(tmp_path)
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    (line,) = problems(result.output)
    assert ids["no-list"] in line
    assert "cannot call GetAccountSummary: AccessDenied" in line
    assert "grant it iam:GetAccountSummary, in the CountAccessKeys statement" in line
    # Without the root-key rule nothing needs it, and nothing asks for it.
    off = preflight(
        tmp_path,
        cfg={
            "scan": {"account_rate_limit": 500},
            "rules": {"root-access-key-present": {"enabled": False}},
        },
    )
    assert off.exit_code == ExitCode.CLEAN, off.output


def test_each_problem_is_one_line_with_its_fix_and_exit_3(aws, tmp_path, monkeypatch):
    seeded = seed(aws, ORG)
    monkeypatch.setenv("AWS_REGION", "eu-south-1")  # the endpoint stays moto's
    ids = seeded.account_ids
    aws.inject(
        [
            Fault(action="AssumeRole", account=ids["denied"], error="AccessDenied"),
            Fault(action="AssumeRole", account=ids["opted-out"], error="RegionDisabledException"),
            Fault(action="ListUsers", account=ids["no-list"], error="AccessDenied"),
        ]
    )
    result = preflight(tmp_path)
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    found = {line.split(" ")[2]: line for line in problems(result.output)}
    assert set(found) == {ids["denied"], ids["opted-out"], ids["no-list"]}
    assert all(". Fix: " in line for line in found.values())
    assert (
        f"cannot enter with arn:aws:iam::{ids['denied']}:role/OrgScanAudit: AccessDenied"
        in found[ids["denied"]]
    )
    assert "with the StackSet (deploy/cloudformation/orgscan-roles.yaml)" in found[ids["denied"]]
    assert "RegionDisabledException" in found[ids["opted-out"]]
    # The same advice as a scan's failure gives, word for word.
    assert found[ids["opted-out"]].endswith(
        f"Fix: {region_disabled_fix('eu-south-1', ids['opted-out'], 'aws')}"
    )
    assert "Security Token Service (STS)" in found[ids["opted-out"]]
    assert "AWS_REGION=us-east-1" in found[ids["opted-out"]]
    assert "cannot list IAM users: AccessDenied" in found[ids["no-list"]]
    assert "the CountAccessKeys statement of deploy/permissions.json" in found[ids["no-list"]]
    assert "preflight: 3 problem(s); a scan now would be INCOMPLETE" in result.output


def test_sample_checks_the_management_account_and_a_spread_of_others(aws, tmp_path):
    seed(aws, ORG)
    result = preflight(tmp_path, "--sample", "2")
    assert result.exit_code == ExitCode.CLEAN, result.output
    assert "checking 2 (a sample: the others may differ)" in result.output
    assert sum(n for (action, _), n in aws.faults.calls.items() if action == "ListUsers") == 2
    assert sum(n for (action, _), n in aws.faults.calls.items() if action == "AssumeRole") == 1


def test_include_states_without_active_is_a_warning_naming_the_key(aws, tmp_path):
    seed(aws, ORG)
    cfg = {"organization": {"include_states": ["PENDING_CLOSURE"]}}
    result = preflight(tmp_path, cfg=cfg)
    assert "warning:  organization.include_states is PENDING_CLOSURE: it leaves out ACTIVE" in (
        result.output
    )


def test_a_config_error_exits_2_before_any_call(aws, tmp_path):
    result = preflight(tmp_path, cfg={"organization": {"include_suspended": True}})
    assert result.exit_code == ExitCode.USAGE
    assert "organization.include_states" in result.output
    assert aws.faults.calls == {}


def test_a_delegated_administrator_without_the_delegation_policy_is_told_so(aws, tmp_path):
    seeded = seed(aws, ORG)
    security = seeded.account_ids["security"]
    with running_as(security):
        aws.inject([])  # Organizations answers the member account as if it had no organization
        result = preflight(tmp_path)
        assert result.exit_code == ExitCode.INCOMPLETE, result.output
        assert f"the caller's account {security} is not it (a delegated administrator)" in (
            result.output
        )
        (line,) = problems(result.output)
        assert "listing the organization failed" in line
        assert "deploy/organizations-delegation-policy.json" in line

        aws.inject([Fault(account=security, delegated_admin=True)])  # now delegated
        result = preflight(tmp_path)
        assert result.exit_code == ExitCode.CLEAN, result.output
        # The management account is entered through the audit role, like any member.
        assert aws.faults.calls[("AssumeRole", seeded.management_account_id)] == 1


def test_remediation_role_checked_on_request_including_the_management_account(aws, tmp_path):
    seeded = seed(aws, ORG)
    management = seeded.management_account_id
    aws.inject(
        [
            Fault(
                action="AssumeRole",
                account=management,
                error="AccessDenied",
            )
        ]
    )
    plain = preflight(tmp_path)
    assert plain.exit_code == ExitCode.CLEAN, plain.output  # the scan uses the caller's keys
    result = preflight(tmp_path, "--remediation")
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    (line,) = problems(result.output)
    assert f"arn:aws:iam::{management}:role/OrgScanRemediation" in line
    assert "as a plain stack (StackSets never deploy to the management account)" in line
    assert "EnableRemediationRole=true" in line
    # Only remediation would fail: the verdict says so, not that a scan would be incomplete.
    assert result.output.rstrip().endswith(
        "preflight: 1 problem(s); a scan now would be complete; orgscan remediate could not "
        "enter 1 account(s) with remediation.role_name"
    )
    assert "INCOMPLETE" not in result.output


def test_a_chained_caller_is_named_and_a_long_duration_warned(aws, tmp_path, monkeypatch):
    seed(aws, ORG)
    session = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{MANAGEMENT_ACCOUNT}:role/ci", RoleSessionName="ci-run"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", session["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", session["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", session["SessionToken"])
    result = preflight(tmp_path, "--sample", "1", cfg={"role": {"duration_seconds": 7200}})
    assert ":assumed-role/ci/ci-run" in result.output
    assert "a role session: each AssumeRole into an account is role chaining" in result.output
    assert "warning:  role.duration_seconds is 7200, above the 3600 s" in result.output
