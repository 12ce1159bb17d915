"""The sequential baseline: what a typical per-account script does, with plain boto3.

List the accounts, then one account at a time: assume a role (the management account uses the
caller's own credentials), list its users, list each user's keys and count the active ones. The
clients find the endpoint and credentials in the environment (`simaws.sim_env`), like any script.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import boto3
from botocore.config import Config


@dataclass(frozen=True, slots=True)
class BaselineResult:
    wall_seconds: float
    active_keys: dict[str, dict[str, int]]  # account id -> user ARN -> active keys


def run_baseline(
    role_name: str = "OrganizationAccountAccessRole", max_attempts: int = 10
) -> BaselineResult:
    # Standard mode's default of 3 attempts gives up under sustained throttling; the benchmark
    # needs the baseline's answer to be complete, so it tries longer. ("max_attempts" in a Config
    # would count retries, not attempts.)
    config = Config(retries={"mode": "standard", "total_max_attempts": max_attempts})
    started = time.perf_counter()
    session = boto3.Session()
    management_id = session.client("sts", config=config).get_caller_identity()["Account"]
    sts = session.client("sts", config=config)
    accounts = [
        account
        for page in session.client("organizations", config=config)
        .get_paginator("list_accounts")
        .paginate()
        for account in page["Accounts"]
        if account["Status"] == "ACTIVE"
    ]
    active_keys: dict[str, dict[str, int]] = {}
    for account in accounts:
        account_id = account["Id"]
        credentials: dict[str, str] = {}
        if account_id != management_id:
            assumed = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/{role_name}",
                RoleSessionName="baseline",
            )["Credentials"]
            credentials = {
                "aws_access_key_id": assumed["AccessKeyId"],
                "aws_secret_access_key": assumed["SecretAccessKey"],
                "aws_session_token": assumed["SessionToken"],
            }
        # One session for all clients: a new boto3.Session per account reloads every model
        # (~90 ms CPU), which would charge the baseline for something no script needs to do.
        iam = session.client("iam", config=config, **credentials)
        users = active_keys[account_id] = {}
        for page in iam.get_paginator("list_users").paginate():
            for user in page["Users"]:
                keys = iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
                users[user["Arn"]] = sum(1 for key in keys if key["Status"] == "Active")
    return BaselineResult(time.perf_counter() - started, active_keys)
