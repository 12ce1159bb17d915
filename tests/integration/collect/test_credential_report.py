"""Credential-report parsing of real AWS content, and the strategy over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orgscan.collect.credential_report import MalformedReport, ReportPolling, parse_report
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import KeySource, LastUseSource, RootKeys, RootKeySource, ScanStatus
from tests.conftest import config, run_scan, seed

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)
ACCOUNT = "111122223333"
# As AWS writes it: a root row, not_supported and no_information cells, N/A for no key.
REAL_REPORT = "\n".join(
    [
        HEADER,
        f"<root_account>,arn:aws:iam::{ACCOUNT}:root,2019-01-01T00:00:00+00:00,not_supported,"
        "2026-11-01T10:00:00+00:00,not_supported,not_supported,true,true,2019-01-01T00:00:00+00:00,"
        "2026-10-01T00:00:00+00:00,us-east-1,s3,true,2020-01-01T00:00:00+00:00,N/A,N/A,N/A,"
        "false,N/A,false,N/A",
        f"two-keys,arn:aws:iam::{ACCOUNT}:user/two-keys,2021-05-01T00:00:00+00:00,false,"
        "no_information,N/A,N/A,false,true,2021-05-01T00:00:00+00:00,2026-11-20T08:00:00+00:00,"
        "eu-west-1,sts,true,2022-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A",
        f"one-inactive,arn:aws:iam::{ACCOUNT}:user/ops/one-inactive,2021-05-01T00:00:00+00:00,true,"
        "2026-11-01T00:00:00+00:00,2021-05-01T00:00:00+00:00,N/A,true,true,"
        "2021-05-01T00:00:00+00:00,N/A,N/A,N/A,false,2022-01-01T00:00:00+00:00,N/A,N/A,N/A,"
        "false,N/A,false,N/A",
        f"no-keys,arn:aws:iam::{ACCOUNT}:user/no-keys,2021-05-01T00:00:00+00:00,true,"
        "2026-11-01T00:00:00+00:00,2021-05-01T00:00:00+00:00,N/A,true,false,N/A,N/A,N/A,N/A,"
        "false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
    ]
)


def test_real_report_content_is_parsed_exactly():
    generated = datetime(2026, 11, 22, 6, tzinfo=UTC)
    report = parse_report(REAL_REPORT.encode(), ACCOUNT, generated)
    users = {u.user_name: u for u in report.users.values()}
    # The root user is not an IAM user; its row says whether it has keys: two active here.
    assert set(users) == {"two-keys", "one-inactive", "no-keys"}
    assert report.root == RootKeys(RootKeySource.CREDENTIAL_REPORT, generated, True, 2)
    assert list(report.users) == [u.arn for u in users.values()]  # keyed by user ARN
    two = users["two-keys"]
    assert (two.key_count, two.active_key_count) == (2, 2)
    assert two.access_keys[0].last_used_service == "sts"
    assert two.access_keys[0].last_used_at.isoformat() == "2026-11-20T08:00:00+00:00"
    assert two.access_keys[1].last_used_at is None  # N/A is not a date: never used
    assert {(k.last_used_source, k.last_used_as_of) for k in two.access_keys} == {
        (LastUseSource.CREDENTIAL_REPORT, generated)
    }
    inactive = users["one-inactive"]
    assert (inactive.key_count, inactive.active_key_count) == (2, 1)
    assert inactive.path == "/ops/"
    assert users["no-keys"].key_count == 0
    assert all(u.source is KeySource.CREDENTIAL_REPORT for u in users.values())


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (REAL_REPORT.rsplit(",", 5)[0], 5, "expected 22 fields, got 17"),
        (
            REAL_REPORT.replace("false,N/A,N/A,N/A,N/A,false", "False,N/A,N/A,N/A,N/A,false"),
            5,
            "access_key_1_active is 'False'",
        ),
        (
            REAL_REPORT.replace(
                "2021-05-01T00:00:00+00:00,N/A,N/A,N/A,false,2022",
                "yesterday,N/A,N/A,N/A,false,2022",
            ),
            4,
            "access_key_1_last_rotated is 'yesterday'",
        ),
        (
            REAL_REPORT.replace("access_key_2_active,", "access_key_2_enabled,"),
            1,
            "header lacks column(s) access_key_2_active",
        ),
        ("", 1, "the report is empty"),
        (REAL_REPORT.replace("user/two-keys,", "role/two-keys,"), 3, "expected an IAM user ARN"),
    ],
)
def test_malformed_reports_fail_with_the_line(content, line, fragment):
    with pytest.raises(MalformedReport) as raised:
        parse_report(content.encode(), ACCOUNT)
    assert raised.value.error.code == "MalformedCredentialReport"
    assert raised.value.error.message.startswith(f"line {line}: ")
    assert fragment in raised.value.error.message


def test_non_utf8_report_is_malformed():
    with pytest.raises(MalformedReport, match="not UTF-8"):
        parse_report(b"user,arn\n\xff\xfe", ACCOUNT)


SMALL = OrgSpec(
    accounts=(
        AccountSpec(
            "a", "Root", (UserSpec("pair", (ACTIVE, ACTIVE)), UserSpec("solo", (ACTIVE, INACTIVE)))
        ),
        AccountSpec("b", "Root", (UserSpec("other", (ACTIVE,)),)),
    )
)
FAST_POLL = ReportPolling(first_delay=0.01, max_delay=0.05, timeout=5)


async def test_report_in_progress_is_polled_until_ready(aws):
    seeded = seed(aws, SMALL)
    a = seeded.account_ids["a"]
    aws.inject([Fault(action="GetCredentialReport", account=a, error="ReportInProgress", first=3)])
    result = await run_scan(
        config(scan={"strategy": "credential-report"}), report_polling=FAST_POLL
    )
    assert result.run.complete
    assert aws.faults.calls[("GetCredentialReport", a)] == 4
    assert [f.user_name for f in result.findings] == ["pair"]


async def test_report_never_ready_fails_the_account_after_a_bounded_time(aws):
    seeded = seed(aws, SMALL)
    a = seeded.account_ids["a"]
    aws.inject([Fault(action="GetCredentialReport", account=a, error="ReportInProgress")])
    polling = ReportPolling(first_delay=0.01, max_delay=0.05, timeout=0.3)
    result = await run_scan(config(scan={"strategy": "credential-report"}), report_polling=polling)
    failed = [r for r in result.accounts if r.scan_status is ScanStatus.FAILED]
    assert [r.account.id for r in failed] == [a]
    assert failed[0].error.code == "CredentialReportTimeout"
    # Backing off: far fewer polls than 0.3 s / 0.01 s.
    assert aws.faults.calls[("GetCredentialReport", a)] < 12


async def test_stale_report_is_corrected_live_and_never_produces_a_false_finding(aws):
    seeded = seed(aws, SMALL)
    a = seeded.account_ids["a"]
    two_keys_row = REAL_REPORT.splitlines()[2]
    # The report claims 'solo' has two active keys (live: one), lists three users deleted
    # since, and does not know 'pair', created after it with two active keys.
    stale = "\n".join([REAL_REPORT, two_keys_row.replace("two-keys", "solo")]).replace(ACCOUNT, a)
    aws.inject([Fault(action="GetCredentialReport", account=a, report=stale.encode())])
    result = await run_scan(
        config(scan={"strategy": "credential-report"}), report_polling=FAST_POLL
    )
    users = {u.user_name: u for u in result.users if u.account_id == a}

    assert set(users) == {"solo", "pair"}
    assert (users["solo"].source, users["solo"].active_key_count) == (KeySource.LIVE, 1)
    assert (users["pair"].source, users["pair"].active_key_count) == (KeySource.LIVE, 2)
    # The report's root row (an active root key, in this real report) is the account's.
    assert [(f.rule_id, f.user_name) for f in result.findings if f.account_id == a] == [
        ("iam-user-multiple-active-access-keys", "pair"),
        ("root-access-key-present", "<root_account>"),
    ]
    account = next(r for r in result.accounts if r.account.id == a)
    assert sorted(account.notes) == [
        f"user arn:aws:iam::{a}:user/{name} is in the credential report but was deleted since "
        "it was generated"
        for name in ("no-keys", "ops/one-inactive", "two-keys")
    ]
    assert account.credential_report_generated_at.isoformat() == "2026-11-22T06:00:00+00:00"


async def test_garbled_report_fails_the_account_and_never_counts_zero_keys(aws):
    seeded = seed(aws, SMALL)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    aws.inject([Fault(action="GetCredentialReport", account=a, report=REAL_REPORT[:700].encode())])
    result = await run_scan(
        config(scan={"strategy": "credential-report"}), report_polling=FAST_POLL
    )
    by_id = {r.account.id: r for r in result.accounts}
    assert by_id[a].scan_status is ScanStatus.FAILED
    assert by_id[a].error.code == "MalformedCredentialReport"
    assert by_id[a].error.message == "line 2: expected 22 fields, got 15"
    assert by_id[a].users == []
    assert by_id[b].scan_status is ScanStatus.SCANNED
    assert not result.run.complete
