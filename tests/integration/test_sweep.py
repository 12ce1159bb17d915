"""The quarterly workflow on moto: changes since a baseline, and plan → apply → rollback."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import boto3
import yaml
from typer.testing import CliRunner

from orgscan.cli import ExitCode, app
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.demo.seed import member_iam as seeded_member_iam
from orgscan.model import iso, utcnow
from orgscan.rules import MULTIPLE_ACTIVE_KEYS as MULTI
from tests.conftest import seed
from tests.integration.collect.test_credential_report import HEADER
from tests.report_fixtures import users_in

ORG = OrgSpec(
    management_users=(UserSpec("ops", (ACTIVE, ACTIVE)),),
    accounts=(
        AccountSpec(
            "a", "Root/Prod", (UserSpec("pair", (ACTIVE, ACTIVE)), UserSpec("solo", (ACTIVE,)))
        ),
        AccountSpec("b", "Root/Dev", (UserSpec("twin", (ACTIVE, ACTIVE)),)),
    ),
)


def cli(*args: str):
    return CliRunner().invoke(app, [*args])


def member_iam(account_id: str):
    return seeded_member_iam(boto3.client("sts"), account_id)


def keys(iam, user: str) -> dict[str, str]:
    return {
        k["AccessKeyId"]: k["Status"]
        for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    }


def scan(tmp_path: Path, name: str, *extra: str):
    cfg = tmp_path / "config.yaml"
    if not cfg.exists():
        cfg.write_text(yaml.safe_dump({"scan": {"account_rate_limit": 500}}))
    result = cli("scan", "-c", str(cfg), "-o", str(tmp_path / name), "-q", *extra)
    return result, tmp_path / name


def test_plan_apply_rescan_rollback_rescan(aws, tmp_path):
    seeded = seed(aws, ORG)
    a = seeded.account_ids["a"]
    iam_a = member_iam(a)
    first, used = sorted(keys(iam_a, "pair"))
    # The older key is the one in use, so the plan must keep it, not the newer one.
    use_key(used, seeded.key_secrets[used])
    aws.inject([])

    before, out = scan(tmp_path, "q1")
    assert before.exit_code == ExitCode.FINDINGS
    assert len(json.loads((out / "findings.json").read_text())["findings"]) == 3

    plan_path = tmp_path / "plan.json"
    planned = cli("remediate", "plan", str(out / "findings.json"), "--output", str(plan_path))
    assert planned.exit_code == 0, planned.output
    plan = json.loads(plan_path.read_text())
    pair = next(p for p in plan["actions"] if p["user_name"] == "pair")
    assert pair["keep"] == used
    assert pair["keep_reason"] == "most recently used"
    assert [k["access_key_id"] for k in pair["deactivate"]] == [first]
    script = plan_path.with_suffix(".sh").read_text()
    assert (
        f"aws iam update-access-key --user-name pair --access-key-id {first} --status Inactive"
        in script
    )
    assert "delete" not in script.replace("nothing is deleted", "").lower()

    config = str(tmp_path / "config.yaml")
    aws.inject([])  # count only what apply does
    applied = cli("remediate", "apply", str(plan_path), "--config", config, "--yes")
    assert applied.exit_code == ExitCode.CLEAN, applied.output
    assert "3 deactivated, 0 skipped, 0 failed" in applied.output
    assert keys(iam_a, "pair") == {first: "Inactive", used: "Active"}
    # The separate remediation role did the work; the audit role was never used for it.
    assert aws.faults.assumed_roles
    assert all(r.endswith(":role/OrgScanRemediation") for r in aws.faults.assumed_roles)
    entry = journal_of(tmp_path / "remediation-journal.jsonl")[first]
    assert (entry["outcome"], entry["before_status"], entry["after_status"]) == (
        "deactivated",
        "Active",
        "Inactive",
    )

    clean, _ = scan(tmp_path, "q2")
    assert clean.exit_code == ExitCode.CLEAN, clean.output

    rolled = cli(
        "remediate",
        "rollback",
        str(tmp_path / "remediation-journal.jsonl"),
        "--config",
        config,
        "--yes",
    )
    assert rolled.exit_code == ExitCode.CLEAN, rolled.output
    assert "3 reactivated" in rolled.output
    assert keys(iam_a, "pair") == {first: "Active", used: "Active"}

    again, out3 = scan(tmp_path, "q3")
    assert again.exit_code == ExitCode.FINDINGS
    assert len(json.loads((out3 / "findings.json").read_text())["findings"]) == 3


def use_key(key_id: str, secret: str) -> None:
    """Sign one request with the key: moto records it as the key's last use, as AWS would."""
    boto3.client(
        "sts", aws_access_key_id=key_id, aws_secret_access_key=secret
    ).get_caller_identity()


def test_apply_skips_keys_that_changed_since_the_plan(aws, tmp_path):
    seeded = seed(aws, ORG)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    _, out = scan(tmp_path, "q1")
    plan_path = tmp_path / "plan.json"
    assert cli("remediate", "plan", str(out / "findings.json"), "-o", str(plan_path)).exit_code == 0
    actions = {p["account_id"]: p for p in json.loads(plan_path.read_text())["actions"]}
    (doomed,) = [k["access_key_id"] for k in actions[a]["deactivate"]]
    # After the plan, an application starts using the key planned for deactivation...
    use_key(doomed, seeded.key_secrets[doomed])
    # ...and in account b someone deactivates the very key the plan keeps.
    iam_b = member_iam(b)
    iam_b.update_access_key(UserName="twin", AccessKeyId=actions[b]["keep"], Status="Inactive")
    aws.inject([])

    applied = cli(
        "remediate", "apply", str(plan_path), "-c", str(tmp_path / "config.yaml"), "--yes"
    )
    assert applied.exit_code == ExitCode.FINDINGS, applied.output  # some keys were skipped
    assert keys(member_iam(a), "pair")[doomed] == "Active"
    assert set(keys(iam_b, "twin").values()) == {"Active", "Inactive"}  # untouched
    entries = journal_of(tmp_path / "remediation-journal.jsonl")
    assert entries[doomed]["outcome"] == "skipped"
    assert "after the plan was made (the plan saw never used)" in entries[doomed]["reason"]
    (twin_entry,) = [e for e in entries.values() if e["account_id"] == b]
    assert twin_entry["outcome"] == "skipped"
    assert "could lock the user out" in twin_entry["reason"]
    ops = [e for e in entries.values() if e["account_id"] == seeded.management_account_id]
    assert [e["outcome"] for e in ops] == ["deactivated"]


def test_a_denied_account_fails_alone_and_exits_3(aws, tmp_path):
    seeded = seed(aws, ORG)
    b = seeded.account_ids["b"]
    _, out = scan(tmp_path, "q1")
    plan_path = tmp_path / "plan.json"
    cli("remediate", "plan", str(out / "findings.json"), "-o", str(plan_path))
    aws.inject([Fault(action="AssumeRole", account=b, error="AccessDenied")])
    applied = cli(
        "remediate", "apply", str(plan_path), "-c", str(tmp_path / "config.yaml"), "--yes"
    )
    assert applied.exit_code == ExitCode.INCOMPLETE
    assert "2 deactivated, 0 skipped, 1 failed" in applied.output
    assert f"failed   arn:aws:iam::{b}:user/twin" in applied.output


def test_apply_without_consent_changes_nothing(aws, tmp_path):
    seed(aws, ORG)
    _, out = scan(tmp_path, "q1")
    plan_path = tmp_path / "plan.json"
    cli("remediate", "plan", str(out / "findings.json"), "-o", str(plan_path))
    refused = cli("remediate", "apply", str(plan_path), "--config", str(tmp_path / "config.yaml"))
    assert refused.exit_code == ExitCode.USAGE
    assert "pass --yes" in refused.output
    assert "UpdateAccessKey" not in {action for action, _ in aws.faults.calls}


def test_baseline_delta_new_resolved_unverified_and_coverage(aws, tmp_path):
    seeded = seed(aws, ORG)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    _, q1 = scan(tmp_path, "q1")
    # A quarter later: pair fixed, solo gained a second key, account b's role is broken.
    iam_a = member_iam(a)
    iam_a.update_access_key(
        UserName="pair", AccessKeyId=sorted(keys(iam_a, "pair"))[0], Status="Inactive"
    )
    iam_a.create_access_key(UserName="solo")
    aws.inject([Fault(action="AssumeRole", account=b, error="AccessDenied")])
    result, q2 = scan(tmp_path, "q2", "--baseline", str(q1 / "findings.json"))
    assert result.exit_code == ExitCode.INCOMPLETE
    assert "1 new, 1 unchanged, 1 resolved, 1 unverified" in result.output

    delta = json.loads((q2 / "findings.json").read_text())["delta"]
    q1_run = json.loads((q1 / "findings.json").read_text())["run"]["id"]
    assert delta["baseline_run_id"] == q1_run
    changes = {c["user_name"]: c["change"] for c in delta["findings"]}
    assert changes == {"solo": "new", "ops": "unchanged", "pair": "resolved", "twin": "unverified"}
    assert delta["coverage_lost"] == [b]
    assert delta["accounts_added"] == delta["accounts_removed"] == []

    sarif = json.loads((q2 / "orgscan.sarif").read_text())["runs"][0]["results"]
    states = {r["locations"][0]["logicalLocations"][0]["name"]: r["baselineState"] for r in sarif}
    assert states == {"solo": "new", "ops": "unchanged", "pair": "absent"}
    absent = next(r for r in sarif if r["baselineState"] == "absent")
    assert (absent["kind"], absent["level"]) == ("pass", "none")
    html = (q2 / "report.html").read_text()
    assert 'id="delta"' in html and 'data-change="unverified"' in html

    # The same comparison on its own, from the two evidence files.
    diffed = cli("diff", str(q1 / "findings.json"), str(q2 / "findings.json"))
    assert diffed.exit_code == 0
    assert f"resolved   {a} (a) {MULTI} arn:aws:iam::{a}:user/pair" in diffed.output
    assert f"coverage lost: {b}" in diffed.output
    as_json = json.loads(
        cli("diff", str(q1 / "findings.json"), str(q2 / "findings.json"), "--json").output
    )
    assert as_json["counts"] == {"new": 1, "unchanged": 1, "resolved": 1, "unverified": 1}


def one_key_report(account_id: str, user: str) -> bytes:
    """A credential report from before the user's second key: one active key, a day old and
    not used yet, which no rule could fail."""
    created = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    row = (
        f"{user},arn:aws:iam::{account_id}:user/{user},{created},false,N/A,N/A,"
        f"N/A,false,true,{created},N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,"
        "false,N/A,false,N/A"
    )
    return f"{HEADER}\n{row}\n".encode()


def test_a_stale_credential_report_never_calls_a_baseline_finding_resolved(aws, tmp_path):
    seeded = seed(aws, ORG)
    a = seeded.account_ids["a"]
    _, q1 = scan(tmp_path, "q1")  # live: pair, twin and ops each have two active keys
    baseline = q1 / "findings.json"
    # Account a's cached credential report predates the baseline: pair had one key then.
    before = iso(utcnow() - timedelta(hours=3))
    stale = Fault(
        action="GetCredentialReport",
        account=a,
        report=one_key_report(a, "pair"),
        report_generated_at=before,
    )
    aws.inject([stale])
    result, q2 = scan(
        tmp_path, "q2", "--strategy", "credential-report", "--baseline", str(baseline)
    )
    assert result.exit_code == ExitCode.FINDINGS, result.output
    # The baseline's finding was re-read live, not taken from the stale report.
    assert "0 new, 3 unchanged, 0 resolved, 0 unverified" in result.output
    evidence = json.loads((q2 / "findings.json").read_text())
    pair = next(u for u in users_in(evidence) if u["user_name"] == "pair")
    assert (pair["source"], pair["active_key_count"]) == ("live", 2)
    assert ("ListAccessKeys", a) in aws.faults.calls

    # Scanned without --baseline, pair comes from the report alone: a later diff must not
    # read its absence as a fix.
    aws.inject([stale])
    _, q3 = scan(tmp_path, "q3", "--strategy", "credential-report")
    diffed = cli("diff", str(baseline), str(q3 / "findings.json"))
    assert diffed.exit_code == 0, diffed.output
    assert f"unverified {a} (a) {MULTI} arn:aws:iam::{a}:user/pair" in diffed.output
    assert f"credential report generated {before}, older than the baseline" in diffed.output
    delta = json.loads(cli("diff", str(baseline), str(q3 / "findings.json"), "--json").output)
    assert delta["counts"] == {"new": 0, "unchanged": 2, "resolved": 0, "unverified": 1}
    (gone,) = [c for c in delta["findings"] if c["change"] == "unverified"]
    assert "were not re-read live" in gone["reason"]

    # A report generated after the baseline saw the account can show the fix.
    aws.inject([replace(stale, report_generated_at=iso(utcnow()))])
    _, q4 = scan(tmp_path, "q4", "--strategy", "credential-report")
    delta = json.loads(cli("diff", str(baseline), str(q4 / "findings.json"), "--json").output)
    assert delta["counts"] == {"new": 0, "unchanged": 2, "resolved": 1, "unverified": 0}


def test_a_baseline_of_another_schema_is_rejected_clearly(aws, tmp_path):
    seed(aws, ORG)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": "0.9", "run": {}}))
    result, out = scan(tmp_path, "q1", "--baseline", str(old))
    assert result.exit_code == ExitCode.USAGE
    assert (
        "schema_version '0.9' is not supported; this orgscan reads '1.0', '1.1', '2.0' or '2.1'"
        in result.output
    )
    assert not (out / "findings.json").exists()


def plan_for(aws, tmp_path, seeded=None):
    _, out = scan(tmp_path, "q1")
    plan_path = tmp_path / "plan.json"
    assert cli("remediate", "plan", str(out / "findings.json"), "-o", str(plan_path)).exit_code == 0
    aws.inject([])
    return plan_path, {p["account_id"]: p for p in json.loads(plan_path.read_text())["actions"]}


def journal_of(path: Path) -> dict[str, dict]:
    """Each key's latest entry, read straight from the JSON Lines file."""
    latest = {}
    for line in path.read_text().splitlines()[1:]:
        record = json.loads(line)
        if record["record"] == "entry":
            latest[record["access_key_id"]] = record
    return latest


def test_a_key_already_in_use_and_used_again_after_the_plan_is_skipped(aws, tmp_path):
    import time

    seeded = seed(aws, ORG)
    a = seeded.account_ids["a"]
    older, newer = sorted(keys(member_iam(a), "pair"))
    use_key(older, seeded.key_secrets[older])
    time.sleep(1.1)  # last-used dates must differ
    use_key(newer, seeded.key_secrets[newer])  # the most recently used: the one to keep
    plan_path, actions = plan_for(aws, tmp_path)
    assert actions[a]["keep"] == newer
    (planned,) = actions[a]["deactivate"]
    assert planned["access_key_id"] == older and planned["last_used_at"] is not None
    time.sleep(1.1)
    use_key(older, seeded.key_secrets[older])  # still in use somewhere: must not be cut off

    applied = cli(
        "remediate", "apply", str(plan_path), "-c", str(tmp_path / "config.yaml"), "--yes"
    )
    assert applied.exit_code == ExitCode.FINDINGS
    entry = journal_of(tmp_path / "remediation-journal.jsonl")[older]
    assert entry["outcome"] == "skipped"
    assert f"(the plan saw {planned['last_used_at']})" in entry["reason"]
    assert keys(member_iam(a), "pair")[older] == "Active"


def test_rollback_touches_only_what_apply_deactivated_and_journals_are_never_overwritten(
    aws, tmp_path
):
    seeded = seed(aws, ORG)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    plan_path, actions = plan_for(aws, tmp_path)
    (disabled_by_hand,) = [k["access_key_id"] for k in actions[b]["deactivate"]]
    member_iam(b).update_access_key(
        UserName="twin", AccessKeyId=disabled_by_hand, Status="Inactive"
    )
    config = str(tmp_path / "config.yaml")
    assert cli("remediate", "apply", str(plan_path), "-c", config, "--yes").exit_code == 1
    journal = tmp_path / "remediation-journal.jsonl"
    assert journal_of(journal)[disabled_by_hand]["reason"] == "already Inactive"
    before = journal.read_text()

    again = cli("remediate", "apply", str(plan_path), "-c", config, "--yes")
    assert again.exit_code == ExitCode.USAGE
    assert "already exists and records earlier changes" in again.output
    assert journal.read_text() == before

    assert cli("remediate", "rollback", str(journal), "-c", config, "--yes").exit_code == 0
    # Someone disabled that key on purpose; rolling back orgscan's change must not undo theirs.
    assert keys(member_iam(b), "twin")[disabled_by_hand] == "Inactive"
    assert set(keys(member_iam(a), "pair").values()) == {"Active"}


def test_a_lost_answer_stays_pending_and_is_rolled_back_only_on_request(aws, tmp_path):
    seeded = seed(aws, ORG)
    a = seeded.account_ids["a"]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"scan": {"call_timeout": 0.5, "max_attempts": 1}}))
    plan_path, actions = plan_for(aws, tmp_path)
    (doomed,) = [k["access_key_id"] for k in actions[a]["deactivate"]]
    # AWS makes the change, but only after the answer has timed out.
    aws.inject([Fault(action="UpdateAccessKey", account=a, delay=1.5)])
    applied = cli("remediate", "apply", str(plan_path), "-c", str(cfg), "--yes")
    assert applied.exit_code == ExitCode.INCOMPLETE, applied.output
    journal = tmp_path / "remediation-journal.jsonl"
    assert journal_of(journal)[doomed]["outcome"] == "pending"
    assert "the request may yet arrive" in journal_of(journal)[doomed]["reason"]
    import time

    time.sleep(1.2)  # let the delayed change land
    assert keys(member_iam(a), "pair")[doomed] == "Inactive"

    aws.inject([])
    # Rollback needs no lost answers: the usual timeout, so a busy machine cannot fail it.
    cfg.write_text(yaml.safe_dump({"scan": {"max_attempts": 1}}))
    # Nothing shows that orgscan, not someone else, made it Inactive: only on request.
    kept = cli("remediate", "rollback", str(journal), "-c", str(cfg), "--yes")
    assert kept.exit_code == ExitCode.FINDINGS, kept.output
    assert keys(member_iam(a), "pair")[doomed] == "Inactive"
    rolled = cli(
        "remediate",
        "rollback",
        str(journal),
        "-c",
        str(cfg),
        "--yes",
        "--include-pending",
        "--key",
        doomed,
        "--journal",
        str(tmp_path / "rollback-2.jsonl"),
    )
    assert rolled.exit_code == ExitCode.CLEAN, rolled.output
    assert keys(member_iam(a), "pair")[doomed] == "Active"


def test_a_tampered_plan_never_deactivates_the_key_to_keep(aws, tmp_path):
    seeded = seed(aws, ORG)
    a = seeded.account_ids["a"]
    plan_path, _ = plan_for(aws, tmp_path)
    plan = json.loads(plan_path.read_text())
    for action in plan["actions"]:
        if action["account_id"] == a:
            action["deactivate"].append(
                {"access_key_id": action["keep"], "created_at": None, "last_used_at": None}
            )
    plan_path.write_text(json.dumps(plan))
    applied = cli(
        "remediate", "apply", str(plan_path), "-c", str(tmp_path / "config.yaml"), "--yes"
    )
    assert applied.exit_code == ExitCode.USAGE
    assert "both kept and deactivated" in applied.output
    assert "UpdateAccessKey" not in {action for action, _ in aws.faults.calls}
    assert set(keys(member_iam(a), "pair").values()) == {"Active"}
