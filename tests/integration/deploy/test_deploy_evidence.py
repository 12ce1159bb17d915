"""deploy/evidence: the write-once bucket and the evidence writer role.

Both the CloudFormation template and the Terraform module must grant the writer exactly the
`evidence_writer` statements of permissions.json, and make the bucket what orgscan's upload and
an auditor rely on: versioned, Object Lock with a default retention, SSE-KMS, public access
blocked, a bucket policy that refuses non-TLS requests and every way to delete evidence.
(cfn-lint and the Terraform parse run over every template and module in tests/test_deploy.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .test_deploy import (
    DEPLOY,
    PERMISSIONS,
    CfnLoader,
    Statements,
    cfn_statements,
    expected,
    listify,
    terraform_blocks,
)

EVIDENCE = DEPLOY / "evidence"
TEMPLATE = EVIDENCE / "cloudformation" / "orgscan-evidence-bucket.yaml"
TERRAFORM = EVIDENCE / "terraform"

# Every way to remove or hide an evidence version, or cut its retention short, that a bucket
# policy can refuse. Shortening a retention needs s3:BypassGovernanceRetention (GOVERNANCE) and
# is impossible in COMPLIANCE; s3:PutObjectRetention itself must stay allowed, as the writer
# sets each object's retention with it.
DELETE_ACTIONS = {
    "s3:BypassGovernanceRetention",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutLifecycleConfiguration",
}

CFN_REFERENCES = {
    json.dumps(
        {
            "Fn::If": [
                "CreateSigningKey",
                {"Fn::GetAtt": ["SigningKey", "Arn"]},
                {"Ref": "SigningKeyArn"},
            ]
        }
    ): "${EvidenceSigningKeyArn}",
    json.dumps(
        {
            "Fn::If": [
                "CreateBucketKey",
                {"Fn::GetAtt": ["BucketKey", "Arn"]},
                {"Ref": "BucketKeyArn"},
            ]
        }
    ): "${EvidenceBucketKeyArn}",
}
TF_NAMES = {
    "${data.aws_partition.current.partition}": "${Partition}",
    "${aws_s3_bucket.evidence.bucket}": "${EvidenceBucket}",
    "${local.signing_key_arn}": "${EvidenceSigningKeyArn}",
    "${local.bucket_key_arn}": "${EvidenceBucketKeyArn}",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return terraform_blocks(TERRAFORM)


def cfn_resource(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return (
            value["Fn::Sub"]
            .replace("${AWS::Partition}", "${Partition}")
            .replace("${Bucket}", "${EvidenceBucket}")
        )
    return CFN_REFERENCES[json.dumps(value)]


def tf_resource(value: str) -> str:
    for name, placeholder in TF_NAMES.items():
        value = value.replace(name, placeholder)
    return value


def test_cloudformation_writer_grants_exactly_permissions_json(template):
    properties = template["Resources"]["WriterRole"]["Properties"]
    assert not {"ManagedPolicyArns", "PermissionsBoundary"} & set(properties)
    assert properties["RoleName"] == {"Ref": "WriterRoleName"}
    assert (
        template["Parameters"]["WriterRoleName"]["Default"]
        == (PERMISSIONS["evidence_writer"]["default_name"])
    )
    statements = cfn_statements(template, "WriterRole", "evidence_writer", cfn_resource)
    assert statements == expected("evidence_writer")


def test_terraform_writer_grants_exactly_permissions_json(tf):
    attachment = tf["resource"]["aws_iam_role_policy.writer"]
    assert attachment["name"] == PERMISSIONS["evidence_writer"]["policy_name"]
    assert attachment["role"] == "${aws_iam_role.writer.id}"
    assert attachment["policy"] == "${data.aws_iam_policy_document.writer.json}"
    role = tf["resource"]["aws_iam_role.writer"]
    assert not {"managed_policy_arns", "inline_policy", "permissions_boundary"} & set(role)
    assert (
        tf["variable"]["writer_role_name"]["default"]
        == (PERMISSIONS["evidence_writer"]["default_name"])
    )
    statements: Statements = {}
    for statement in tf["data"]["aws_iam_policy_document.writer"]["statement"]:
        assert set(statement) == {"sid", "effect", "actions", "resources"}, statement
        assert statement["effect"] == "Allow"
        statements[statement["sid"]] = (
            frozenset(statement["actions"]),
            frozenset(tf_resource(r) for r in statement["resources"]),
        )
    assert statements == expected("evidence_writer")


def test_the_writer_is_the_only_role_and_never_deletes(template, tf):
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 1
    assert [n for n in tf["resource"] if n.startswith("aws_iam_role.")] == ["aws_iam_role.writer"]
    granted = {a for actions, _ in expected("evidence_writer").values() for a in actions}
    assert not granted & (DELETE_ACTIONS | set(PERMISSIONS["evidence_writer"]["never"]))


# --- The bucket -------------------------------------------------------------------------------


def test_cloudformation_bucket_is_versioned_locked_encrypted_and_private(template):
    bucket = template["Resources"]["Bucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    p = bucket["Properties"]
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["ObjectLockEnabled"] is True
    assert p["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {
            "DefaultRetention": {"Mode": {"Ref": "RetentionMode"}, "Days": {"Ref": "RetentionDays"}}
        },
    }
    mode = template["Parameters"]["RetentionMode"]
    assert mode["AllowedValues"] == ["COMPLIANCE", "GOVERNANCE"]
    assert "Default" not in mode  # as orgscan's --retain-mode: chosen, never assumed
    (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert json.dumps(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]) in CFN_REFERENCES
    assert p["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    signing = template["Resources"]["SigningKey"]["Properties"]
    assert (signing["KeySpec"], signing["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")


def test_terraform_bucket_is_versioned_locked_encrypted_and_private(tf):
    resources = tf["resource"]
    assert resources["aws_s3_bucket.evidence"]["object_lock_enabled"] is True
    (versioning,) = resources["aws_s3_bucket_versioning.evidence"]["versioning_configuration"]
    assert versioning["status"] == "Enabled"
    (rule,) = resources["aws_s3_bucket_object_lock_configuration.evidence"]["rule"]
    (retention,) = rule["default_retention"]
    assert retention == {"mode": "${var.retention_mode}", "days": "${var.retention_days}"}
    assert "default" not in tf["variable"]["retention_mode"]
    (sse,) = resources["aws_s3_bucket_server_side_encryption_configuration.evidence"]["rule"]
    (default,) = sse["apply_server_side_encryption_by_default"]
    assert default == {"sse_algorithm": "aws:kms", "kms_master_key_id": "${local.bucket_key_arn}"}
    block = resources["aws_s3_bucket_public_access_block.evidence"]
    for name in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[name] is True, name
    signing = resources["aws_kms_key.signing"]
    assert (signing["customer_master_key_spec"], signing["key_usage"]) == (
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    )


def _cfn_bucket_policy(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    document = template["Resources"]["BucketPolicy"]["Properties"]["PolicyDocument"]
    return {s["Sid"]: s for s in document["Statement"]}


def _tf_bucket_policy(tf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Terraform policy document in the shape of a JSON policy, to check both alike."""
    assert tf["resource"]["aws_s3_bucket_policy.evidence"]["policy"] == (
        "${data.aws_iam_policy_document.bucket.json}"
    )
    statements = {}
    for s in tf["data"]["aws_iam_policy_document.bucket"]["statement"]:
        (principals,) = s["principals"]
        assert principals == {"type": "*", "identifiers": ["*"]}
        statement = {
            "Sid": s["sid"],
            "Effect": s["effect"],
            "Principal": "*",
            "Action": s["actions"],
        }
        statement["Resource"] = s["resources"]
        for condition in s.get("condition", []):
            statement.setdefault("Condition", {})[condition["test"]] = {
                condition["variable"]: condition["values"]
            }
        statements[s["sid"]] = statement
    return statements


def _bucket_resources(resources: list[Any]) -> bool:
    """The bucket and every object in it, however the artefact spells them."""
    text = json.dumps(resources)
    return len(resources) == 2 and "/*" in text


@pytest.mark.parametrize("artefact", ["cloudformation", "terraform"])
def test_bucket_policy_denies_non_tls_and_every_delete_to_everyone(template, tf, artefact):
    policy = _cfn_bucket_policy(template) if artefact == "cloudformation" else _tf_bucket_policy(tf)
    assert set(policy) == {"DenyInsecureTransport", "DenyDeletingEvidence", "DenyReplacingEvidence"}
    tls = policy["DenyInsecureTransport"]
    assert (tls["Effect"], tls["Principal"], listify(tls["Action"])) == ("Deny", "*", ["s3:*"])
    assert _bucket_resources(listify(tls["Resource"]))
    (value,) = listify(tls["Condition"]["Bool"]["aws:SecureTransport"])
    assert value == "false"
    deny = policy["DenyDeletingEvidence"]
    assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
    assert set(listify(deny["Action"])) == DELETE_ACTIONS
    assert _bucket_resources(listify(deny["Resource"]))
    # No exception, not even a break-glass principal: the account's root user can always
    # replace a bucket policy, and Object Lock still holds every locked version meanwhile.
    assert "Condition" not in deny and "NotPrincipal" not in deny
    # The writer's own retention call is not denied, or no upload could set one.
    assert "s3:PutObjectRetention" not in listify(deny["Action"])
    # A new version of a key would be what readers get: a PutObject without If-None-Match
    # (orgscan sends IfNoneMatch="*") is refused to everyone.
    replace = policy["DenyReplacingEvidence"]
    assert (replace["Effect"], replace["Principal"]) == ("Deny", "*")
    assert listify(replace["Action"]) == ["s3:PutObject"]
    (objects,) = listify(replace["Resource"])
    assert json.dumps(objects).endswith('/*"') or json.dumps(objects).endswith('/*"}')
    (value,) = listify(replace["Condition"]["Null"]["s3:if-none-match"])
    assert value == "true"


def test_only_one_branch_of_one_repository_may_assume_the_writer_through_oidc(template, tf):
    trust = template["Resources"]["WriterRole"]["Properties"]["AssumeRolePolicyDocument"]
    github = trust["Statement"][0]["Fn::If"][1]
    assert github["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert github["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": {
                "Fn::Sub": "repo:${GitHubRepository}:ref:refs/heads/${GitHubBranch}"
            },
        }
    }
    document = tf["data"]["aws_iam_policy_document.writer_trust"]
    (github_tf,) = [d["statement"] for d in document["dynamic"] if "statement" in d][:1]
    conditions = {
        c["variable"]: (c["test"], c["values"]) for c in github_tf["content"][0]["condition"]
    }
    assert conditions == {
        "token.actions.githubusercontent.com:aud": ("StringEquals", ["sts.amazonaws.com"]),
        "token.actions.githubusercontent.com:sub": (
            "StringEquals",
            ["repo:${statement.value}:ref:refs/heads/${var.github_branch}"],
        ),
    }


def test_no_partition_is_hard_coded():
    for path in (TEMPLATE, *TERRAFORM.glob("*.tf")):
        assert "arn:aws:" not in path.read_text(), path
