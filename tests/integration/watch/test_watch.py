"""orgscan watch: one CloudTrail key event, the user's keys read live, the sweep's rule applied.

Events are the samples in tests/fixtures/watch (shapes from AWS's documentation), pointed at a
seeded moto organization. Every case runs the real CLI or the Lambda entry point.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from typer.testing import CliRunner

from orgscan.cli import ExitCode, app
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec, member_iam
from orgscan.reports import sarif
from orgscan.rules import MULTIPLE_ACTIVE_KEYS as RULE_ID
from orgscan.watch import lambda_entry
from orgscan.watch.events import EventError
from tests.conftest import config, run_scan, seed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "watch"
SAMPLE_ACCOUNT = "111122223333"
# Something shaped like a secret access key (AWS's documentation example): never to be echoed.
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

ORG = OrgSpec(
    management_users=(UserSpec("mgmt-ci", (ACTIVE, ACTIVE)),),
    accounts=(
        AccountSpec(
            "prod",
            "Root/Prod",
            (
                UserSpec("alice", (ACTIVE, ACTIVE)),
                UserSpec("bob", (ACTIVE, INACTIVE)),
                UserSpec("carol", (ACTIVE, ACTIVE), "/service/"),
            ),
        ),
    ),
)
FAST = {"management_rate_limit": 500, "account_rate_limit": 500, "max_attempts": 2}


def settings(prod: str, **organization: Any) -> dict[str, Any]:
    return {
        "organization": organization,
        "scan": FAST,
        "exceptions": [
            {
                "account": prod,
                "user": "carol",
                "reason": "legacy batch job rotates its own keys",
                "owner": "data-team",
                "expires": "2099-01-01",
                "ticket": "SEC-42",
            },
            {
                "account": prod,
                "user": "alice",
                "reason": "migration window",
                "owner": "web-team",
                "expires": "2020-01-01",
            },
        ],
    }


SAMPLE_KEY = "AKIAI44QH8DHBEXAMPLE"


def sample(
    name: str, account: str, user: str = "alice", key: str = SAMPLE_KEY, **detail: Any
) -> dict[str, Any]:
    """A fixture event pointed at `account`, `user` and `key`; `detail` entries replace fields."""
    text = (FIXTURES / f"{name}.json").read_text()
    for sample_value, value in ((SAMPLE_ACCOUNT, account), ("Alice", user), (SAMPLE_KEY, key)):
        text = text.replace(sample_value, value)
    data = json.loads(text)
    data["detail"].update(detail)
    return data


def watch_cli(tmp_path: Path, event: dict[str, Any] | str, cfg: dict[str, Any], *extra: str):
    path = tmp_path / "event.json"
    path.write_text(event if isinstance(event, str) else json.dumps(event))
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return CliRunner().invoke(
        app, ["watch", "--event", str(path), "--config", str(cfg_path), *extra]
    )


def live_keys(aws, account: str, user: str) -> list[str]:
    sts = boto3.client("sts", endpoint_url=aws.url, region_name="us-east-1")
    iam = member_iam(sts, account, aws.url)
    return [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]


# --- exit 1: a violation, named -------------------------------------------------------------


def test_a_second_active_key_is_a_violation_naming_the_user_and_both_keys(aws, tmp_path):
    prod = seed(aws, ORG).account_ids["prod"]
    arn = f"arn:aws:iam::{prod}:user/alice"
    keys = live_keys(aws, prod, "alice")
    aws.inject([])
    cfg = settings(prod)
    for name, user in (
        ("create-access-key", "alice"),
        # No UserName in the request: the user comes from responseElements.accessKey.
        ("create-access-key-own", "alice"),
        ("update-access-key-active", "alice"),
        # IAM user names are unique regardless of case; the request may spell it either way.
        ("create-access-key", "ALICE"),
    ):
        result = watch_cli(tmp_path, sample(name, prod, user, keys[1]), cfg)
        assert result.exit_code == ExitCode.FINDINGS, (name, result.output)
        assert "note:" not in result.stdout
        first = result.stdout.splitlines()[0]
        assert first == f"VIOLATION  {arn} has 2 active access keys"
        assert len(keys) == 2 and all(f"{key} Active" in result.stdout for key in keys)
        assert f"fingerprint: {sarif.fingerprint(RULE_ID, arn)}" in result.stdout
        # An expired approval is shown, and does not silence the finding.
        assert "exception:   EXPIRED: migration window (owner web-team" in result.stdout
        assert "Traceback" not in result.output


def test_a_key_whose_last_use_cannot_be_read_is_never_shown_as_never_used(aws, tmp_path):
    prod = seed(aws, ORG).account_ids["prod"]
    keys = live_keys(aws, prod, "alice")
    aws.inject([Fault(action="GetAccessKeyLastUsed", account=prod, error="AccessDenied")])
    event = sample("create-access-key", prod, "alice", keys[1])
    result = watch_cli(tmp_path, event, settings(prod))
    assert result.exit_code == ExitCode.FINDINGS, result.output
    assert "never used" not in result.stdout
    assert all(f"{key} Active" in result.stdout for key in keys)
    assert result.stdout.count("last use unknown (AccessDenied)") == 2


def test_the_management_account_is_read_as_the_config_says(aws, tmp_path):
    seeded = seed(aws, ORG)
    management = seeded.management_account_id
    event = sample("create-access-key", management, "mgmt-ci")
    caller = watch_cli(tmp_path, event, settings(seeded.account_ids["prod"]))
    assert caller.exit_code == ExitCode.FINDINGS, caller.output
    assert f"arn:aws:iam::{management}:user/mgmt-ci has 2 active access keys" in caller.stdout
    # management_account: caller reads it with the caller's own credentials, as the sweep does.
    assert not aws.faults.assumed_roles

    skip = watch_cli(
        tmp_path, event, settings(seeded.account_ids["prod"], management_account="skip")
    )
    assert skip.exit_code == ExitCode.CLEAN, skip.output
    assert "note: management account; organization.management_account is 'skip'" in skip.stdout


# --- exit 0: compliant, excepted, gone, nothing to check --------------------------------------


def test_a_compliant_user_exits_0(aws, tmp_path):
    prod = seed(aws, ORG).account_ids["prod"]
    (active, inactive) = live_keys(aws, prod, "bob")
    event = sample("update-access-key-active", prod, "bob", active)
    result = watch_cli(tmp_path, event, settings(prod))
    assert result.exit_code == ExitCode.CLEAN, result.output
    assert result.stdout.startswith(f"COMPLIANT  arn:aws:iam::{prod}:user/bob has 1 active")
    assert f"{active} Active" in result.stdout and f"{inactive} Inactive" in result.stdout
    assert "fingerprint" not in result.stdout and "note:" not in result.stdout

    # The event's key is gone (here: a key bob never had): noted, and bob is still checked.
    gone_key = watch_cli(tmp_path, sample("create-access-key", prod, "bob"), settings(prod))
    assert gone_key.exit_code == ExitCode.CLEAN, gone_key.output
    assert gone_key.stdout.startswith("COMPLIANT")
    assert f"note: key {SAMPLE_KEY} of the event no longer exists" in gone_key.stdout


def test_an_excepted_user_exits_0_naming_the_exception(aws, tmp_path):
    prod = seed(aws, ORG).account_ids["prod"]
    arn = f"arn:aws:iam::{prod}:user/service/carol"
    result = watch_cli(tmp_path, sample("create-access-key", prod, "carol"), settings(prod))
    assert result.exit_code == ExitCode.CLEAN, result.output
    assert result.stdout.startswith(f"EXCEPTED   {arn} has 2 active access keys")
    assert (
        "exception:   approved: legacy batch job rotates its own keys (owner data-team, "
        "expires 2099-01-01, ticket SEC-42)"
    ) in result.stdout
    assert f"fingerprint: {sarif.fingerprint(RULE_ID, arn)}" in result.stdout


def test_a_deleted_user_is_not_an_error(aws, tmp_path):
    seeded = seed(aws, ORG)
    prod = seeded.account_ids["prod"]
    sts = boto3.client("sts", endpoint_url=aws.url, region_name="us-east-1")
    iam = member_iam(sts, prod, aws.url)
    iam.create_user(UserName="dave")
    key = iam.create_access_key(UserName="dave")["AccessKey"]["AccessKeyId"]
    iam.delete_access_key(UserName="dave", AccessKeyId=key)
    iam.delete_user(UserName="dave")
    aws.inject([])

    gone = watch_cli(tmp_path, sample("create-access-key", prod, "dave"), settings(prod))
    assert gone.exit_code == ExitCode.CLEAN, gone.output
    assert gone.stdout.startswith(f"GONE       user dave in account {prod}")
    assert f"note: user dave no longer exists in account {prod}" in gone.stdout

    # Deleted between ListUsers and ListAccessKeys: IAM answers NoSuchEntity (404).
    aws.inject([Fault(action="ListAccessKeys", account=prod, error="NoSuchEntity")])
    raced = watch_cli(tmp_path, sample("create-access-key", prod, "alice"), settings(prod))
    assert raced.exit_code == ExitCode.CLEAN, raced.output
    assert raced.stdout.startswith(f"GONE       user alice in account {prod}")


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("update-access-key-inactive", "a key was set Inactive; that never adds an active key"),
        (
            "create-access-key-limit-exceeded",
            "the CreateAccessKey call failed (LimitExceededException); it changed no key",
        ),
        (
            "create-access-key-root",
            "the root user acted on its own access keys; the rule covers IAM users only",
        ),
    ],
)
def test_events_that_cannot_add_an_active_key_exit_0_without_a_call(aws, tmp_path, name, note):
    result = watch_cli(tmp_path, sample(name, "210987654321"), settings("210987654321"))
    assert result.exit_code == ExitCode.CLEAN, result.output
    assert result.stdout.startswith("IGNORED")
    assert f"note: {note}" in result.stdout
    assert not aws.faults.calls


def test_with_the_one_active_key_rule_disabled_the_watch_judges_nothing(aws, tmp_path):
    off = settings("210987654321") | {
        "rules": {"iam-user-multiple-active-access-keys": {"enabled": False}}
    }
    result = watch_cli(tmp_path, sample("create-access-key", "210987654321", "alice"), off)
    assert result.exit_code == ExitCode.CLEAN, result.output
    assert result.stdout.startswith("IGNORED")
    assert "rule iam-user-multiple-active-access-keys is disabled in the config" in result.stdout
    assert not aws.faults.calls


# --- exit 3: the account, or the user, could not be read -------------------------------------


def test_a_denied_account_exits_3(aws, tmp_path):
    prod = seed(aws, ORG).account_ids["prod"]
    aws.inject([Fault(action="AssumeRole", account=prod, error="AccessDenied")])
    result = watch_cli(tmp_path, sample("create-access-key", prod), settings(prod))
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    assert result.stdout.startswith(f"UNREADABLE user alice in account {prod}")
    assert "error:       AccessDenied: injected by the orgscan fault layer" in result.stdout
    assert "Traceback" not in result.output

    # An SCP or permission boundary on the user's path denies only that user's keys: still no
    # verdict, never "compliant".
    aws.inject([Fault(action="ListAccessKeys", account=prod, error="AccessDenied")])
    partial = watch_cli(tmp_path, sample("create-access-key", prod, "bob"), settings(prod))
    assert partial.exit_code == ExitCode.INCOMPLETE, partial.output
    assert "COMPLIANT" not in partial.stdout


# --- exit 2: events it does not understand --------------------------------------------------


def _malformed() -> list[tuple[str, Any, str]]:
    good = sample("create-access-key", "123456789012")
    wrong_type = {**good, "detail-type": "AWS Console Sign In via CloudTrail"}
    no_account = sample("create-access-key", "123456789012")
    del no_account["detail"]["recipientAccountId"]
    anonymous = sample("update-access-key-active", "123456789012", requestParameters={})
    secret_user = sample(
        "create-access-key",
        "123456789012",
        requestParameters={"userName": FAKE_SECRET},
    )
    return [
        ("not JSON", "{not json", "not JSON (line 1, column 2)"),
        ("a list", "[]", "event: expected an object"),
        ("no envelope", {"hello": "world"}, "expected an EventBridge event"),
        ("wrong detail-type", wrong_type, "detail-type: expected 'AWS API Call via CloudTrail'"),
        (
            "another service",
            sample("create-access-key", "123456789012", eventSource="s3.amazonaws.com"),
            "detail.eventSource: expected 'iam.amazonaws.com'",
        ),
        (
            "another call",
            sample("create-access-key", "123456789012", eventName="DeleteAccessKey"),
            "detail.eventName: expected one of CreateAccessKey, UpdateAccessKey",
        ),
        ("no account", no_account, "detail.recipientAccountId: required"),
        (
            "bad account",
            sample("create-access-key", "123456789012", recipientAccountId="12345"),
            "detail.recipientAccountId: expected a 12-digit account id",
        ),
        ("whose key", anonymous, "detail: no user name in requestParameters"),
        (
            "a secret where a user name belongs",
            secret_user,
            "detail.requestParameters.userName: expected an IAM user name",
        ),
        (
            "bad status",
            sample(
                "update-access-key-active",
                "123456789012",
                requestParameters={"userName": "alice", "status": "On"},
            ),
            "detail.requestParameters.status: expected one of Active, Inactive, Expired",
        ),
    ]


@pytest.mark.parametrize(("case", "event", "reason"), _malformed(), ids=lambda v: str(v)[:24])
def test_events_not_understood_exit_2_with_the_reason_and_no_traceback(
    aws, tmp_path, case, event, reason
):
    result = watch_cli(tmp_path, event, {"scan": FAST})
    assert result.exit_code == ExitCode.USAGE, (case, result.output)
    assert "the event is not understood: " in result.stderr
    assert reason in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert FAKE_SECRET not in result.output
    assert not aws.faults.calls


def test_no_secret_from_the_event_reaches_the_output(aws, tmp_path):
    prod = seed(aws, ORG).account_ids["prod"]
    event = sample("create-access-key", prod)
    # CloudTrail leaves the secret out of CreateAccessKey's response; if one ever came along,
    # nothing may echo it.
    event["detail"]["responseElements"]["accessKey"]["secretAccessKey"] = FAKE_SECRET
    result = watch_cli(tmp_path, event, settings(prod), "--verbose")
    assert result.exit_code == ExitCode.FINDINGS, result.output
    assert FAKE_SECRET not in result.output
    # Nor any session credential the watch was issued, even with debug logging on.
    assert aws.faults.issued_secrets
    for secret in aws.faults.issued_secrets:
        assert secret not in result.output


# --- the Lambda: SNS with the sweep's fingerprint -------------------------------------------


@pytest.fixture
def topic(aws, monkeypatch, tmp_path):
    """An SNS topic with an SQS queue subscribed, and the Lambda's environment pointing at it."""
    sns = boto3.client("sns", endpoint_url=aws.url, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws.url, region_name="us-east-1")
    topic_arn = sns.create_topic(Name="orgscan-watch")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv(lambda_entry.TOPIC_VARIABLE, topic_arn)

    def configure(cfg: dict[str, Any]) -> None:
        path = tmp_path / "lambda-config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        monkeypatch.setenv(lambda_entry.CONFIG_VARIABLE, str(path))

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]

    return configure, received


def test_the_lambda_publishes_a_violation_with_the_sweeps_fingerprint(aws, topic, caplog):
    configure, received = topic
    prod = seed(aws, ORG).account_ids["prod"]
    configure(settings(prod))
    arn = f"arn:aws:iam::{prod}:user/alice"
    # The sweep's SARIF for the same organization: its alert identity for alice.
    swept = asyncio.run(run_scan(config(**settings(prod))))
    (sweep_result,) = [
        r
        for r in sarif.build(swept)["runs"][0]["results"]
        if r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == arn
    ]
    sweep_fingerprint = sweep_result["partialFingerprints"]["primaryLocationLineHash"]

    event = sample("create-access-key", prod)
    event["detail"]["responseElements"]["accessKey"]["secretAccessKey"] = FAKE_SECRET
    with caplog.at_level(logging.DEBUG):
        facts = lambda_entry.handler(event, None)

    assert facts["verdict"] == "violation" and facts["message_id"]
    (envelope,) = received()
    assert envelope["Subject"] == f"orgscan: alice in {prod} has 2 active access keys"
    alert = json.loads(envelope["Message"])
    assert alert["partialFingerprints"]["primaryLocationLineHash"] == sweep_fingerprint
    assert envelope["MessageAttributes"]["fingerprint"]["Value"] == sweep_fingerprint
    assert (alert["arn"], alert["state"], alert["active_key_count"]) == (arn, "open", 2)
    assert {k["id"] for k in alert["access_keys"]} == set(live_keys(aws, prod, "alice"))
    assert alert["expired_exception"]["owner"] == "web-team"
    assert alert["event"]["id"] == event["detail"]["eventID"]
    for text in (envelope["Message"], caplog.text):
        assert FAKE_SECRET not in text
        assert all(secret not in text for secret in aws.faults.issued_secrets)


def test_the_lambda_publishes_nothing_else_and_raises_what_it_cannot_evaluate(aws, topic):
    configure, received = topic
    prod = seed(aws, ORG).account_ids["prod"]
    configure(settings(prod))
    for user, verdict in (("bob", "compliant"), ("carol", "excepted"), ("nobody", "gone")):
        assert lambda_entry.handler(sample("create-access-key", prod, user), None)["verdict"] == (
            verdict
        )
    assert received() == []

    # Raised, so that Lambda retries and then dead-letters the event: never dropped silently.
    aws.inject([Fault(action="AssumeRole", account=prod, error="AccessDenied")])
    with pytest.raises(lambda_entry.WatchFailed, match=f"account {prod} could not be read"):
        lambda_entry.handler(sample("create-access-key", prod), None)
    with pytest.raises(EventError, match=r"detail\.eventName"):
        lambda_entry.handler(sample("create-access-key", prod, eventName="CreateUser"), None)
    assert received() == []
