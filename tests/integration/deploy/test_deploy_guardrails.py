"""deploy/guardrails: one SCP, attached by CloudFormation or Terraform, built only on condition
keys AWS documents; it stops new keys and cannot touch what orgscan itself needs."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
import yaml

from tests.integration.deploy.test_deploy import (
    DEPLOY,
    PERMISSIONS,
    CfnLoader,
    granted,
    listify,
    terraform_blocks,
)

GUARDRAILS = DEPLOY / "guardrails"
POLICY = GUARDRAILS / "deny-access-key-creation.json"
TEMPLATE = GUARDRAILS / "cloudformation" / "orgscan-guardrail.yaml"
TERRAFORM = GUARDRAILS / "terraform"
PLACEHOLDERS = {
    "${ApprovedTagKey}": "orgscan-access-key-creator",
    "${ApprovedTagValue}": "approved",
}
# The global condition keys the policy may use (IAM User Guide, "AWS global condition context
# keys"). IAM has no condition key that counts a user's access keys, and CreateAccessKey has no
# service-specific one: a policy that claims to cap keys at one would need an invented key.
DOCUMENTED_KEYS = {"aws:PrincipalTag/${ApprovedTagKey}", "aws:TagKeys"}
SCP_MAX_CHARACTERS = 5120  # AWS Organizations quota for a service control policy
# Actions that are permissions only, with no API operation of their own (IAM User Guide,
# "Passing session tags in AWS STS"): botocore's models cannot list them.
PERMISSION_ONLY = {"sts:TagSession"}


def rendered(text: str) -> dict[str, Any]:
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    assert "${" not in text
    return json.loads(text)


def statements() -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(POLICY.read_text())["Statement"]}


def condition_keys(statement: dict[str, Any]) -> set[str]:
    return {key for test in statement.get("Condition", {}).values() for key in test}


def test_the_policy_denies_new_keys_except_to_the_approved_tag():
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    assert all(s["Effect"] == "Deny" and s["Resource"] == "*" for s in policy["Statement"])
    deny = statements()["DenyNewAccessKeysUnlessApproved"]
    assert deny["Action"] == "iam:CreateAccessKey"
    # StringNotEquals is true when the key is absent: an untagged principal is denied.
    assert deny["Condition"] == {
        "StringNotEquals": {"aws:PrincipalTag/${ApprovedTagKey}": "${ApprovedTagValue}"}
    }


def test_only_approved_principals_can_carry_the_approval():
    tagging = statements()["OnlyApprovedPrincipalsSetTheApprovalTag"]
    # Every IAM call that can put a tag on, or take it off, a user or a role.
    assert set(listify(tagging["Action"])) == {
        "iam:CreateRole",
        "iam:CreateUser",
        "iam:TagRole",
        "iam:TagUser",
        "iam:UntagRole",
        "iam:UntagUser",
    }
    # IAM tag keys are case-insensitive: "Orgscan-Access-Key-Creator" is the same tag.
    assert tagging["Condition"]["ForAnyValue:StringEqualsIgnoreCase"] == {
        "aws:TagKeys": ["${ApprovedTagKey}"]
    }
    sessions = statements()["NoApprovalBySessionTag"]
    assert sessions["Action"] == "sts:TagSession"
    assert "StringNotEquals" not in sessions["Condition"]  # not even approved principals


def test_the_policy_uses_only_documented_condition_keys():
    used = set().union(*(condition_keys(s) for s in statements().values()))
    assert used == DOCUMENTED_KEYS
    session = botocore.session.get_session()
    for action in {a for s in statements().values() for a in listify(s["Action"])}:
        if action in PERMISSION_ONLY:
            continue
        service, operation = action.split(":")
        assert operation in session.get_service_model(service).operation_names, action


def test_the_policy_fits_an_scp_and_never_denies_what_orgscan_needs():
    # As CloudFormation sends it (the file's text) and as Terraform does (minified).
    assert len(POLICY.read_text()) <= SCP_MAX_CHARACTERS
    minified = json.dumps(rendered(POLICY.read_text()), separators=(",", ":"))
    assert len(minified) <= SCP_MAX_CHARACTERS
    denied = {a for s in statements().values() for a in listify(s["Action"])}
    needed = set().union(*(granted(p) for p in PERMISSIONS if not p.startswith("$")))
    # The remediation role's UpdateAccessKey, the audit reads, the watch: none is denied.
    assert not denied & needed


def test_cloudformation_attaches_exactly_the_policy_to_the_targets():
    template = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    assert {r["Type"] for r in template["Resources"].values()} == {"AWS::Organizations::Policy"}
    properties = template["Resources"]["DenyAccessKeyCreation"]["Properties"]
    assert properties["Type"] == "SERVICE_CONTROL_POLICY"
    assert properties["TargetIds"] == {"Ref": "TargetIds"}
    assert template["Parameters"]["TargetIds"]["Type"] == "CommaDelimitedList"
    assert rendered(properties["Content"]["Fn::Sub"]) == rendered(POLICY.read_text())
    for name, placeholder in (
        ("ApprovedTagKey", "${ApprovedTagKey}"),
        ("ApprovedTagValue", "${ApprovedTagValue}"),
    ):
        assert template["Parameters"][name]["Default"] == PLACEHOLDERS[placeholder]


def test_terraform_renders_the_same_file_and_attaches_it_to_each_target():
    blocks = terraform_blocks(TERRAFORM)
    policy = blocks["resource"]["aws_organizations_policy.deny_access_key_creation"]
    assert policy["type"] == "SERVICE_CONTROL_POLICY"
    content = policy["content"]
    assert 'templatefile("${path.module}/../deny-access-key-creation.json"' in content
    assert "ApprovedTagKey = var.approved_tag_key" in " ".join(content.split())
    assert "ApprovedTagValue = var.approved_tag_value" in " ".join(content.split())
    attachment = blocks["resource"]["aws_organizations_policy_attachment.targets"]
    assert attachment["for_each"] == "${toset(var.target_ids)}"
    assert attachment["target_id"] == "${each.value}"
    variables = blocks["variable"]
    assert variables["approved_tag_key"]["default"] == PLACEHOLDERS["${ApprovedTagKey}"]
    assert variables["approved_tag_value"]["default"] == PLACEHOLDERS["${ApprovedTagValue}"]


@pytest.mark.parametrize("path", [POLICY, TEMPLATE, *TERRAFORM.glob("*.tf")], ids=lambda p: p.name)
def test_no_partition_is_hard_coded(path):
    assert "arn:aws:" not in path.read_text()
