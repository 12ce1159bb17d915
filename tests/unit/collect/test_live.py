"""Live collection against an in-memory IAM: pages, per-user errors, account errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from orgscan.collect.credential_report import ReportPolling
from orgscan.collect.live import collect_live
from orgscan.collect.usage import Needs
from orgscan.collect.users import IamUser, list_users, live_user_keys
from tests.unit.fakes import FakeIam, client_error

ACCOUNT = "111111111111"
COUNT_ONLY = Needs(flagged_key_last_use=True)  # the one-active-key rule alone


async def test_every_page_of_users_is_read():
    iam = FakeIam({f"user-{n:02d}": {} for n in range(5)}, page=2)
    users = await list_users(iam)
    assert [u.name for u in users] == [f"user-{n:02d}" for n in range(5)]
    assert [op for op, _ in iam.calls] == ["ListUsers"] * 3


async def test_a_user_denied_is_recorded_with_its_error_and_the_account_goes_on():
    iam = FakeIam({"alice": {"AKIA1": "Active", "AKIA2": "Active"}, "bob": {"AKIA3": "Active"}})
    iam.fail["ListAccessKeys"] = [client_error("AccessDenied", "ListAccessKeys", "an SCP")]
    collected = await collect_live(iam, ACCOUNT, 1, COUNT_ONLY, ReportPolling())
    by_name = {u.user_name: u for u in collected.users}
    assert by_name["alice"].error is not None and by_name["alice"].error.code == "AccessDenied"
    assert by_name["alice"].active_key_count is None  # unknown, neither pass nor finding
    assert by_name["bob"].active_key_count == 1


async def test_credentials_refused_fail_the_account_not_one_user():
    iam = FakeIam({"alice": {"AKIA1": "Active"}})
    iam.fail["ListAccessKeys"] = [client_error("ExpiredToken", "ListAccessKeys")]
    with pytest.raises(ClientError):
        await live_user_keys(iam, ACCOUNT, IamUser("alice", "arn", "/"))


async def test_a_user_deleted_after_listing_is_left_out():
    iam = FakeIam({})
    assert await live_user_keys(iam, ACCOUNT, IamUser("gone", "arn", "/")) is None


async def test_last_use_is_read_only_for_users_the_rule_flags():
    iam = FakeIam({"alice": {"AKIA1": "Active", "AKIA2": "Active"}, "bob": {"AKIA3": "Active"}})
    await collect_live(iam, ACCOUNT, 2, COUNT_ONLY, ReportPolling())
    looked_up = sorted(p["AccessKeyId"] for op, p in iam.calls if op == "GetAccessKeyLastUsed")
    assert looked_up == ["AKIA1", "AKIA2"]
