"""Smoke check of the benchmark's pieces: `python -m bench.selfcheck` from the repository root.

Starts the simulator on a small organization, checks every operation through real boto3 clients,
runs the baseline against the ground truth, measures the simulator's capacity, and runs the
baseline again under tight rate limits to show throttles are returned and survived.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from bench.baseline import run_baseline
from bench.lower_bound import Scenario, lower_bound
from bench.simaws import (
    OrgParams,
    SimParams,
    ground_truth,
    measure_capacity,
    running_sim,
    sim_stats,
    use_sim,
)

ORG = OrgParams(accounts=5, users_mean=20, seed=11)
# "max_attempts" in a Config counts retries, not attempts: 1 would still retry once.
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def check_protocol(truth: dict[str, dict[str, int]]) -> None:
    """Every operation a scanner calls, through boto3, parsed into what AWS would give."""
    org = boto3.client("organizations", config=NO_RETRY)
    assert org.describe_organization()["Organization"]["MasterAccountId"] == next(iter(truth))
    found: list[str] = []
    parents = [root["Id"] for root in org.list_roots()["Roots"]]
    while parents:
        parent = parents.pop()
        for page in org.get_paginator("list_accounts_for_parent").paginate(ParentId=parent):
            found += [account["Id"] for account in page["Accounts"]]
        for page in org.get_paginator("list_organizational_units_for_parent").paginate(
            ParentId=parent, PaginationConfig={"PageSize": 2}
        ):
            parents += [ou["Id"] for ou in page["OrganizationalUnits"]]
    assert sorted(found) == sorted(truth), "the OU tree walk must find every account"
    page = org.list_accounts(MaxResults=3)
    assert len(page["Accounts"]) == 3 and "NextToken" in page

    member = list(truth)[1]
    credentials = boto3.client("sts", config=NO_RETRY).assume_role(
        RoleArn=f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole",
        RoleSessionName="selfcheck",
    )["Credentials"]
    iam = boto3.client(
        "iam",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=NO_RETRY,
    )
    pages = list(iam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 7}))
    assert pages[0]["IsTruncated"] and "Marker" in pages[0]
    users = [user for page in pages for user in page["Users"]]
    assert [user["Arn"] for user in users] == list(truth[member])
    keys = [
        key
        for user in users
        for key in iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
    ]
    last_used = iam.get_access_key_last_used(AccessKeyId=keys[0]["AccessKeyId"])
    assert last_used["UserName"] == keys[0]["UserName"]
    assert {"ServiceName", "Region"} <= last_used["AccessKeyLastUsed"].keys()

    assert iam.generate_credential_report()["State"] == "STARTED"
    assert iam.generate_credential_report()["State"] == "COMPLETE"
    report = iam.get_credential_report()
    assert report["ReportFormat"] == "text/csv"
    assert report["Content"].startswith(b"user,arn,")  # botocore decodes the base64 blob
    rows = list(csv.DictReader(io.StringIO(report["Content"].decode())))
    assert rows[0]["user"] == "<root_account>" and all(len(row) == 22 for row in rows)
    from_report = {
        row["arn"]: (row["access_key_1_active"] == "true") + (row["access_key_2_active"] == "true")
        for row in rows[1:]
    }
    assert from_report == truth[member], "the credential report must agree with the live keys"
    root_keys = rows[0]["access_key_1_last_rotated"] != "N/A"
    present = iam.get_account_summary()["SummaryMap"]["AccountAccessKeysPresent"]
    assert present == int(root_keys), "GetAccountSummary must agree with the report's root row"


def check_throttle_classified() -> None:
    """Both throttle shapes (query XML and JSON) are what botocore's standard mode retries."""
    calls: dict[str, Callable[[Any], object]] = {
        "organizations": lambda client: client.list_accounts(),
        "sts": lambda client: client.get_caller_identity(),
        "iam": lambda client: client.list_users(),
    }
    for service, call in calls.items():
        client = boto3.client(service, config=NO_RETRY)
        for _ in range(50):
            try:
                call(client)
            except ClientError as error:
                context = RetryContext(attempt_number=1, parsed_response=error.response)
                assert ThrottledRetryableChecker().is_retryable(context), error.response
                print(f"  {service}: {error.response['Error']['Code']} -> botocore retries it")
                break
        else:
            raise AssertionError(f"{service} was never throttled")


def scenario(truth: dict[str, dict[str, int]], params: SimParams) -> Scenario:
    return Scenario.from_truth(
        truth,
        latency=params.latency,
        iam_rate=params.iam_rate or math.inf,
        global_rate=params.global_rate or math.inf,
    )


def baseline_run(truth: dict[str, dict[str, int]], params: SimParams) -> dict[str, Any]:
    with running_sim(params) as url:
        use_sim(url)
        result = run_baseline()
        stats = sim_stats(url)
    assert result.active_keys == truth, "the baseline's answer differs from the ground truth"
    calls, throttles = stats["total_calls"], stats["total_throttles"]
    bound = lower_bound(scenario(truth, params))
    print(
        f"  baseline correct: {sum(map(len, truth.values()))} users in {len(truth)} accounts, "
        f"{result.wall_seconds:.2f} s, {calls} calls ({calls / result.wall_seconds:.0f}/s), "
        f"{throttles} throttled, {stats['retried_requests']} retried; "
        f"lower bound for a full live scan {bound.seconds:.2f} s"
    )
    return stats


def main() -> None:
    truth = ground_truth(ORG)
    print("protocol: every operation through boto3")
    with running_sim(SimParams(org=ORG, latency=0.0)) as url:
        use_sim(url)
        check_protocol(truth)
    print("  ok")

    print("baseline, 30 ms latency, no limits")
    baseline_run(truth, SimParams(org=ORG, latency=0.03))
    print("baseline, no latency, no limits (how fast one boto3 client asks)")
    baseline_run(truth, SimParams(org=ORG, latency=0.0))

    print("throttling: IAM 10/s per account, STS+Organizations 3/s, no latency")
    tight = SimParams(org=ORG, latency=0.0, iam_rate=10, global_rate=3)
    with running_sim(tight) as url:
        use_sim(url)
        check_throttle_classified()
    assert baseline_run(truth, tight)["total_throttles"] > 0, "tight limits must throttle"

    print("capacity: latency 0, no limits, aiohttp client in another process")
    print(f"  {measure_capacity()}")


if __name__ == "__main__":
    main()
