"""deploy/watch agrees with permissions.json, with the watch's code, and with itself.

The function's role and the forwarders' role must grant exactly their statements in
permissions.json; the Lambda, run against moto, must send nothing else; the event pattern is
one file that every rule uses; cfn-lint passes and the Terraform parses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto.events.models import EventPattern

from orgscan.watch import lambda_entry
from tests.conftest import seed
from tests.integration.deploy.test_deploy import (
    DEPLOY,
    IAM_ACTIONS,
    NEEDS_NO_PERMISSION,
    PERMISSIONS,
    CfnLoader,
    Statements,
    cfn_statements,
    expected,
    granted,
    terraform_blocks,
)
from tests.integration.watch.test_watch import FIXTURES, ORG, sample, settings, topic  # noqa: F401 - topic: a fixture

WATCH = DEPLOY / "watch"
TEMPLATE = WATCH / "cloudformation" / "orgscan-watch.yaml"
FORWARDER = WATCH / "cloudformation" / "orgscan-watch-forwarder.yaml"
TERRAFORM = WATCH / "terraform"
PATTERN = json.loads((WATCH / "event-pattern.json").read_text())
ROLES_TEMPLATE = DEPLOY / "cloudformation" / "orgscan-roles.yaml"

# How each artefact names the resources that permissions.json writes as placeholders.
CFN_NAMES = {
    "${AWS::Partition}": "${Partition}",
    "${AWS::AccountId}": "${AccountId}",
    "${AWS::Region}": "${Region}",
    "${LogGroup}": "${LogGroupName}",
}
CFN_REFERENCES = {
    json.dumps({"Ref": "Topic"}): "${TopicArn}",
    json.dumps({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}): "${DeadLetterQueueArn}",
    json.dumps({"Ref": "EventBusArn"}): "${EventBusArn}",
}
TF_NAMES = {
    "${data.aws_partition.current.partition}": "${Partition}",
    "${aws_sns_topic.alerts.arn}": "${TopicArn}",
    "${aws_sqs_queue.dead_letters.arn}": "${DeadLetterQueueArn}",
    "${aws_cloudwatch_log_group.watch.arn}:*": (
        "arn:${Partition}:logs:${Region}:${AccountId}:log-group:${LogGroupName}:*"
    ),
    "${var.audit_role_name}": "${AuditRoleName}",
    "${var.event_bus_arn}": "${EventBusArn}",
}


def load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)


@pytest.fixture(scope="module")
def watch_template() -> dict[str, Any]:
    return load(TEMPLATE)


@pytest.fixture(scope="module")
def forwarder_template() -> dict[str, Any]:
    return load(FORWARDER)


@pytest.fixture(scope="module")
def watch_tf() -> dict[str, Any]:
    return terraform_blocks(TERRAFORM)


@pytest.fixture(scope="module")
def forwarder_tf() -> dict[str, Any]:
    return terraform_blocks(TERRAFORM / "forwarder")


def cfn_resource(value: Any) -> str:
    if isinstance(value, str):
        return value
    if set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        for name, placeholder in CFN_NAMES.items():
            text = text.replace(name, placeholder)
        return text
    return CFN_REFERENCES[json.dumps(value)]


def tf_statements(tf: dict[str, Any], name: str, principal: str) -> Statements:
    attachment = tf["resource"][f"aws_iam_role_policy.{name}"]
    assert attachment["name"] == PERMISSIONS[principal]["policy_name"]
    assert attachment["role"] == f"${{aws_iam_role.{name}.id}}"
    document = tf["data"][attachment["policy"].removeprefix("${data.").removesuffix(".json}")]
    statements: Statements = {}
    for statement in document["statement"]:
        assert set(statement) == {"sid", "effect", "actions", "resources"}, statement
        assert statement["effect"] == "Allow"
        resources = set()
        for resource in statement["resources"]:
            for reference, placeholder in TF_NAMES.items():
                resource = resource.replace(reference, placeholder)
            resources.add(resource)
        statements[statement["sid"]] = (frozenset(statement["actions"]), frozenset(resources))
    return statements


# --- The artefacts grant exactly permissions.json ---------------------------------------------


def test_cloudformation_grants_exactly_permissions_json(watch_template, forwarder_template):
    assert cfn_statements(
        watch_template, "FunctionRole", "watch_function", cfn_resource
    ) == expected("watch_function")
    assert cfn_statements(
        forwarder_template, "ForwarderRole", "watch_forwarder", cfn_resource
    ) == expected("watch_forwarder")


def test_terraform_grants_exactly_permissions_json(watch_tf, forwarder_tf):
    assert tf_statements(watch_tf, "function", "watch_function") == expected("watch_function")
    assert tf_statements(forwarder_tf, "forwarder", "watch_forwarder") == expected(
        "watch_forwarder"
    )


def test_the_function_may_assume_only_the_audit_role_and_change_nothing_in_iam():
    statements = expected("watch_function")
    assumable = {
        r
        for actions, resources in statements.values()
        if "sts:AssumeRole" in actions
        for r in resources
    }
    assert assumable == {"arn:${Partition}:iam::*:role/${AuditRoleName}"}
    actions = granted("watch_function")
    assert not any(a.startswith("iam:") or "*" in a for a in actions), actions
    assert granted("watch_forwarder") == {"events:PutEvents"}


# --- The code sends only what the function is granted -----------------------------------------


def test_the_lambda_sends_only_what_its_role_and_the_audit_role_grant(aws, topic):  # noqa: F811
    configure, received = topic
    prod = seed(aws, ORG).account_ids["prod"]
    configure(settings(prod))
    aws.inject([])  # count only the Lambda's own calls
    assert lambda_entry.handler(sample("create-access-key", prod), None)["message_id"]
    calls = dict(aws.faults.calls)
    assert received()

    unknown = {action for action, _ in calls} - set(IAM_ACTIONS)
    assert not unknown, f"unmapped AWS operations {unknown}: add them to IAM_ACTIONS"
    sent = {IAM_ACTIONS[a] for a, _ in calls} - NEEDS_NO_PERMISSION
    by_account = {IAM_ACTIONS[a] for a, account in calls if account == prod}
    # IAM is read in the member account under the audit role, and only there.
    iam = {a for a in sent if a.startswith("iam:")}
    assert iam == by_account - {"sts:AssumeRole"} and iam <= granted("audit_role")
    own = sent - iam
    assert own <= granted("watch_function"), own - granted("watch_function")
    # Everything the function's role grants for orgscan's code is used; the rest is the
    # Lambda service's (dead letters, log lines).
    for sid, statement in PERMISSIONS["watch_function"]["statements"].items():
        if "used_by" not in statement:
            assert set(statement["actions"]) <= own, f"{sid} is granted but never used"
    assert aws.faults.assumed_roles == [f"arn:aws:iam::{prod}:role/OrgScanAudit"]


def test_the_templates_run_the_function_the_package_holds(watch_template, watch_tf):
    function = watch_template["Resources"]["Function"]["Properties"]
    tf_function = watch_tf["resource"]["aws_lambda_function.watch"]
    module, _, name = function["Handler"].rpartition(".")
    assert f"{module}.{name}" == tf_function["handler"] == "orgscan.watch.lambda_entry.handler"
    assert lambda_entry.__name__ == module and callable(getattr(lambda_entry, name))
    variables = function["Environment"]["Variables"]
    assert set(variables) == {lambda_entry.TOPIC_VARIABLE, lambda_entry.CONFIG_VARIABLE}
    assert variables[lambda_entry.TOPIC_VARIABLE] == {"Ref": "Topic"}
    assert variables[lambda_entry.CONFIG_VARIABLE] == lambda_entry.DEFAULT_CONFIG
    (tf_environment,) = tf_function["environment"]
    assert tf_environment["variables"] == {
        lambda_entry.TOPIC_VARIABLE: "${aws_sns_topic.alerts.arn}",
        lambda_entry.CONFIG_VARIABLE: lambda_entry.DEFAULT_CONFIG,
    }
    build = (WATCH / "build.sh").read_text()
    assert f'"$work/package/{lambda_entry.DEFAULT_CONFIG}"' in build
    # The runtime the package is built for is the one the templates run.
    version = re.search(r"--python-version (\d+\.\d+)", build)
    assert version and function["Runtime"] == tf_function["runtime"] == f"python{version[1]}"
    assert "manylinux2014_x86_64" in build
    assert function["Architectures"] == tf_function["architectures"] == ["x86_64"]


# --- Wiring: the bus, the rule, the dead letters -----------------------------------------------


def test_one_event_pattern_everywhere(watch_template, forwarder_template, watch_tf, forwarder_tf):
    assert watch_template["Resources"]["Rule"]["Properties"]["EventPattern"] == PATTERN
    assert forwarder_template["Resources"]["ForwardRule"]["Properties"]["EventPattern"] == PATTERN
    watch = watch_tf["resource"]["aws_cloudwatch_event_rule.key_events"]
    assert watch["event_pattern"] == '${file("${path.module}/../event-pattern.json")}'
    forwarder = forwarder_tf["resource"]
    assert forwarder["aws_cloudwatch_event_rule.key_events"]["event_pattern"] == (
        '${file("${path.module}/../../event-pattern.json")}'
    )


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("create-access-key", True),
        ("create-access-key-own", True),
        ("update-access-key-active", True),
        # The root user's own key matches; the function notes it and stops (no AWS call).
        ("create-access-key-root", True),
        ("update-access-key-inactive", False),
        ("create-access-key-limit-exceeded", False),
    ],
)
def test_the_pattern_passes_what_can_add_an_active_key(name, matches):
    # moto's matcher, not EventBridge's: it implements $or and exists as AWS documents them.
    event = json.loads((FIXTURES / f"{name}.json").read_text())
    assert EventPattern.load(json.dumps(PATTERN)).matches_event(event) is matches
    other = sample(name, "111122223333", eventName="CreateUser")
    assert not EventPattern.load(json.dumps(PATTERN)).matches_event(other)


def test_the_bus_takes_events_only_from_the_organization(watch_template, watch_tf):
    policy = watch_template["Resources"]["EventBusPolicy"]["Properties"]
    assert policy["EventBusName"] == {"Ref": "EventBus"}
    statement = policy["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "events:PutEvents")
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}
    }
    (tf_statement,) = watch_tf["data"]["aws_iam_policy_document.bus"]["statement"]
    assert tf_statement["condition"] == [
        {
            "test": "StringEquals",
            "variable": "aws:PrincipalOrgID",
            "values": ["${var.organization_id}"],
        }
    ]


def test_nothing_that_fails_is_dropped(watch_template, watch_tf):
    resources = watch_template["Resources"]
    queue = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    # The rule's delivery failures and the function's own failures land in the same queue.
    (target,) = resources["Rule"]["Properties"]["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": queue}
    assert resources["Function"]["Properties"]["DeadLetterConfig"] == {"TargetArn": queue}
    (statement,) = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["Rule", "Arn"]}}
    }
    tf = watch_tf["resource"]
    assert tf["aws_cloudwatch_event_target.watch"]["dead_letter_config"] == [
        {"arn": "${aws_sqs_queue.dead_letters.arn}"}
    ]
    assert tf["aws_lambda_function.watch"]["dead_letter_config"] == [
        {"target_arn": "${aws_sqs_queue.dead_letters.arn}"}
    ]


def test_the_audit_role_can_trust_the_function(watch_template, watch_tf):
    # FunctionRoleArn goes into orgscan-roles.yaml's WatchPrincipalArn.
    assert watch_template["Outputs"]["FunctionRoleArn"]["Value"] == {
        "Fn::GetAtt": ["FunctionRole", "Arn"]
    }
    assert "WatchPrincipalArn" in load(ROLES_TEMPLATE)["Parameters"]
    assert "function_role_arn" in watch_tf["output"]


def test_the_templates_create_only_what_the_watch_needs(watch_template, forwarder_template):
    assert {r["Type"] for r in watch_template["Resources"].values()} == {
        "AWS::Events::EventBus",
        "AWS::Events::EventBusPolicy",
        "AWS::Events::Rule",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::Lambda::Permission",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
    }
    assert {r["Type"] for r in forwarder_template["Resources"].values()} == {
        "AWS::Events::Rule",
        "AWS::IAM::Role",
    }
    (target,) = forwarder_template["Resources"]["ForwardRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": "EventBusArn"}
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}


# --- Partitions ------------------------------------------------------------------------------


def test_no_partition_is_hard_coded():
    for path in (TEMPLATE, FORWARDER, *TERRAFORM.rglob("*.tf")):
        assert "arn:aws:" not in path.read_text(), path
