"""The unused-key rule's remedy against moto's server: the key's last use is re-read live just
before apply, a key used since the plan is skipped, and rollback re-activates what was changed.

moto's keys are all new and never used, so the fault layer declares their dates
(`Fault(key_history=...)`). The evidence is a scan's, with each key's last use added as the
collection of last use writes it (LastUseSource.GET_ACCESS_KEY_LAST_USED), judged again by the
one-active-key and unused rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orgscan import evidence as codec
from orgscan.cli import ExitCode
from orgscan.demo.faults import Fault, KeyHistory
from orgscan.demo.seed import ACTIVE, AccountSpec, OrgSpec, UserSpec
from orgscan.model import AccessKey, LastUseSource, RuleSettings, UserKeys
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, UNUSED
from tests.conftest import seed
from tests.integration.remediation.test_remediation import apply, rollback, write_config
from tests.integration.test_sweep import cli, journal_of, keys, member_iam
from tests.report_fixtures import rescanned

IDLE = OrgSpec(
    accounts=(AccountSpec("a", "Root", (UserSpec("idle", (ACTIVE,)), UserSpec("busy", (ACTIVE,)))),)
)


def history(key_id: str, last_used: datetime, now: datetime) -> KeyHistory:
    return KeyHistory(key_id, created=now - timedelta(days=200), last_used=last_used)


def evidence_with_last_use(out: Path, dates: dict[str, datetime]) -> Path:
    """The scan's findings.json with each key's last use read, judged by both rules."""
    result = codec.read(out / "findings.json")

    def read(_: UserKeys, key: AccessKey) -> AccessKey:
        return replace(
            key,
            last_used_at=dates[str(key.id)],
            last_used_service="s3",
            last_used_source=LastUseSource.GET_ACCESS_KEY_LAST_USED,
            last_used_as_of=result.run.started_at,
        )

    rules = [RuleSettings(MULTIPLE_ACTIVE_KEYS), RuleSettings(UNUSED, {"max_unused_days": 45})]
    judged = rescanned(result, result.run.id, read, rules=rules)
    path = out / "judged.json"
    path.write_bytes(codec.encode(judged))
    return path


def test_an_unused_key_is_deactivated_and_rolled_back_and_one_used_since_the_plan_is_skipped(
    aws, tmp_path
):
    a = seed(aws, IDLE).account_ids["a"]
    iam = member_iam(a)
    (idle,), (busy,) = keys(iam, "idle"), keys(iam, "busy")
    now = datetime.now(UTC).replace(microsecond=0)
    long_ago = now - timedelta(days=100)
    aws.inject([Fault(key_history=(history(idle, long_ago, now), history(busy, long_ago, now)))])
    # The scan reads the keys; their last use is added below (see the module's docstring).
    off = {"enabled": False}
    config = write_config(tmp_path, rules={NOT_ROTATED: off, UNUSED: off, ROOT_KEY: off})
    out = tmp_path / "scan"
    scanned = cli("scan", "-c", config, "-o", str(out), "-q")
    assert scanned.exit_code == ExitCode.CLEAN, scanned.output
    findings = evidence_with_last_use(out, {idle: long_ago, busy: long_ago})
    plan_path = tmp_path / "plan.json"
    made = cli("remediate", "plan", str(findings), "-o", str(plan_path))
    assert made.exit_code == 0, made.output
    actions = {a["user_name"]: a for a in json.loads(plan_path.read_text())["actions"]}
    assert [(k["access_key_id"], k["rules"]) for k in actions["idle"]["deactivate"]] == [
        (idle, [UNUSED])
    ]
    assert actions["idle"]["keep"] is None

    # After the plan, an application starts using the busy key again.
    used = now - timedelta(minutes=5)
    aws.inject([Fault(key_history=(history(idle, long_ago, now), history(busy, used, now)))])
    applied = apply(plan_path, config)
    assert applied.exit_code == ExitCode.FINDINGS, applied.output  # the busy key was skipped
    journal = tmp_path / "remediation-journal.jsonl"
    entries = journal_of(journal)
    assert entries[idle]["outcome"] == "deactivated"
    assert entries[idle]["reason"] == f"for {UNUSED}"
    assert entries[busy]["outcome"] == "skipped"
    assert "after the plan was made" in entries[busy]["reason"]
    assert keys(iam, "idle") == {idle: "Inactive"}
    assert keys(iam, "busy") == {busy: "Active"}
    assert ("GetAccessKeyLastUsed", a) in aws.faults.calls  # re-read live, not from the plan

    rolled = rollback(journal, config)
    assert rolled.exit_code == ExitCode.CLEAN, rolled.output
    assert keys(iam, "idle") == {idle: "Active"}
