"""Remediation on a bad day (issue 15, defects 1-10): plan, apply and rollback against moto's
server through the fault layer, with deleted users, lost answers, hand-edited plans,
concurrent applies, signals, crashes and hostile text."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from orgscan import evidence as codec
from orgscan.cli import ExitCode
from orgscan.demo.faults import Fault
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import iso, parse_iso
from orgscan.remediation.apply import Outcome, RemediationError, read_journal
from tests.conftest import seed
from tests.integration.test_sweep import cli, journal_of, keys, member_iam, use_key
from tests.report_fixtures import scan_result, users_in

PAIR = (ACTIVE, ACTIVE)
SKIP_MANAGEMENT = {"management_account": "skip"}


def write_config(tmp_path: Path, name: str = "config.yaml", **sections) -> str:
    sections.setdefault("organization", SKIP_MANAGEMENT)
    sections["scan"] = {"account_rate_limit": 500, **sections.get("scan", {})}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(sections))
    return str(path)


def planned(aws, tmp_path: Path, config: str) -> tuple[Path, dict[str, dict]]:
    """Scan, then plan: the plan's path and its actions by user name."""
    out = tmp_path / "scan"
    scanned = cli("scan", "-c", config, "-o", str(out), "-q")
    assert scanned.exit_code == ExitCode.FINDINGS, scanned.output
    plan_path = tmp_path / "plan.json"
    made = cli("remediate", "plan", str(out / "findings.json"), "-o", str(plan_path))
    assert made.exit_code == 0, made.output
    aws.inject([])  # count only what comes next
    return plan_path, {a["user_name"]: a for a in json.loads(plan_path.read_text())["actions"]}


def doomed(action: dict) -> str:
    (key,) = [k["access_key_id"] for k in action["deactivate"]]
    return key


def apply(plan_path: Path, config: str, *extra: str):
    return cli("remediate", "apply", str(plan_path), "-c", config, "--yes", *extra)


def rollback(journal: Path, config: str, *extra: str):
    return cli("remediate", "rollback", str(journal), "-c", config, "--yes", *extra)


def lines_of(path: Path, key_id: str) -> list[str]:
    """Every outcome the journal recorded for one key, in order."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["outcome"] for r in records if r.get("access_key_id") == key_id]


def run_orgscan(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orgscan", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def wait_for(path: Path, text: bytes, timeout: float = 30) -> list[bytes]:
    """Poll the file until it contains `text`; every content seen on the way, in order."""
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        data = path.read_bytes() if path.exists() else b""
        if not seen or seen[-1] != data:
            seen.append(data)
        if text in data:
            return seen
        assert time.monotonic() < deadline, f"{path} never showed {text!r}"
        time.sleep(0.02)


# Defect 1 ------------------------------------------------------------------------------------

TRIO = OrgSpec(
    accounts=(
        AccountSpec(
            "a", "Root", (UserSpec("alice", PAIR), UserSpec("bob", PAIR), UserSpec("carol", PAIR))
        ),
    )
)


def test_rollback_handles_each_key_alone_a_deleted_user_or_a_throttle_stops_nothing_else(
    aws, tmp_path
):
    seeded = seed(aws, TRIO)
    a = seeded.account_ids["a"]
    config = write_config(tmp_path, scan={"max_attempts": 1})
    plan_path, actions = planned(aws, tmp_path, config)
    applied, undone = tmp_path / "applied.journal", tmp_path / "undone.journal"
    assert apply(plan_path, config, "--journal", str(applied)).exit_code == ExitCode.CLEAN
    iam = member_iam(a)
    for key_id in keys(iam, "alice"):
        iam.delete_access_key(UserName="alice", AccessKeyId=key_id)
    iam.delete_user(UserName="alice")
    aws.inject([Fault(action="ListAccessKeys", account=a, user="bob", error="Throttling")])

    rolled = rollback(applied, config, "--journal", str(undone))
    assert rolled.exit_code == ExitCode.INCOMPLETE, rolled.output  # bob's key failed
    entries = {e.access_key_id: e for e in read_journal(undone).entries}
    alice, bob, carol = (entries[doomed(actions[u])] for u in ("alice", "bob", "carol"))
    assert (alice.outcome, alice.reason) == (
        Outcome.SKIPPED,
        "the key or its user no longer exists",
    )
    assert (bob.outcome, bob.reason.split(":")[0]) == (Outcome.FAILED, "Throttling")
    assert carol.outcome is Outcome.REACTIVATED
    aws.inject([])
    assert set(keys(iam, "carol").values()) == {"Active"}
    assert keys(iam, "bob")[doomed(actions["bob"])] == "Inactive"


# Defect 2 ------------------------------------------------------------------------------------

ONE = OrgSpec(accounts=(AccountSpec("a", "Root", (UserSpec("pair", PAIR),)),))


def test_a_change_that_landed_is_journaled_as_made_although_its_answer_was_lost(aws, tmp_path):
    seeded = seed(aws, ONE)
    a = seeded.account_ids["a"]
    config = write_config(tmp_path, scan={"call_timeout": 0.3, "max_attempts": 2})
    plan_path, actions = planned(aws, tmp_path, config)
    key_id = doomed(actions["pair"])
    # The first UpdateAccessKey takes effect, but its answer comes too late; the retry is
    # throttled. The client sees only errors.
    aws.inject(
        [
            Fault(action="UpdateAccessKey", account=a, land_first=True, delay=0.6, first=1),
            Fault(action="UpdateAccessKey", account=a, error="Throttling"),
        ]
    )
    applied = apply(plan_path, config)
    assert applied.exit_code == ExitCode.CLEAN, applied.output
    assert aws.faults.injected == {"Throttling": 1}
    assert keys(member_iam(a), "pair")[key_id] == "Inactive"
    journal = tmp_path / "remediation-journal.jsonl"
    entry = journal_of(journal)[key_id]
    assert entry["outcome"] == "deactivated"
    assert "AWS answered Throttling" in entry["reason"]
    assert "re-reading shows the key Inactive" in entry["reason"]
    assert lines_of(journal, key_id) == ["pending", "deactivated"]  # journaled before sent

    aws.inject([])
    rolled = rollback(journal, config)
    assert rolled.exit_code == ExitCode.CLEAN, rolled.output
    assert keys(member_iam(a), "pair")[key_id] == "Active"


# Defect 3 ------------------------------------------------------------------------------------

TWO = OrgSpec(
    accounts=(
        AccountSpec("a", "Root", (UserSpec("pair", PAIR), UserSpec("twin", PAIR))),
        AccountSpec("b", "Root", (UserSpec("solo", PAIR),)),
    )
)


def test_apply_rechecks_the_current_config_exceptions_and_account_filters(aws, tmp_path):
    seeded = seed(aws, TWO)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    plan_path, actions = planned(aws, tmp_path, write_config(tmp_path))
    exception = {"account": a, "reason": "rotation", "owner": "ops@example.com"}
    # Since the plan: pair gets an approved exception, twin one that has already expired,
    # and account b is excluded.
    later = write_config(
        tmp_path,
        "later.yaml",
        organization={**SKIP_MANAGEMENT, "exclude_accounts": [b]},
        exceptions=[
            {**exception, "user": "pair", "expires": "2099-01-01", "ticket": "SEC-9"},
            {**exception, "user": "twin", "expires": "2020-01-01"},
        ],
    )
    applied = apply(plan_path, later)
    assert applied.exit_code == ExitCode.FINDINGS, applied.output
    entries = journal_of(tmp_path / "remediation-journal.jsonl")
    pair, twin, solo = (entries[doomed(actions[u])] for u in ("pair", "twin", "solo"))
    assert pair["outcome"] == "skipped"
    assert pair["reason"] == (
        "excepted by the current config until 2099-01-01 (owner ops@example.com, SEC-9): rotation"
    )
    assert twin["outcome"] == "deactivated"  # an expired exception no longer applies
    assert solo["outcome"] == "skipped"
    assert "listed in organization.exclude_accounts" in solo["reason"]
    assert set(keys(member_iam(a), "pair").values()) == {"Active"}
    assert set(keys(member_iam(b), "solo").values()) == {"Active"}

    # Organizations refusing before any key is touched: exit 3, and no journal left behind.
    aws.inject([Fault(action="DescribeOrganization", error="AccessDenied")])
    denied = apply(plan_path, later, "--journal", str(tmp_path / "denied.jsonl"))
    assert denied.exit_code == ExitCode.INCOMPLETE, denied.output
    assert "could not start: AccessDenied" in denied.output
    assert not (tmp_path / "denied.jsonl").exists()


# Defect 4 ------------------------------------------------------------------------------------


def test_a_plan_that_differs_from_its_evidence_is_refused_whole(aws, tmp_path):
    seeded = seed(aws, TWO)
    a = seeded.account_ids["a"]
    older, newer = sorted(keys(member_iam(a), "pair"))
    use_key(older, seeded.key_secrets[older])  # the older key is the one in use: it is kept
    config = write_config(tmp_path)
    plan_path, actions = planned(aws, tmp_path, config)
    assert (actions["pair"]["keep"], doomed(actions["pair"])) == (older, newer)
    findings = tmp_path / "scan" / "findings.json"
    evidence = json.loads(findings.read_text())
    in_use = next(
        k
        for u in users_in(evidence)
        if u["user_name"] == "pair"
        for k in u["access_keys"]
        if k["id"] == older
    )
    assert in_use["last_used_at"]
    original = json.loads(plan_path.read_text())

    def edited(change) -> Path:
        plan = json.loads(json.dumps(original))
        change(plan, next(p for p in plan["actions"] if p["user_name"] == "pair"))
        path = tmp_path / f"edited-{len(list(tmp_path.glob('edited-*')))}.json"
        path.write_text(json.dumps(plan))
        return path

    def swap(plan, action):
        # Keep and deactivate swapped, with the real dates copied over: only the evidence
        # can tell.
        action["keep"] = newer
        action["deactivate"] = [
            {
                "access_key_id": older,
                "created_at": in_use["created_at"],
                "last_used_at": in_use["last_used_at"],
            }
        ]

    def other_account(plan, action):
        action["account_id"] = seeded.account_ids["b"]

    refused = apply(edited(swap), config)
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "the plan does not match its evidence, so none of it is applied" in refused.output
    assert f"the plan keeps {newer} and deactivates {older}; " in refused.output
    assert f"the evidence keeps {older} and deactivates {newer}" in refused.output

    moved = apply(edited(other_account), config)
    assert moved.exit_code == ExitCode.USAGE
    assert f"arn:aws:iam::{a}:user/pair is in account {a}, not" in moved.output

    findings.write_text(findings.read_text().replace('"pair"', '"pair2"', 1))
    changed = apply(plan_path, config)
    assert changed.exit_code == ExitCode.USAGE
    assert "is not the evidence this plan was made from: its SHA-256 is" in changed.output

    assert "UpdateAccessKey" not in {action for action, _ in aws.faults.calls}
    assert set(keys(member_iam(a), "pair").values()) == {"Active"}
    assert not (tmp_path / "remediation-journal.jsonl").exists()


# Defect 5 ------------------------------------------------------------------------------------


def test_two_applies_on_one_journal_one_refuses_before_any_aws_call(aws, tmp_path):
    seeded = seed(aws, TWO)
    config = write_config(tmp_path)
    plan_path, actions = planned(aws, tmp_path, config)
    # Slow reads keep the first apply busy while the second starts.
    aws.inject([Fault(action="ListAccessKeys", delay=0.3)])
    journal = tmp_path / "shared.jsonl"
    args = ("remediate", "apply", str(plan_path), "-c", config, "--yes", "--journal", str(journal))
    first, second = run_orgscan(*args), run_orgscan(*args)
    results = sorted(
        [(p.wait(timeout=60), p.communicate()) for p in (first, second)], key=lambda r: r[0]
    )
    (done, (out, _)), (refused, (_, err)) = results
    assert (done, refused) == (ExitCode.CLEAN, ExitCode.USAGE), (out, err)
    assert f"{journal} already exists" in err
    # The refused one made no AWS call at all; the other changed each key once.
    calls = aws.faults.calls
    assert calls[("GetCallerIdentity", seeded.management_account_id)] == 1
    assert sum(n for (action, _), n in calls.items() if action == "UpdateAccessKey") == 3
    assert [e["outcome"] for e in journal_of(journal).values()] == ["deactivated"] * 3
    assert {doomed(a) for a in actions.values()} == set(journal_of(journal))


# Defect 6 (and 9: a crash leaves a journal rollback can read) --------------------------------


def test_rollback_never_reactivates_a_pending_key_it_cannot_show_it_changed(aws, tmp_path):
    seeded = seed(aws, ONE)
    a = seeded.account_ids["a"]
    config = write_config(tmp_path)
    plan_path, actions = planned(aws, tmp_path, config)
    key_id = doomed(actions["pair"])
    # The change hangs and never lands; the apply is killed with it in flight.
    aws.inject([Fault(action="UpdateAccessKey", account=a, delay=2.0, error="ServiceUnavailable")])
    journal = tmp_path / "journal.jsonl"
    process = run_orgscan(
        "remediate", "apply", str(plan_path), "-c", config, "--yes", "--journal", str(journal)
    )
    wait_for(journal, b'"pending"')
    process.kill()
    process.wait(timeout=30)
    aws.inject([])
    # Meanwhile someone deactivates that very key by hand, on purpose.
    member_iam(a).update_access_key(UserName="pair", AccessKeyId=key_id, Status="Inactive")

    rolled = rollback(journal, config, "--unfinished")  # the apply was killed: no end line
    assert rolled.exit_code == ExitCode.FINDINGS, rolled.output
    assert "0 key(s) deactivated by this apply" in rolled.output
    assert f"pending  arn:aws:iam::{a}:user/pair {key_id}" in rolled.output
    assert keys(member_iam(a), "pair")[key_id] == "Inactive"
    entry = journal_of(tmp_path / "rollback-journal.jsonl")[key_id]
    assert entry["outcome"] == "skipped"
    assert "orgscan cannot show that it made the key Inactive" in entry["reason"]


# Defect 7 ------------------------------------------------------------------------------------

STUB_AWS = """#!/bin/sh
for arg in "$@"; do printf '[%s]' "$arg" >> "$AWS_LOG"; done
echo >> "$AWS_LOG"
"""


def test_plan_sh_runs_only_the_aws_commands_whatever_the_evidence_says(tmp_path):
    result = scan_result()
    hostile = "x\ntouch PWNED-newline #\r\u2028touch PWNED-cr\u202e`touch PWNED-tick`$(touch P)"
    for account in result.accounts:
        account.account = replace(account.account, name=account.account.name + hostile)
    findings = tmp_path / codec.FILENAME
    findings.write_bytes(codec.encode(result))
    plan_path = tmp_path / "plan.json"
    made = cli("remediate", "plan", str(findings), "-o", str(plan_path))
    assert made.exit_code == 0, made.output
    stub = tmp_path / "bin" / "aws"
    stub.parent.mkdir()
    stub.write_text(STUB_AWS)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "aws.log"
    ran = subprocess.run(
        ["sh", str(plan_path.with_suffix(".sh"))],
        cwd=tmp_path,
        env={"PATH": f"{stub.parent}:/usr/bin:/bin", "AWS_LOG": str(log)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert not list(tmp_path.glob("PWNED*")) and not (tmp_path / "P").exists()
    plan = json.loads(plan_path.read_text())
    expected = [
        f"[iam][update-access-key][--user-name][{a['user_name']}]"
        f"[--access-key-id][{k['access_key_id']}][--status][Inactive]"
        for a in sorted(plan["actions"], key=lambda a: a["account_id"])
        for k in a["deactivate"]
    ]
    assert len(expected) == 3
    assert log.read_text().splitlines() == expected


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("organization_id", "o-abc123defg\ntouch PWNED"),
        ("run_id", "20250314T093000Z-1a2b\ntouch PWNED"),
        ("arn", "arn:aws:iam::222222222222:user/deployer\ntouch PWNED"),
        ("access_key_id", "AKIA$(touch PWNED)00000"),
    ],
)
def test_ids_and_arns_out_of_aws_format_refuse_the_plan(tmp_path, where, value):
    data = json.loads(codec.encode(scan_result()))
    deployer = next(u for u in users_in(data) if u["user_name"] == "deployer")
    if where == "organization_id":
        data["run"]["organization_id"] = value
    elif where == "run_id":
        data["run"]["id"] = value
    elif where == "arn":
        deployer["arn"] = value
        next(f for f in data["findings"] if f["user_name"] == "deployer")["arn"] = value
    else:
        deployer["access_keys"][1]["id"] = value
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps(data))
    refused = cli("remediate", "plan", str(findings), "-o", str(tmp_path / "plan.json"))
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "the evidence is not fit for a plan" in refused.output
    assert not (tmp_path / "plan.sh").exists()


# Defect 8 (and 9: lines are only ever appended) ----------------------------------------------

QUEUE = OrgSpec(
    accounts=(AccountSpec("a", "Root", tuple(UserSpec(f"user-{i}", PAIR) for i in range(3))),)
)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_apply_finishes_what_is_in_flight_and_exits_128_plus_n(
    aws, tmp_path, signum, code
):
    seeded = seed(aws, QUEUE)
    a = seeded.account_ids["a"]
    config = write_config(tmp_path)
    plan_path, actions = planned(aws, tmp_path, config)
    aws.inject([Fault(action="UpdateAccessKey", delay=0.8)])  # slow, but it lands
    journal = tmp_path / "journal.jsonl"
    process = run_orgscan(
        "remediate", "apply", str(plan_path), "-c", config, "--yes", "--journal", str(journal)
    )
    snapshots = wait_for(journal, b'"pending"')
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, out + err
    assert f"interrupted by {signal.Signals(signum).name}" in out

    final = journal.read_bytes()
    assert all(final.startswith(seen) for seen in snapshots)  # append-only, never rewritten
    read = read_journal(journal)
    assert read.interrupted == signal.Signals(signum).name and read.finished_at
    outcomes = {e.access_key_id: e for e in read.entries}
    assert set(outcomes) == {doomed(action) for action in actions.values()}  # none dropped
    live = {k: s for u in actions for k, s in keys(member_iam(a), u).items()}
    in_flight = [e for e in outcomes.values() if e.outcome is Outcome.DEACTIVATED]
    assert len(in_flight) == 1 and live[in_flight[0].access_key_id] == "Inactive"
    for entry in outcomes.values():
        if entry is not in_flight[0]:
            assert entry.outcome is Outcome.SKIPPED
            assert entry.reason == f"not attempted: interrupted by {signal.Signals(signum).name}"
            assert live[entry.access_key_id] == "Active"


# Defect 9 ------------------------------------------------------------------------------------


HEADER = {
    "kind": "orgscan-remediation-journal",
    "record": "header",
    "action": "apply",
    "source": "run-1",
    "organization_id": "o-abc123defg",
    "started_at": "2026-01-01T00:00:00Z",
}


def entry_line(i: int) -> dict:
    return {
        "record": "entry",
        "account_id": "222222222222",
        "user_name": f"u{i}",
        "arn": f"arn:aws:iam::222222222222:user/u{i}",
        "access_key_id": f"AKIA{i:016d}",
        "outcome": "pending" if i % 2 else "deactivated",
        "reason": "x",
        "before": {"status": "Active", "last_used_at": None},
        "after": {"status": None},
        "at": "2026-01-01T00:00:01Z",
    }


def test_a_journal_cut_at_any_byte_keeps_every_complete_line(tmp_path):
    from orgscan.remediation.apply import JournalFile, parse_journal

    path = tmp_path / "journal.jsonl"
    file = JournalFile.create(path, HEADER)
    file.append_now([entry_line(i) for i in range(4)])
    file.append_now([{"record": "end", "finished_at": "2026-01-01T00:00:09Z"}])
    file.close()
    data = path.read_bytes()
    ends = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    assert len(ends) == 6  # header, four entries, end
    for size in range(len(data) + 1):
        complete = sum(1 for end in ends if end <= size)
        if complete == 0:
            with pytest.raises(RemediationError, match="changed nothing"):
                parse_journal(data[:size], "cut")
            continue
        journal = parse_journal(data[:size], "cut")
        assert len(journal.entries) == min(complete - 1, 4), size
        assert (journal.torn is None) == (size in ends), size
        assert (journal.finished_at is not None) == (complete == 6), size
    # A damaged line that is not the last is damage, not a crash: refused, never skipped.
    lines = data.split(b"\n")
    lines[2] = lines[2][:-3]
    with pytest.raises(RemediationError, match="line 3 is not JSON"):
        parse_journal(b"\n".join(lines), "damaged")
    # And a journal is never created over another one.
    with pytest.raises(RemediationError, match="already exists"):
        JournalFile.create(path, HEADER)
    assert path.read_bytes() == data


def test_journals_of_orgscan_0_1_still_read(tmp_path):
    old = {
        "kind": "orgscan-remediation-journal",
        "action": "apply",
        "source": "run-1",
        "organization_id": "o-abc123defg",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": None,
        "entries": [
            {
                "account_id": "222222222222",
                "user_name": "pair",
                "arn": "arn:aws:iam::222222222222:user/pair",
                "access_key_id": "AKIA0000000000000001",
                "outcome": "deactivated",
                "reason": "keeping AKIA0000000000000002 (most recently used)",
                "before": {"status": "Active", "last_used_at": None},
                "after": {"status": "Inactive"},
                "at": "2026-01-01T00:00:01Z",
            }
        ],
    }
    path = tmp_path / "remediation-journal.json"
    path.write_text(json.dumps(old, indent=2))
    (entry,) = read_journal(path).entries
    assert (entry.access_key_id, entry.outcome) == ("AKIA0000000000000001", Outcome.DEACTIVATED)


# Defect 10 -----------------------------------------------------------------------------------


def test_rollback_of_part_of_an_apply_by_key_or_account(aws, tmp_path):
    seeded = seed(aws, TWO)
    a, b = seeded.account_ids["a"], seeded.account_ids["b"]
    config = write_config(tmp_path)
    plan_path, actions = planned(aws, tmp_path, config)
    assert apply(plan_path, config).exit_code == ExitCode.CLEAN
    journal = tmp_path / "remediation-journal.jsonl"
    pair, twin, solo = (doomed(actions[u]) for u in ("pair", "twin", "solo"))

    one = rollback(journal, config, "--key", pair)
    assert one.exit_code == ExitCode.CLEAN, one.output
    assert "1 reactivated, 0 skipped, 0 failed" in one.output
    assert keys(member_iam(a), "pair")[pair] == "Active"
    assert keys(member_iam(a), "twin")[twin] == "Inactive"  # found compromised: stays off

    other = rollback(journal, config, "--account", b, "--journal", str(tmp_path / "r2.jsonl"))
    assert other.exit_code == ExitCode.CLEAN, other.output
    assert keys(member_iam(b), "solo")[solo] == "Active"
    assert keys(member_iam(a), "twin")[twin] == "Inactive"

    typo = rollback(
        journal, config, "--key", "AKIA0000000000TYPO00", "--journal", str(tmp_path / "r3.jsonl")
    )
    assert typo.exit_code == ExitCode.USAGE
    assert "AKIA0000000000TYPO00: the journal records no change to undo for this key" in (
        typo.output
    )


# Review of issue 15 -------------------------------------------------------------------------


def edited_evidence(aws, tmp_path: Path, config: str, change) -> tuple[Path, Path]:
    """Scan, let `change(keys_by_id)` edit each user's keys in the evidence: the evidence and
    where to plan from it, as a CI artifact tampered with before the plan was made."""
    out = tmp_path / "scan"
    assert cli("scan", "-c", config, "-o", str(out), "-q").exit_code == ExitCode.FINDINGS
    findings = out / "findings.json"
    data = json.loads(findings.read_text())
    for user in users_in(data):
        change({key["id"]: key for key in user["access_keys"]})
    findings.write_text(json.dumps(data))
    return findings, tmp_path / "plan.json"


def test_apply_keeps_the_key_in_use_now_whatever_the_evidence_said(aws, tmp_path):
    seeded = seed(aws, ONE)
    a = seeded.account_ids["a"]
    older, newer = sorted(keys(member_iam(a), "pair"))
    use_key(older, seeded.key_secrets[older])  # the older key is the one in use
    config = write_config(tmp_path)

    def unused_key_used_later(by_id: dict) -> None:
        # The unused key "was used" a millisecond after the real last use: a plausible date,
        # before the run finished, so only the live last use can tell.
        real = parse_iso(by_id[older]["last_used_at"])
        by_id[newer].update(
            last_used_at=iso(real + timedelta(milliseconds=1)), last_used_service="sts"
        )

    findings, plan_path = edited_evidence(aws, tmp_path, config, unused_key_used_later)
    made = cli("remediate", "plan", str(findings), "-o", str(plan_path))
    assert made.exit_code == 0, made.output
    assert json.loads(plan_path.read_text())["actions"][0]["keep"] == newer  # fooled

    applied = apply(plan_path, config)
    assert applied.exit_code == ExitCode.FINDINGS, applied.output
    assert keys(member_iam(a), "pair") == {older: "Active", newer: "Active"}
    entry = journal_of(tmp_path / "remediation-journal.jsonl")[older]
    assert entry["outcome"] == "skipped"
    assert entry["reason"].startswith(
        f"the keys' live last use picks {older} to keep (most recently used), not the plan's "
        f"{newer}"
    )
    assert "UpdateAccessKey" not in {action for action, _ in aws.faults.calls}


def test_evidence_used_after_its_run_finished_is_refused_when_planning(aws, tmp_path):
    seed(aws, ONE)
    config = write_config(tmp_path)

    def from_the_future(by_id: dict) -> None:
        for key in by_id.values():
            key["last_used_at"] = "2099-01-01T00:00:00Z"

    findings, plan_path = edited_evidence(aws, tmp_path, config, from_the_future)
    refused = cli("remediate", "plan", str(findings), "-o", str(plan_path))
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "the evidence is not fit for a plan" in refused.output
    assert "was last used at 2099-01-01T00:00:00Z, after its run finished at" in refused.output
    assert not plan_path.exists()


@pytest.mark.parametrize("error", ["InternalFailure", "ServiceUnavailable"])
def test_a_5xx_after_the_change_landed_is_never_journaled_failed(aws, tmp_path, error):
    seeded = seed(aws, ONE)
    a = seeded.account_ids["a"]
    config = write_config(tmp_path, scan={"max_attempts": 1})
    plan_path, actions = planned(aws, tmp_path, config)
    key_id = doomed(actions["pair"])
    # The change lands, AWS answers a 5xx, and the re-read right after lags it (eventual
    # consistency): ListAccessKeys is read once before the change and once after it.
    aws.inject(
        [
            Fault(action="UpdateAccessKey", account=a, land_first=True, error=error),
            Fault(action="ListAccessKeys", account=a, stale_status="Active", first=2),
        ]
    )
    applied = apply(plan_path, config)
    assert applied.exit_code == ExitCode.CLEAN, applied.output
    assert keys(member_iam(a), "pair")[key_id] == "Inactive"
    journal = tmp_path / "remediation-journal.jsonl"
    assert lines_of(journal, key_id) == ["pending", "pending", "deactivated"]
    aws.inject([])
    assert rollback(journal, config).exit_code == ExitCode.CLEAN
    assert keys(member_iam(a), "pair")[key_id] == "Active"


def test_pending_changes_are_re_read_until_they_show_within_the_settle_window(aws, tmp_path):
    seeded = seed(aws, ONE)
    a = seeded.account_ids["a"]
    config = write_config(tmp_path, scan={"max_attempts": 1, "call_timeout": 5})
    plan_path, actions = planned(aws, tmp_path, config)
    key_id = doomed(actions["pair"])
    # Three re-reads after the change still show the key Active: the one right after it, and
    # the first two before the account is left.
    aws.inject(
        [
            Fault(action="UpdateAccessKey", account=a, land_first=True, error="ServiceFailure"),
            Fault(action="ListAccessKeys", account=a, stale_status="Active", first=4),
        ]
    )
    applied = apply(plan_path, config)
    assert applied.exit_code == ExitCode.CLEAN, applied.output
    assert lines_of(tmp_path / "remediation-journal.jsonl", key_id) == [
        "pending",
        "pending",
        "deactivated",
    ]


def test_rollback_of_an_apply_with_no_end_line_needs_unfinished_under_yes(aws, tmp_path):
    seeded = seed(aws, ONE)
    a = seeded.account_ids["a"]
    config = write_config(tmp_path)
    plan_path, actions = planned(aws, tmp_path, config)
    key_id = doomed(actions["pair"])
    journal = tmp_path / "remediation-journal.jsonl"
    assert apply(plan_path, config).exit_code == ExitCode.CLEAN
    # As a crashed (or still running) apply leaves it: every line but the end.
    lines = journal.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["record"] == "end"
    journal.write_text("".join(lines[:-1]))
    aws.inject([])

    refused = rollback(journal, config)
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "has no end line: its apply crashed, or is still running" in refused.output
    assert "pass --unfinished" in refused.output
    assert not aws.faults.calls and not (tmp_path / "rollback-journal.jsonl").exists()
    assert keys(member_iam(a), "pair")[key_id] == "Inactive"

    rolled = rollback(journal, config, "--unfinished")
    assert rolled.exit_code == ExitCode.CLEAN, rolled.output
    assert keys(member_iam(a), "pair")[key_id] == "Active"


def test_not_planned_lines_carry_no_control_characters_to_the_terminal(tmp_path):
    data = json.loads(codec.encode(scan_result()))
    deployer = next(u for u in users_in(data) if u["user_name"] == "deployer")
    hostile = deployer["arn"] + "\x1b]0;owned\x07\nnot planned: all clear\x1b[2J"
    deployer["arn"] = hostile
    next(f for f in data["findings"] if f["user_name"] == "deployer")["arn"] = hostile
    deployer["access_keys"][0]["last_used_error"] = {"code": "AccessDenied", "message": "no"}
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps(data))
    made = cli("remediate", "plan", str(findings), "-o", str(tmp_path / "plan.json"))
    assert made.exit_code == 0, made.output
    (line,) = [x for x in made.output.splitlines() if "is unknown; scan again" in x]
    assert "\x1b" not in made.output and "\x07" not in made.output
    assert line.startswith("not planned: arn:aws:iam::") and "]0;owned" in line
    assert made.output.count("not planned:") == 2  # the one line, with the injected text inline


def test_the_typer_floor_is_a_typer_that_brings_its_own_click():
    """typer 0.12.0-0.12.3 cannot start ('Type not yet supported: pathlib.Path | None'), and
    typers before 0.26 fail with click 8.2+, which nothing stops pip from installing with
    them; from 0.26 typer vendors click, so no click release can break it."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    project = __import__("tomllib").loads(pyproject)["project"]
    (typer,) = [Requirement(r) for r in project["dependencies"] if r.startswith("typer")]
    floors = [Version(s.version) for s in typer.specifier if s.operator in (">=", "==", "~=")]
    assert floors and min(floors) >= Version("0.26"), typer
    for broken in ("0.12.0", "0.12.3", "0.16.0", "0.25.1"):
        assert not typer.specifier.contains(broken)
    assert not any(r.startswith("click") for r in project["dependencies"])


def test_apply_and_the_scan_judge_exceptions_by_one_rule():
    from datetime import date

    from orgscan.evaluate import governing_exception
    from orgscan.model import ApprovedException
    from orgscan.remediation import apply as applying
    from orgscan.remediation.plan import UserAction

    arn = "arn:aws:iam::222222222222:user/pair"
    who = ("iam-user-multiple-active-access-keys", "222222222222", "pair", arn)
    today = date(2026, 6, 1)
    approvals = [
        ApprovedException("222222222222", "pair", "short", "ops", date(2026, 7, 1)),
        ApprovedException("222222222222", arn, "long", "ops", date(2026, 12, 1)),
        ApprovedException("222222222222", "pair", "lapsed", "ops", date(2027, 1, 1)),
    ]
    approvals[2] = replace(approvals[2], expires=date(2026, 5, 1))  # expired: never governs
    assert governing_exception(approvals, *who, today) == approvals[1]
    assert applying.governing_exception is governing_exception  # apply has no copy of its own
    config = type("C", (), {"exceptions": approvals})()
    action = UserAction("222222222222", "", "pair", arn, "K" * 16, "", ())
    assert applying._excepted(config, who[0], action, today) == approvals[1]
    assert applying._excepted(config, "iam-access-key-unused", action, today) is None


FOUR = OrgSpec(
    accounts=tuple(
        AccountSpec(name, "Root", (UserSpec("pair", PAIR),)) for name in ("a", "b", "c", "d")
    )
)


def test_apply_reads_each_account_live_suspended_moved_or_gone_since_the_plan(aws, tmp_path):
    import boto3

    seeded = seed(aws, FOUR)
    ids = seeded.account_ids
    config = write_config(tmp_path, organization={**SKIP_MANAGEMENT})
    plan_path, _ = planned(aws, tmp_path, config)
    plan = json.loads(plan_path.read_text())
    doomed_in = {a["account_id"]: doomed(a) for a in plan["actions"]}
    org = boto3.client("organizations")
    org.close_account(AccountId=ids["b"])  # suspended since the plan
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="Quarantine")["OrganizationalUnit"]
    org.move_account(AccountId=ids["c"], SourceParentId=root, DestinationParentId=ou["Id"])
    org.remove_account_from_organization(AccountId=ids["d"])  # left the organization
    later = write_config(
        tmp_path,
        "later.yaml",
        organization={**SKIP_MANAGEMENT, "exclude_ous": ["Root/Quarantine"]},
    )
    aws.inject([])

    applied = apply(plan_path, later)
    assert applied.exit_code == ExitCode.FINDINGS, applied.output
    entries = journal_of(tmp_path / "remediation-journal.jsonl")
    reasons = {name: entries[doomed_in[ids[name]]] for name in "abcd"}
    assert reasons["a"]["outcome"] == "deactivated"
    assert {r["outcome"] for n, r in reasons.items() if n != "a"} == {"skipped"}
    assert reasons["b"]["reason"].startswith("the current config leaves the account out: ")
    assert "account state is" in reasons["b"]["reason"]
    assert reasons["c"]["reason"] == (
        "the current config leaves the account out: under Root/Quarantine, listed in "
        "organization.exclude_ous"
    )
    assert reasons["d"]["reason"] == "the account is no longer in the organization"
    calls = {account for action, account in aws.faults.calls if action == "UpdateAccessKey"}
    assert calls == {ids["a"]}


def test_a_second_signal_aborts_the_change_in_flight_and_leaves_it_pending(aws, tmp_path):
    seed(aws, QUEUE)
    config = write_config(tmp_path)
    plan_path, actions = planned(aws, tmp_path, config)
    aws.inject([Fault(action="UpdateAccessKey", delay=3, error="ServiceUnavailable")])
    journal = tmp_path / "journal.jsonl"
    process = run_orgscan(
        "remediate", "apply", str(plan_path), "-c", config, "--yes", "--journal", str(journal)
    )
    wait_for(journal, b'"pending"')
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    read = read_journal(journal)
    assert read.interrupted == "SIGINT" and read.finished_at is not None
    outcomes = sorted(e.outcome for e in read.entries)
    assert outcomes == [Outcome.PENDING, Outcome.SKIPPED, Outcome.SKIPPED], out
    assert {e.access_key_id for e in read.entries} == {doomed(a) for a in actions.values()}
