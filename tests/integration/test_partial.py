"""Partial accounts: one user that cannot be read neither sinks its account nor vanishes.

moto enforces no IAM policy, so an SCP or permission boundary on one user's path, and users or
keys deleted mid-scan, are taught to it by the fault layer.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import yaml
from typer.testing import CliRunner

from orgscan.cli import ExitCode, app
from orgscan.delta import compare
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, INACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.evaluate import evaluate
from orgscan.model import NO_SUCH_ENTITY, Change, ScanError, ScanStatus
from orgscan.remediation.plan import Evidence, build_plan
from tests.conftest import config, run_scan, seed
from tests.report_fixtures import UNREADABLE_ARN, scan_result, users_in

ORG = OrgSpec(
    accounts=(
        AccountSpec(
            "web",
            "Root/Prod",
            (
                UserSpec("pair", (ACTIVE, ACTIVE)),
                UserSpec("solo", (ACTIVE, INACTIVE)),
                UserSpec("vendor", (ACTIVE, ACTIVE), "/contractors/"),
            ),
        ),
        AccountSpec("data", "Root/Prod", (UserSpec("etl", (ACTIVE,)),)),
    )
)
SCP = (
    "User: arn:aws:sts::000000000000:assumed-role/OrgScanAudit/orgscan is not authorized to "
    "perform: iam:ListAccessKeys on resource: user vendor with an explicit deny in a service "
    "control policy"
)


def by_name(result, seeded):
    names = {v: k for k, v in seeded.account_ids.items()}
    return {names[r.account.id]: r for r in result.accounts}


def users(result):
    return {u.user_name: u for u in result.users}


async def test_an_scp_on_one_user_makes_the_account_partial_and_keeps_every_other_user(aws):
    seeded = seed(aws, ORG)
    web = seeded.account_ids["web"]
    aws.inject(
        [
            Fault(
                action="ListAccessKeys",
                account=web,
                user="vendor",
                error="AccessDenied",
                message=SCP,
            )
        ]
    )
    result = await run_scan()

    accounts = by_name(result, seeded)
    assert accounts["web"].scan_status is ScanStatus.PARTIAL
    assert accounts["web"].error is None
    assert accounts["web"].user_count == 3
    assert accounts["data"].scan_status is ScanStatus.SCANNED
    vendor = users(result)["vendor"]
    assert vendor.error == ScanError("AccessDenied", SCP)
    assert (vendor.active_key_count, vendor.key_count, vendor.access_keys) == (None, None, ())
    assert vendor.arn == f"arn:aws:iam::{web}:user/contractors/vendor"
    # Every other user keeps its evidence, the flagged one its last-used data too.
    assert users(result)["pair"].active_key_count == 2
    assert all(k.last_used_error is None for k in users(result)["pair"].access_keys)
    assert (users(result)["solo"].key_count, users(result)["solo"].active_key_count) == (2, 1)
    assert users(result)["etl"].active_key_count == 1
    # The unreadable user is no finding (nothing is known of its keys), and never a pass: its
    # account is partial, so the run is incomplete.
    assert [f.user_name for f in result.findings] == ["pair"]
    assert not result.run.complete
    # One failed call for the user, no retry of the account.
    assert aws.faults.calls[("ListUsers", web)] == 1
    assert aws.faults.calls[("ListAccessKeys", web)] == 3


def test_a_partial_account_is_counted_apart_in_every_output_and_exits_3(aws, tmp_path: Path):
    seeded = seed(aws, ORG)
    web = seeded.account_ids["web"]
    aws.inject(
        [
            Fault(
                action="ListAccessKeys",
                account=web,
                user="vendor",
                error="AccessDenied",
                message=SCP,
            )
        ]
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"scan": {"account_rate_limit": 500}}))
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["scan", "-c", str(cfg), "-o", str(out), "-q"])

    assert run.exit_code == ExitCode.INCOMPLETE, run.output
    assert "accounts: 2 scanned, 1 partial, 0 failed, 0 skipped (of 3)" in run.output
    assert f"partial:  {web} (web): 1 user(s) could not be read (AccessDenied)" in run.output
    assert "users:    4 (1 could not be read)" in run.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounts"] == {"scanned": 2, "partial": 1, "failed": 0, "skipped": 0}
    evidence = json.loads((out / "findings.json").read_text())
    assert evidence["summary"]["accounts_partial"] == 1
    (vendor,) = [u for u in users_in(evidence) if u["user_name"] == "vendor"]
    assert vendor["active_key_count"] is None
    assert vendor["error"] == {"code": "AccessDenied", "message": SCP}
    rows = list(csv.DictReader(io.StringIO((out / "findings.csv").read_text())))
    (row,) = [r for r in rows if r["user_name"] == "vendor"]
    assert (row["state"], row["account_scan_status"]) == ("error", "partial")
    sarif = json.loads((out / "orgscan.sarif").read_text())
    invocation = sarif["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["properties"]["accounts"]["partial"] == 1
    html = (out / "report.html").read_text()
    assert 'data-metric="accounts_partial"' in html
    assert f'data-unreadable="arn:aws:iam::{web}:user/contractors/vendor"' in html


async def test_users_and_keys_deleted_mid_scan_are_notes_and_the_account_stays_scanned(aws):
    seeded = seed(aws, ORG)
    web, data = seeded.account_ids["web"], seeded.account_ids["data"]
    aws.inject(
        [
            # A key of a flagged user deleted between ListAccessKeys and GetAccessKeyLastUsed.
            Fault(action="GetAccessKeyLastUsed", account=web, error=NO_SUCH_ENTITY, first=1),
            # A user deleted between ListUsers and ListAccessKeys.
            Fault(action="ListAccessKeys", account=data, user="etl", error=NO_SUCH_ENTITY),
        ]
    )
    result = await run_scan()

    accounts = by_name(result, seeded)
    assert accounts["web"].scan_status is ScanStatus.SCANNED
    assert accounts["data"].scan_status is ScanStatus.SCANNED
    assert result.run.complete
    # The deleted user is gone from the evidence, with a note saying so.
    assert "etl" not in users(result)
    assert accounts["data"].notes == [
        f"user arn:aws:iam::{data}:user/etl was deleted between ListUsers and ListAccessKeys"
    ]
    # The key's user is kept, that key's last use unknown rather than "never used".
    unknown = [
        (u.user_name, k)
        for u in result.users
        for k in u.access_keys
        if k.last_used_error is not None
    ]
    ((name, key),) = unknown
    assert key.last_used_error.code == NO_SUCH_ENTITY
    assert key.last_used_at is None
    assert users(result)[name].active_key_count == 2
    assert any(
        f"key {key.id} of user" in note and "last use is unknown" in note
        for note in accounts["web"].notes
    )
    assert {f.user_name for f in result.findings} == {"pair", "vendor"}


async def test_the_credential_report_strategy_reads_partial_accounts_the_same_way(aws):
    seeded = seed(aws, ORG)
    web = seeded.account_ids["web"]
    aws.inject(
        [
            # The report flags vendor; its live re-check is denied.
            Fault(action="ListAccessKeys", account=web, user="vendor", error="AccessDenied"),
            Fault(action="GetAccessKeyLastUsed", account=web, error=NO_SUCH_ENTITY, first=1),
        ]
    )
    result = await run_scan(config(scan={"strategy": "credential-report"}))

    accounts = by_name(result, seeded)
    assert accounts["web"].scan_status is ScanStatus.PARTIAL
    assert users(result)["vendor"].error.code == "AccessDenied"
    assert users(result)["vendor"].active_key_count is None
    # A stale report never produces a finding: the denied re-check leaves vendor unreadable.
    assert [f.user_name for f in result.findings] == ["pair"]
    (pair_key,) = [k for k in users(result)["pair"].access_keys if k.last_used_error]
    assert pair_key.last_used_error.code == NO_SUCH_ENTITY
    assert any("last use is unknown" in note for note in accounts["web"].notes)
    assert accounts["data"].scan_status is ScanStatus.SCANNED
    assert not result.run.complete


def test_a_finding_whose_user_could_not_be_read_now_is_unverified_not_resolved():
    current = scan_result()
    # The baseline read the now unreadable user, with two active keys: a finding then.
    two_keys = next(u for u in current.users if u.user_name == "deployer").access_keys
    accounts = [
        replace(
            a,
            users=[
                replace(u, error=None, access_keys=two_keys) if u.arn == UNREADABLE_ARN else u
                for u in a.users
            ],
        )
        for a in current.accounts
    ]
    baseline = replace(
        current,
        run=replace(current.run, id="20250101T000000Z-00000000"),
        accounts=accounts,
        findings=evaluate(accounts, current.run.rules, (), "aws", current.run.started_at),
    )
    assert UNREADABLE_ARN in {f.arn for f in baseline.findings}

    changes = {c.arn: c.change for c in compare(baseline, current).findings}
    assert changes[UNREADABLE_ARN] is Change.UNVERIFIED


def test_a_key_whose_last_use_is_unknown_is_never_planned_for_deactivation():
    result = scan_result()
    deployer = next(u for u in result.users if u.user_name == "deployer")
    unknown = replace(
        deployer,
        access_keys=(
            replace(deployer.access_keys[0], last_used_error=ScanError("AccessDenied", "denied")),
            deployer.access_keys[1],
        ),
    )
    accounts = [
        replace(a, users=[unknown if u.arn == deployer.arn else u for u in a.users])
        for a in result.accounts
    ]
    plan = build_plan(replace(result, accounts=accounts), Evidence("/tmp/findings.json", "0" * 64))
    assert deployer.arn not in {a.arn for a in plan.actions}
    assert any(
        line.startswith(f"{deployer.arn}: iam-user-multiple-active-access-keys: the last use of")
        for line in plan.not_planned
    )
