"""Deployment artefacts: deploy/ and the GitHub workflow agree with permissions.json and the code.

deploy/permissions.json is the one source of truth for permissions. The CloudFormation template,
the Terraform module and the management policy must grant exactly its statements. The scanner,
run against moto with both strategies, must send no action that it lacks, and the audit role
must grant no action that the scanner does not send.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name

from orgscan.config import parse_config
from orgscan.demo.faults import MANAGEMENT_ACCOUNT, Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import RootKeySource
from tests.conftest import config, run_scan, seed

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "cloudformation" / "orgscan-roles.yaml"
TERRAFORM = DEPLOY / "terraform"
MANAGEMENT_POLICY = DEPLOY / "management-policy.json"
DELEGATION_POLICY = DEPLOY / "organizations-delegation-policy.json"
WORKFLOW = ROOT / ".github" / "workflows" / "orgscan-sweep.yml"
PERMISSIONS: dict[str, Any] = json.loads((DEPLOY / "permissions.json").read_text())

# Every AWS operation orgscan sends, by the name the fault layer records, and the IAM action that
# authorises it. An operation missing here fails the tests below: add it, then grant it in
# deploy/permissions.json and in every artefact.
IAM_ACTIONS = {
    "DescribeOrganization": "organizations:DescribeOrganization",
    "ListRoots": "organizations:ListRoots",
    "ListOrganizationalUnitsForParent": "organizations:ListOrganizationalUnitsForParent",
    "ListAccountsForParent": "organizations:ListAccountsForParent",
    "AssumeRole": "sts:AssumeRole",
    "GetCallerIdentity": "sts:GetCallerIdentity",
    "ListUsers": "iam:ListUsers",
    "ListAccessKeys": "iam:ListAccessKeys",
    "GetAccessKeyLastUsed": "iam:GetAccessKeyLastUsed",
    "GenerateCredentialReport": "iam:GenerateCredentialReport",
    "GetCredentialReport": "iam:GetCredentialReport",
    "GetAccountSummary": "iam:GetAccountSummary",
    "UpdateAccessKey": "iam:UpdateAccessKey",
    "Publish": "sns:Publish",  # orgscan watch's Lambda (tests/test_deploy_watch.py)
    "BatchImportFindings": "securityhub:BatchImportFindings",  # orgscan publish-securityhub
    "BatchUpdateFindings": "securityhub:BatchUpdateFindings",  # its Workflow and Note
}
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}

# Two-key users in the management account and in members, so GetAccessKeyLastUsed is sent in both.
ORG = OrgSpec(
    management_users=(UserSpec("mgmt-ci", (ACTIVE, ACTIVE)), UserSpec("mgmt-ops", (ACTIVE,))),
    accounts=(
        AccountSpec(
            "prod",
            "Root/Prod",
            (UserSpec("deployer", (ACTIVE, ACTIVE)), UserSpec("etl", (ACTIVE, INACTIVE))),
        ),
        AccountSpec("dev", "Root/Dev/Team", (UserSpec("dev", (ACTIVE, ACTIVE), "/engineering/"),)),
        AccountSpec("empty", "Root"),
    ),
)

Statements = dict[str, tuple[frozenset[str], frozenset[str]]]  # Sid → (actions, resources)


def listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def expected(principal: str) -> Statements:
    return {
        sid: (frozenset(s["actions"]), frozenset(s["resources"]))
        for sid, s in PERMISSIONS[principal]["statements"].items()
    }


def granted(principal: str, sid: str | None = None) -> set[str]:
    return {
        action
        for name, (actions, _) in expected(principal).items()
        if sid in (None, name)
        for action in actions
    }


# --- CloudFormation ---------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """PyYAML with CloudFormation's short-form intrinsics (!Ref, !Sub, ...) as long-form dicts."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def cfn_resource(value: Any) -> str:
    if isinstance(value, str):
        return value
    assert set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str), value
    return (
        value["Fn::Sub"]
        .replace("${AWS::Partition}", "${Partition}")
        .replace("${AWS::AccountId}", "${AccountId}")
    )


def cfn_statements(
    template: dict[str, Any],
    logical_id: str,
    principal: str,
    resource: Callable[[Any], str] = cfn_resource,
) -> Statements:
    """A role's inline policy as {Sid: (actions, resources)}; `resource` reads a template's
    resource values into permissions.json's placeholders (each template names its own)."""
    properties = template["Resources"][logical_id]["Properties"]
    assert "ManagedPolicyArns" not in properties, "permissions come from permissions.json only"
    assert "PermissionsBoundary" not in properties
    (policy,) = properties["Policies"]
    assert policy["PolicyName"] == PERMISSIONS[principal]["policy_name"]
    statements: Statements = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}, statement
        assert statement["Effect"] == "Allow"
        statements[statement["Sid"]] = (
            frozenset(listify(statement["Action"])),
            frozenset(resource(r) for r in listify(statement["Resource"])),
        )
    return statements


# --- Terraform --------------------------------------------------------------------------------


def _unquote(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of string literals ('"x"'); older versions do not."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not k.startswith("__")}
    return value


@pytest.fixture(scope="module")
def terraform() -> dict[str, dict[str, dict[str, Any]]]:
    return terraform_blocks(TERRAFORM)


def terraform_blocks(directory: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Every block of the module in `directory`: {kind: {"type.name": body}}."""
    hcl2 = pytest.importorskip(
        "hcl2", reason="python-hcl2 is not installed; pip install python-hcl2"
    )
    blocks: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as file:
            document = _unquote(hcl2.load(file))
        for kind in ("resource", "data"):
            for entry in document.get(kind, []):
                for type_, named in entry.items():
                    for name, body in named.items():
                        blocks.setdefault(kind, {})[f"{type_}.{name}"] = body
        for kind in ("variable", "output"):
            for entry in document.get(kind, []):
                blocks.setdefault(kind, {}).update(entry)
        for entry in document.get("locals", []):
            blocks.setdefault("locals", {}).update(entry)
        if "terraform" in document:
            blocks["terraform"] = {"settings": document["terraform"][0]}
    return blocks


def tf_resource(value: str, locals_: dict[str, Any]) -> str:
    if value.startswith("${local.") and value.endswith("}"):
        value = locals_[value[len("${local.") : -1]]
    return value.replace("${data.aws_partition.current.partition}", "${Partition}").replace(
        "${data.aws_caller_identity.current.account_id}", "${AccountId}"
    )


def tf_statements(tf: dict[str, Any], role: str, principal: str) -> Statements:
    attachment = tf["resource"][f"aws_iam_role_policy.{role}"]
    assert attachment["name"] == PERMISSIONS[principal]["policy_name"]
    assert attachment["role"].startswith(f"${{aws_iam_role.{role}")
    reference = attachment["policy"]  # "${data.aws_iam_policy_document.<name>.json}"
    assert reference.startswith("${data.") and reference.endswith(".json}"), reference
    document = tf["data"][reference.removeprefix("${data.").removesuffix(".json}")]
    statements: Statements = {}
    for statement in document["statement"]:
        assert set(statement) == {"sid", "effect", "actions", "resources"}, statement
        assert statement["effect"] == "Allow"
        statements[statement["sid"]] = (
            frozenset(statement["actions"]),
            frozenset(tf_resource(r, tf.get("locals", {})) for r in statement["resources"]),
        )
    return statements


# --- The artefacts grant exactly permissions.json ---------------------------------------------


@pytest.mark.parametrize(
    ("logical_id", "principal"),
    [
        ("AuditRole", "audit_role"),
        ("RemediationRole", "remediation_role"),
        ("SecurityHubImportRole", "securityhub_import_role"),
    ],
)
def test_cloudformation_grants_exactly_permissions_json(template, logical_id, principal):
    assert cfn_statements(template, logical_id, principal) == expected(principal)


def test_cloudformation_creates_only_the_three_roles(template):
    assert {r["Type"] for r in template["Resources"].values()} == {"AWS::IAM::Role"}
    assert set(template["Resources"]) == {"AuditRole", "RemediationRole", "SecurityHubImportRole"}


@pytest.mark.parametrize(
    ("role", "principal"),
    [
        ("audit", "audit_role"),
        ("remediation", "remediation_role"),
        ("securityhub_import", "securityhub_import_role"),
    ],
)
def test_terraform_grants_exactly_permissions_json(terraform, role, principal):
    assert tf_statements(terraform, role, principal) == expected(principal)


def test_terraform_creates_only_the_three_roles_and_their_inline_policies(terraform):
    roles = ("audit", "remediation", "securityhub_import")
    assert set(terraform["resource"]) == {
        f"aws_iam_{kind}.{role}" for role in roles for kind in ("role", "role_policy")
    }
    for name in (f"aws_iam_role.{role}" for role in roles):
        role = terraform["resource"][name]
        assert not {"managed_policy_arns", "inline_policy", "permissions_boundary"} & set(role)


def test_terraform_module_declares_its_provider_and_outputs(terraform):
    (providers,) = terraform["terraform"]["settings"]["required_providers"]
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert set(terraform["output"]) == {
        "audit_role_arn",
        "remediation_role_arn",
        "securityhub_import_role_arn",
    }
    assert set(terraform["data"]) >= {"aws_partition.current", "aws_caller_identity.current"}


def test_management_policy_grants_exactly_permissions_json():
    document = json.loads(MANAGEMENT_POLICY.read_text())
    assert document["Version"] == "2012-10-17"
    statements: Statements = {}
    for statement in document["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}, statement
        assert statement["Effect"] == "Allow"
        statements[statement["Sid"]] = (
            frozenset(listify(statement["Action"])),
            frozenset(listify(statement["Resource"])),
        )
    assert statements == expected("scanning_principal")


def test_delegation_policy_grants_exactly_permissions_json_to_the_delegated_account():
    document = json.loads(DELEGATION_POLICY.read_text())
    assert document["Version"] == "2012-10-17"
    statements: Statements = {}
    for statement in document["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Principal", "Action", "Resource"}, statement
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {
            "AWS": "arn:${Partition}:iam::${DelegatedAdminAccountId}:root"
        }
        statements[statement["Sid"]] = (
            frozenset(listify(statement["Action"])),
            frozenset(listify(statement["Resource"])),
        )
    assert statements == expected("delegation_policy")
    # A delegated administrator walks the organization with exactly the calls the caller in
    # the management account makes.
    assert granted("delegation_policy") == granted("scanning_principal", "ReadOrganization")


def test_management_policy_placeholders_render_to_a_complete_policy():
    rendered = MANAGEMENT_POLICY.read_text()
    for placeholder, value in {
        "${Partition}": "aws-us-gov",
        "${AuditRoleName}": PERMISSIONS["audit_role"]["default_name"],
        "${RemediationRoleName}": PERMISSIONS["remediation_role"]["default_name"],
        "${SecurityHubImportRoleName}": PERMISSIONS["securityhub_import_role"]["default_name"],
    }.items():
        assert placeholder in rendered
        rendered = rendered.replace(placeholder, value)
    assert "${" not in rendered
    resources = {r for s in json.loads(rendered)["Statement"] for r in listify(s["Resource"])}
    assert "arn:aws-us-gov:iam::*:role/OrgScanAudit" in resources


def test_audit_role_is_read_only_and_remediation_never_deletes():
    audit = granted("audit_role")
    assert all(a.split(":")[1].startswith(("List", "Get", "Generate")) for a in audit), audit
    assert all(a.startswith("iam:") for a in audit)
    assert granted("scanning_principal", "ScanManagementAccountAsCaller") == audit
    assert granted("remediation_role") == {
        "iam:UpdateAccessKey",
        "iam:ListAccessKeys",
        "iam:GetAccessKeyLastUsed",
    }
    assert "iam:DeleteAccessKey" in PERMISSIONS["remediation_role"]["never"]
    for principal in ("audit_role", "remediation_role", "scanning_principal"):
        assert not granted(principal) & set(PERMISSIONS["remediation_role"]["never"])
    for path in (TEMPLATE, MANAGEMENT_POLICY, *TERRAFORM.glob("*.tf")):
        assert "DeleteAccessKey" not in path.read_text(), path
    # UpdateAccessKey applies to IAM users of the role's own account, never to "*".
    (resources,) = {
        r for a, r in expected("remediation_role").values() if "iam:UpdateAccessKey" in a
    }
    assert resources == {"arn:${Partition}:iam::${AccountId}:user/*"}


def test_securityhub_import_role_only_imports_the_accounts_own_findings():
    # BatchImportFindings requires the `product` resource (Service Authorization Reference,
    # Security Hub); a custom integration's product is the account's own `default` one.
    assert expected("securityhub_import_role") == {
        "ImportOwnFindings": (
            frozenset({"securityhub:BatchImportFindings"}),
            frozenset({"arn:${Partition}:securityhub:*:${AccountId}:product/${AccountId}/default"}),
        ),
        # BatchUpdateFindings requires the `hub` resource: the account's own.
        "SetOwnFindingsWorkflow": (
            frozenset({"securityhub:BatchUpdateFindings"}),
            frozenset({"arn:${Partition}:securityhub:*:${AccountId}:hub/default"}),
        ),
    }
    principals = [p for p in PERMISSIONS if not p.startswith("$")]
    never = set(PERMISSIONS["securityhub_import_role"]["never"])
    assert not any(granted(p) & never for p in principals)
    # Only the import role reaches Security Hub; the scanning principal merely enters it.
    assert {p for p in principals if any(a.startswith("securityhub:") for a in granted(p))} == {
        "securityhub_import_role"
    }
    assert granted("scanning_principal", "EnterSecurityHubImportRoles") == {"sts:AssumeRole"}


def test_no_partition_is_hard_coded():
    for path in (
        TEMPLATE,
        MANAGEMENT_POLICY,
        DELEGATION_POLICY,
        DEPLOY / "permissions.json",
        *TERRAFORM.glob("*.tf"),
    ):
        assert "arn:aws:" not in path.read_text(), path
    text = TEMPLATE.read_text()
    assert "${AWS::Partition}" in text
    assert "data.aws_partition.current.partition" in (TERRAFORM / "main.tf").read_text()


def test_default_role_names_agree_everywhere(template, terraform):
    defaults = parse_config({})
    audit = PERMISSIONS["audit_role"]["default_name"]
    remediation = PERMISSIONS["remediation_role"]["default_name"]
    securityhub = PERMISSIONS["securityhub_import_role"]["default_name"]
    assert defaults.role.name == audit
    assert defaults.remediation.role_name == remediation
    assert defaults.securityhub.role_name is None  # publishing is off until the config names it
    parameters = template["Parameters"]
    assert parameters["AuditRoleName"]["Default"] == audit
    assert parameters["RemediationRoleName"]["Default"] == remediation
    assert parameters["SecurityHubImportRoleName"]["Default"] == securityhub
    assert terraform["variable"]["audit_role_name"]["default"] == audit
    assert terraform["variable"]["remediation_role_name"]["default"] == remediation
    assert terraform["variable"]["securityhub_import_role_name"]["default"] == securityhub


# --- Trust and the optional remediation role --------------------------------------------------


def test_cloudformation_trust_names_the_scanning_principal_with_an_optional_external_id(template):
    parameters, conditions = template["Parameters"], template["Conditions"]
    assert parameters["ExternalId"]["Default"] == ""
    assert conditions["HasExternalId"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]}
    assert parameters["WatchPrincipalArn"]["Default"] == ""
    assert conditions["HasWatchPrincipal"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WatchPrincipalArn"}, ""]}]
    }
    external_id = {
        "Fn::If": [
            "HasExternalId",
            {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            {"Ref": "AWS::NoValue"},
        ]
    }
    principals = {
        # The watch's function role (deploy/watch) joins the scanning principal when given.
        "AuditRole": {
            "Fn::If": [
                "HasWatchPrincipal",
                [{"Ref": "ScanningPrincipalArn"}, {"Ref": "WatchPrincipalArn"}],
                {"Ref": "ScanningPrincipalArn"},
            ]
        },
        "RemediationRole": {
            "Fn::If": [
                "HasRemediationPrincipal",
                {"Ref": "RemediationPrincipalArn"},
                {"Ref": "ScanningPrincipalArn"},
            ]
        },
        "SecurityHubImportRole": {"Ref": "ScanningPrincipalArn"},
    }
    for logical_id, principal in principals.items():
        (trust,) = template["Resources"][logical_id]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"
        ]
        assert trust["Effect"] == "Allow"
        assert trust["Action"] == "sts:AssumeRole"
        assert trust["Principal"] == {"AWS": principal}
        assert trust["Condition"] == external_id


@pytest.mark.parametrize("role", ["RemediationRole", "SecurityHubImportRole"])
def test_cloudformation_optional_roles_are_off_by_default(template, role):
    assert template["Parameters"][f"Enable{role}"]["Default"] == "false"
    assert template["Conditions"][f"Create{role}"] == {
        "Fn::Equals": [{"Ref": f"Enable{role}"}, "true"]
    }
    assert template["Resources"][role]["Condition"] == f"Create{role}"
    assert "Condition" not in template["Resources"]["AuditRole"]
    assert template["Outputs"][f"{role}Arn"]["Condition"] == f"Create{role}"


def test_terraform_trust_and_remediation_switch(terraform):
    variables = terraform["variable"]
    assert variables["external_id"]["default"] is None
    assert variables["enable_remediation_role"]["default"] is False
    assert variables["enable_securityhub_import_role"]["default"] is False
    assert variables["watch_principal_arn"]["default"] is None
    for role, principals in {
        "audit": "${compact([var.scanning_principal_arn, var.watch_principal_arn])}",
        "remediation": ["${local.remediation_principal_arn}"],
        "securityhub_import": ["${var.scanning_principal_arn}"],
    }.items():
        trust_document = terraform["resource"][f"aws_iam_role.{role}"]["assume_role_policy"]
        assert trust_document == f"${{data.aws_iam_policy_document.{role}_trust.json}}"
        (trust,) = terraform["data"][f"aws_iam_policy_document.{role}_trust"]["statement"]
        assert trust["effect"] == "Allow"
        assert trust["actions"] == ["sts:AssumeRole"]
        assert trust["principals"] == [{"type": "AWS", "identifiers": principals}]
        ((name, condition),) = trust["dynamic"][0].items()
        assert name == "condition"
        assert "var.external_id == null ? []" in condition["for_each"]
        assert condition["content"] == [
            {"test": "StringEquals", "variable": "sts:ExternalId", "values": ["${condition.value}"]}
        ]
    for role in ("remediation", "securityhub_import"):
        for name in (f"aws_iam_role.{role}", f"aws_iam_role_policy.{role}"):
            assert terraform["resource"][name]["count"] == f"${{var.enable_{role}_role ? 1 : 0}}"
    assert "count" not in terraform["resource"]["aws_iam_role.audit"]


# --- cfn-lint ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfnlint_api() -> Any:
    return pytest.importorskip(
        "cfnlint.api",
        reason="cfn-lint is not installed (moto[server] brings it); pip install cfn-lint",
    )


def _lint(cfnlint_api: Any, text: str) -> list[str]:
    # The three partitions' regions, and informational rules too: nothing may be reported.
    args = cfnlint_api.ManualArgs(
        regions=["us-east-1", "us-gov-west-1", "cn-north-1"], include_checks=["I"]
    )
    return [str(match) for match in cfnlint_api.lint(text, config=args)]


# Every template under deploy/, today's and any added later.
TEMPLATES = sorted(DEPLOY.rglob("cloudformation/*.yaml"))
TERRAFORM_MODULES = sorted({path.parent for path in DEPLOY.rglob("*.tf")})


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_cfn_lint_reports_nothing(cfnlint_api, path):
    assert _lint(cfnlint_api, path.read_text()) == []


@pytest.mark.parametrize("directory", TERRAFORM_MODULES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_terraform_module_parses_and_declares_its_provider(directory):
    blocks = terraform_blocks(directory)
    (providers,) = blocks["terraform"]["settings"]["required_providers"]
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert blocks["resource"] and blocks["output"] and blocks["variable"]


def test_cfn_lint_would_catch_a_broken_template(cfnlint_api):
    broken = TEMPLATE.read_text().replace("Type: AWS::IAM::Role", "Type: AWS::IAM::Rol", 1)
    assert any("E3006" in match for match in _lint(cfnlint_api, broken))


# --- The code sends only granted actions ------------------------------------------------------


def _observed_actions(calls: dict[tuple[str, str], int]) -> dict[str, set[str]]:
    """IAM actions the scanner sent, by the principal whose policy must grant them."""
    unknown = {action for action, _ in calls} - set(IAM_ACTIONS)
    assert not unknown, f"unmapped AWS operations {unknown}: add them to IAM_ACTIONS"
    observed: dict[str, set[str]] = {"scanning_principal": set(), "audit_role": set()}
    for operation, account in calls:
        action = IAM_ACTIONS[operation]
        if action in NEEDS_NO_PERMISSION:
            continue
        if not action.startswith("iam:"):
            observed["scanning_principal"].add(action)  # Organizations and AssumeRole
        elif account == MANAGEMENT_ACCOUNT:
            observed["scanning_principal"].add(action)  # auto: the caller is in it
        else:
            observed["audit_role"].add(action)
    return observed


@pytest.fixture(scope="module")
async def observed(moto_server) -> dict[str, set[str]]:
    """Both strategies' scans, once for the module; every test that uses `aws` resets anyway.
    A live scan where no credential report can be had sends the fallback's actions too."""
    moto_server.reset()
    seed(moto_server, ORG)
    live = await run_scan(config(scan={"strategy": "live"}))
    report = await run_scan(config(scan={"strategy": "credential-report"}))
    calls = dict(moto_server.faults.calls)
    moto_server.inject([Fault(action="GenerateCredentialReport", error="AccessDenied")])
    fallback = await run_scan(config(scan={"strategy": "live"}))
    assert all(r.root_keys.source is RootKeySource.ACCOUNT_SUMMARY for r in fallback.accounts)
    for result in (live, report, fallback):
        assert result.run.complete
        assert sorted(f.user_name for f in result.findings) == ["deployer", "dev", "mgmt-ci"]
    for action, n in moto_server.faults.calls.items():
        calls[action] = calls.get(action, 0) + n
    return _observed_actions(calls)


async def test_the_code_sends_no_action_that_the_policies_lack(observed):
    missing = observed["audit_role"] - granted("audit_role")
    assert not missing, f"the code sends {missing}, which the audit role lacks"
    missing = observed["scanning_principal"] - granted("scanning_principal")
    assert not missing, f"the code sends {missing}, which the management policy lacks"
    # Assuming the audit role is what EnterAuditRoles is for, and the caller's own IAM reads in
    # the management account are what ScanManagementAccountAsCaller is for.
    assert "sts:AssumeRole" in observed["scanning_principal"]
    management_iam = {a for a in observed["scanning_principal"] if a.startswith("iam:")}
    assert management_iam <= granted("scanning_principal", "ScanManagementAccountAsCaller")


async def test_every_read_permission_is_one_the_code_uses(observed):
    unused = granted("audit_role") - observed["audit_role"]
    assert not unused, f"the audit role grants actions the scanner never sends: {unused}"
    for sid in ("ReadOrganization", "EnterAuditRoles", "ScanManagementAccountAsCaller"):
        unused = granted("scanning_principal", sid) - observed["scanning_principal"]
        assert not unused, f"{sid} grants actions the scanner never sends: {unused}"


def _service_operations() -> dict[str, set[str]]:
    """snake_case method name → IAM actions, for the services orgscan talks to."""
    session = botocore.session.get_session()
    operations: dict[str, set[str]] = {}
    for service in ("iam", "organizations", "sts", "sns", "securityhub"):
        model = session.get_service_model(service)
        for operation in model.operation_names:
            operations.setdefault(xform_name(operation), set()).add(f"{service}:{operation}")
    return operations


def test_no_code_path_calls_an_action_that_is_granted_nowhere():
    """Static backstop for paths the scans above do not reach (error paths, remediation).

    Any client method call (`iam.list_users(...)`) or string naming an operation (paginators) in
    orgscan/, the demo seeding excepted, must be an action some policy in permissions.json grants.
    """
    operations = _service_operations()
    everything = set().union(*(granted(p) for p in PERMISSIONS if not p.startswith("$")))
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "orgscan").rglob("*.py")):
        if "demo" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            if name in operations:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    # The scan works, and publish-securityhub's one call is seen.
    assert {"list_users", "list_roots", "assume_role", "batch_import_findings"} <= set(found), found
    for name, paths in found.items():
        actions = operations[name]
        assert actions & (everything | NEEDS_NO_PERMISSION), (
            f"{sorted(paths)} calls {name} ({sorted(actions)}): permissions.json grants it nowhere"
        )
        assert actions & set(IAM_ACTIONS.values()), f"add {sorted(actions)} to IAM_ACTIONS"


# --- The GitHub Actions workflow --------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads `on:` as true
    return document


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _step(workflow: dict[str, Any], uses: str) -> tuple[int, dict[str, Any]]:
    (found,) = [
        (i, s) for i, s in enumerate(_steps(workflow)) if s.get("uses", "").startswith(uses)
    ]
    return found


def _scan_step(workflow: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    (found,) = [
        (i, s) for i, s in enumerate(_steps(workflow)) if "orgscan scan" in s.get("run", "")
    ]
    return found


def test_workflow_triggers_and_permissions(workflow):
    triggers = workflow["on"]
    assert "workflow_dispatch" in triggers
    (schedule,) = triggers["schedule"]
    _minute, _hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday) == ("1", "1,4,7,10", "*"), "quarterly"
    assert workflow["permissions"] == {
        "id-token": "write",
        "contents": "read",
        "security-events": "write",
    }
    (job,) = workflow["jobs"].values()
    assert "permissions" not in job


def _credential_steps(workflow: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [
        (i, s)
        for i, s in enumerate(_steps(workflow))
        if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    ]


def test_workflow_assumes_a_role_through_oidc_and_installs_orgscan(workflow):
    index, credentials = _credential_steps(workflow)[0]
    assert credentials["with"]["role-to-assume"] == "${{ vars.ORGSCAN_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(credentials["with"])
    setup, _ = _step(workflow, "actions/setup-python@")
    scan, step = _scan_step(workflow)
    install = [i for i, s in enumerate(_steps(workflow)) if "pip install ." in s.get("run", "")]
    assert setup < install[0] < scan and index < scan
    assert (
        "orgscan scan --config config.yaml --output evidence --sarif-suppressed omit --quiet"
        in step["run"]
    )


def test_workflow_uploads_sarif_and_evidence_even_when_the_scan_fails(workflow):
    scan, step = _scan_step(workflow)
    assert step["continue-on-error"] is True
    sarif_index, sarif = _step(workflow, "github/codeql-action/upload-sarif@")
    assert sarif["with"] == {
        "sarif_file": "evidence/orgscan.sarif",
        "category": "orgscan-iam-access-keys",
    }
    artifact_index, artifact = _step(workflow, "actions/upload-artifact@")
    paths = {p.rstrip("/") for p in artifact["with"]["path"].split()}
    assert paths == {"evidence", "signed"}  # the scan's package and, once signed, its copy
    assert int(artifact["with"]["retention-days"]) >= 90
    for index, upload in ((sarif_index, sarif), (artifact_index, artifact)):
        assert index > scan
        assert "always()" in upload["if"]


def _github_bash(script: str, tmp_path: Path, **env: str) -> tuple[int, str]:
    """Run a `run:` block the way GitHub's ubuntu runners do: bash -eo pipefail."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not available")
    path = tmp_path / "step.sh"
    path.write_text(script)
    output = tmp_path / "github_output"
    output.write_text("")
    completed = subprocess.run(
        [bash, "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        env={**os.environ, "GITHUB_OUTPUT": str(output), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.returncode, output.read_text()


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_workflow_carries_the_scan_exit_code_and_fails_the_job_at_the_end(workflow, tmp_path, code):
    scan_index, scan = _scan_step(workflow)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "orgscan").write_text(f"#!/bin/sh\nexit {code}\n")
    (fake / "orgscan").chmod(0o755)
    returned, output = _github_bash(
        scan["run"], tmp_path, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}"
    )
    assert returned == code
    assert f"exit-code={code}" in output.splitlines()

    steps = _steps(workflow)
    gate_index, gate = len(steps) - 1, steps[-1]
    assert gate_index > max(
        _step(workflow, u)[0]
        for u in ("github/codeql-action/upload-sarif@", "actions/upload-artifact@")
    )
    assert gate["if"] == "always()"
    (variable,) = gate["env"]
    assert gate["env"][variable] == f"${{{{ steps.{scan['id']}.outputs.exit-code }}}}"
    returned, _ = _github_bash(gate["run"], tmp_path, **{variable: str(code)})
    assert (returned == 0) == (code == 0)
    returned, _ = _github_bash(gate["run"], tmp_path, **{variable: ""})
    assert returned != 0, "a scan that never ran must fail the job"
    assert scan_index < gate_index


async def test_remediation_sends_only_what_the_remediation_role_grants(aws, tmp_path):
    from orgscan.remediation.apply import apply_plan, rollback, to_undo
    from orgscan.remediation.plan import Evidence, build_plan

    seed(aws, ORG)
    settings = config()  # management_account: auto, the caller in the management account
    scanned = await run_scan(settings)
    aws.inject([])  # count only what remediation sends
    plan = build_plan(scanned, Evidence(str(tmp_path / "findings.json"), "0" * 64))
    journal = await apply_plan(plan, settings, tmp_path / "journal.jsonl")
    undo = to_undo(journal)
    await rollback(
        journal,
        undo,
        settings,
        tmp_path / "rollback.jsonl",
        applied_path=tmp_path / "journal.jsonl",
    )
    assert journal.entries and all(e.outcome == "deactivated" for e in journal.entries)

    calls = dict(aws.faults.calls)
    unknown = {action for action, _ in calls} - set(IAM_ACTIONS)
    assert not unknown, f"unmapped AWS operations {unknown}: add them to IAM_ACTIONS"
    sent = {IAM_ACTIONS[a] for a, _ in calls} - NEEDS_NO_PERMISSION
    iam = {a for a in sent if a.startswith("iam:")}
    assert iam == granted("remediation_role")  # everything it grants is used, nothing more
    assert sent - iam <= granted("scanning_principal", "ReadOrganization") | granted(
        "scanning_principal", "EnterRemediationRoles"
    )
    assert all(r.endswith(":role/OrgScanRemediation") for r in aws.faults.assumed_roles)
    # The management account's keys too are changed through the remediation role: the caller's
    # own credentials send no IAM call, as management-policy.json grants it none to change keys.
    assert f"arn:aws:iam::{MANAGEMENT_ACCOUNT}:role/OrgScanRemediation" in aws.faults.assumed_roles
    assert not {a for a in aws.faults.caller_calls if IAM_ACTIONS[a].startswith("iam:")}
    assert "iam:UpdateAccessKey" not in granted("scanning_principal")


async def test_publish_securityhub_sends_only_what_the_import_role_grants(
    aws, tmp_path, monkeypatch
):
    from moto.securityhub.models import securityhub_backends

    from orgscan.reports.writer import write_reports
    from orgscan.securityhub_publish import publish

    region = "eu-west-1"
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    seed(aws, ORG)
    scanned = await run_scan(config())
    write_reports(scanned, tmp_path, formats=("asff",))
    aws.inject([])  # count only what publishing sends
    role = PERMISSIONS["securityhub_import_role"]["default_name"]
    published = await publish(config(securityhub={"role_name": role}), tmp_path)
    assert published.complete and published.region == region
    assert sum(a.imported for a in published.accounts) == len(scanned.findings) == 3

    calls = dict(aws.faults.calls)
    unknown = {action for action, _ in calls} - set(IAM_ACTIONS)
    assert not unknown, f"unmapped AWS operations {unknown}: add them to IAM_ACTIONS"
    sent = {IAM_ACTIONS[a] for a, _ in calls} - NEEDS_NO_PERMISSION
    hub = {a for a in sent if a.startswith("securityhub:")}
    assert hub == granted("securityhub_import_role")  # everything it grants is used, nothing more
    assert sent - hub == granted("scanning_principal", "EnterSecurityHubImportRoles")
    # Every finding went in through the import role of its own account, the management
    # account's too: the caller's own credentials import nothing.
    accounts = {f.account_id for f in scanned.findings}
    assert MANAGEMENT_ACCOUNT in accounts
    assert sorted(aws.faults.assumed_roles) == sorted(
        f"arn:aws:iam::{account}:role/{role}" for account in accounts
    )
    assert "BatchImportFindings" not in aws.faults.caller_calls
    # ... into exactly the product resource the role is granted there.
    (resource,) = expected("securityhub_import_role")["ImportOwnFindings"][1]
    for account in accounts:
        allowed = resource.replace("${Partition}", "aws").replace("${AccountId}", account)
        products = {
            f.as_dict()["ProductArn"] for f in securityhub_backends[account][region].findings
        }
        assert products and all(fnmatch.fnmatchcase(p, allowed) for p in products), products


# What the evidence writer's calls need. HeadObject reads back one version (VersionId: AWS
# authorises s3:GetObjectVersion) and its retention, which S3 answers only to a requester with
# s3:GetObjectRetention (botocore's S3 model, HeadObjectOutput.ObjectLockMode); `verify s3://`
# lists versions (s3:ListBucketVersions) and downloads each by its version id.
# tests/integration/test_attestation.py runs an upload and a verify with exactly these grants.
EVIDENCE_ACTIONS = {
    "get_public_key": {"kms:GetPublicKey"},
    "sign": {"kms:Sign"},
    "put_object": {"s3:PutObject", "s3:PutObjectRetention"},
    "head_object": {"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"},
    "get_object": {"s3:GetObject", "s3:GetObjectVersion"},
    "list_objects_v2": {"s3:ListBucket"},
    "list_object_versions": {"s3:ListBucketVersions"},
    "get_object_lock_configuration": {"s3:GetBucketObjectLockConfiguration"},
}


def test_evidence_writer_grants_what_orgscan_aws_calls_and_never_deletes():
    """orgscan/aws/kms.py and s3.py are the only KMS and S3 callers; every call they make is
    granted to the evidence writer, which may never delete or bypass a retention."""
    writer = PERMISSIONS["evidence_writer"]
    actions = {a for s in writer["statements"].values() for a in s["actions"]}
    called = set()
    for name in ("kms.py", "s3.py"):
        tree = ast.parse((ROOT / "orgscan" / "aws" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in EVIDENCE_ACTIONS:
                called.add(node.value)
            if isinstance(node, ast.Attribute) and node.attr in EVIDENCE_ACTIONS:
                called.add(node.attr)
    assert {"sign", "put_object", "head_object"} <= called
    assert set().union(*(EVIDENCE_ACTIONS[c] for c in called)) <= actions
    assert not actions & set(writer["never"])
    assert not any(a.startswith(("kms:", "s3:")) for a in granted("audit_role"))


def _evidence_step(workflow: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    (found,) = [(i, s) for i, s in enumerate(_steps(workflow)) if s.get("id") == "evidence"]
    return found


def test_workflow_signs_and_uploads_as_a_separate_writer_role_after_the_scan(workflow):
    """The scan role stays read-only: the KMS key and the bucket are reached only through a
    second OIDC role, assumed after the scan, and the scan itself neither signs nor uploads."""
    (scan_role_index, scan_role), (writer_index, writer) = _credential_steps(workflow)
    scan_index, scan = _scan_step(workflow)
    evidence_index, evidence = _evidence_step(workflow)
    assert scan_role_index < scan_index < writer_index < evidence_index
    assert "--sign" not in scan["run"] and "--upload" not in scan["run"]
    assert writer["with"]["role-to-assume"] == "${{ vars.ORGSCAN_EVIDENCE_ROLE_ARN }}"
    assert scan_role["with"]["role-to-assume"] == "${{ vars.ORGSCAN_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key", "role-chaining"} & set(writer["with"])
    assert workflow["permissions"]["id-token"] == "write"  # OIDC for both roles
    for step in (writer, evidence):
        # Signing is optional (skipped without the writer role), and runs after a failed scan
        # too: an incomplete sweep is evidence as well.
        assert "always()" in step["if"]
        assert "vars.ORGSCAN_EVIDENCE_ROLE_ARN != ''" in step["if"]
        assert "hashFiles('evidence/findings.json')" in step["if"]
    assert evidence["env"]["SIGNING_KEY"] == "${{ vars.ORGSCAN_SIGNING_KEY }}"
    assert evidence["env"]["TARGET"].startswith("s3://${{ vars.ORGSCAN_EVIDENCE_BUCKET }}/")
    assert evidence["env"]["TARGET"].endswith("/")
    assert evidence["env"]["RETAIN_MODE"] == "${{ vars.ORGSCAN_RETAIN_MODE }}"
    command = " ".join(evidence["run"].replace("\\\n", " ").split())
    assert (
        "orgscan report evidence/findings.json --output signed --sarif-suppressed omit "
        '--fail-on never --sign "$SIGNING_KEY" --upload "$TARGET" '
        '--retain-days "$RETAIN_DAYS" --retain-mode "$RETAIN_MODE"'
    ) in command
    assert 'orgscan verify "$TARGET" --key "$SIGNING_KEY"' in command
    gate_index = len(_steps(workflow)) - 1
    assert evidence_index < _step(workflow, "actions/upload-artifact@")[0] < gate_index


@pytest.mark.parametrize(
    ("report", "verify", "expected_exit", "verified"),
    [
        (0, 0, 0, True),
        (3, 0, 0, True),  # an incomplete sweep, signed and uploaded whole
        (3, 1, 1, True),  # exit 3 from a partial upload: the uploaded copy does not verify
        (2, 0, 2, False),  # a bad key or bucket: stop, nothing to verify
        (0, 1, 1, True),
    ],
)
def test_workflow_evidence_step_fails_unless_the_uploaded_copy_verifies(
    workflow, tmp_path, report, verify, expected_exit, verified
):
    _, evidence = _evidence_step(workflow)
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "calls"
    (fake / "orgscan").write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n'
        f'case "$1" in report) exit {report} ;; verify) exit {verify} ;; esac\nexit 99\n'
    )
    (fake / "orgscan").chmod(0o755)
    target = "s3://bucket/orgscan/1-1/"
    returned, output = _github_bash(
        evidence["run"],
        tmp_path,
        PATH=f"{fake}{os.pathsep}{os.environ['PATH']}",
        SIGNING_KEY="awskms:///alias/orgscan-evidence",
        TARGET=target,
        RETAIN_MODE="COMPLIANCE",
        RETAIN_DAYS="400",
    )
    calls = log.read_text().splitlines()
    assert returned == expected_exit
    assert calls[0].startswith("report evidence/findings.json --output signed")
    assert (f"verify {target} --key awskms:///alias/orgscan-evidence" in calls) == verified
    assert (f"location={target}" in output.splitlines()) == (expected_exit == 0)
