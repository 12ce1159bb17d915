"""The remediation plan per rule: which keys each rule deactivates, one action per key, the
manual rules' steps as comments only, exceptions per rule, --rules, and 1.1 plans."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgscan import evidence as codec
from orgscan.cli import app
from orgscan.model import AccessKey, ApprovedException, UserKeys
from orgscan.remediation.plan import (
    Evidence,
    PlanError,
    build_plan,
    check,
    commands,
    load_evidence,
)
from orgscan.remediation.plan import read as read_plan
from orgscan.remediation.plan import write as write_plan
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, UNUSED
from tests.report_fixtures import (
    CAROL_NEWER,
    CAROL_OLDER,
    DEPLOYER_IN_USE,
    DEPLOYER_NEWER,
    DEV,
    MGMT,
    STARTED,
    _t,
    hygiene_result,
    rescanned,
    scan_result,
)

EVIDENCE = Evidence("/evidence/findings.json", "ab" * 32)


def keys_of(plan) -> dict[str, tuple[str, ...]]:
    return {k.access_key_id: k.rules for a in plan.actions for k in a.deactivate}


def test_each_rule_plans_its_own_keys_and_a_key_both_would_deactivate_is_one_action():
    plan = build_plan(hygiene_result(complete=True), EVIDENCE)
    assert keys_of(plan) == {
        "AKIAMGMTBREAKGLASS01": (UNUSED,),  # its user's only key, never used in 400 days
        DEPLOYER_NEWER: (MULTIPLE_ACTIVE_KEYS,),
        CAROL_OLDER: (MULTIPLE_ACTIVE_KEYS, UNUSED),
        "AKIASANDBOXBOB000001": (MULTIPLE_ACTIVE_KEYS,),
        "AKIASANDBOXADMIN0001": (UNUSED,),
    }
    carol = next(a for a in plan.actions if a.user_name == "carol")
    assert (carol.keep, len(carol.deactivate)) == (CAROL_NEWER, 1)
    # Rotation and the root key are never automated: listed for a person, excepted ones left out
    # (the deployer's keys are excepted from the rotation rule).
    assert {(m.rule_id, m.access_key_id) for m in plan.manual} == {
        (NOT_ROTATED, "AKIAMGMTBREAKGLASS01"),
        (NOT_ROTATED, CAROL_OLDER),
        (NOT_ROTATED, "AKIASANDBOXADMIN0001"),
        (ROOT_KEY, None),
    }
    assert [r.id for r in plan.rules] == [MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, UNUSED, ROOT_KEY]
    assert plan.not_planned == ()


def test_a_kept_key_that_is_itself_unused_goes_alone_and_the_newer_key_stays():
    def keys(user: UserKeys, key: AccessKey) -> AccessKey:
        if key.id == DEPLOYER_IN_USE:  # the most recently used key: 60 days ago
            return replace(key, last_used_at=_t(60))
        if key.id == DEPLOYER_NEWER:  # created ten days ago, not yet deployed
            return replace(key, created_at=_t(10), last_used_at=None, last_used_service=None)
        return key

    plan = build_plan(rescanned(hygiene_result(complete=True), "r2", keys), EVIDENCE)
    deployer = next(a for a in plan.actions if a.user_name == "deployer")
    assert deployer.keep is None
    assert [(k.access_key_id, k.rules) for k in deployer.deactivate] == [
        (DEPLOYER_IN_USE, (UNUSED,))
    ]
    (why,) = [line for line in plan.not_planned if "user/deployer" in line]
    assert f"the key it would keep, {DEPLOYER_IN_USE} (most recently used), is itself unused" in why


def test_an_exception_takes_away_only_the_rule_it_names():
    result = hygiene_result(complete=True)
    carol_unused = ApprovedException(
        account=DEV,
        user="carol",
        reason="audit trail key",
        owner="sec@example.com",
        expires=STARTED.date().replace(year=2099),
        rules=(UNUSED,),
    )
    plan = build_plan(
        rescanned(result, "r2", exceptions=[*result.exceptions, carol_unused]), EVIDENCE
    )
    assert keys_of(plan)[CAROL_OLDER] == (MULTIPLE_ACTIVE_KEYS,)


def test_plan_sh_runs_only_deactivations_and_gives_the_manual_steps_as_comments():
    script = commands(build_plan(hygiene_result(complete=True), EVIDENCE))
    commands_run = [line for line in script.splitlines()[1:] if line and not line.startswith("#")]
    assert commands_run[0] == "set -eu"
    assert len(commands_run) == 6  # five keys, and nothing else
    assert all(
        line.startswith("aws iam update-access-key ") and line.endswith(" --status Inactive")
        for line in commands_run[1:]
    )
    # Each unrotated key with its owner and the rotation steps, filled in.
    assert "#   aws iam create-access-key --user-name carol" in script
    assert f"#   aws iam get-access-key-last-used --access-key-id {CAROL_OLDER}" in script
    assert (
        f"#   aws iam update-access-key --user-name carol --access-key-id {CAROL_OLDER} "
        "--status Inactive"
    ) in script
    # The root key: the manual route, and AssumeRoot with the task policy, as text.
    assert (
        f"#   aws sts assume-root --region REGION --target-principal {MGMT} --task-policy-arn "
        "arn=arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials"
    ) in script
    assert f"# Account {MGMT} (management), arn:aws:iam::{MGMT}:root: the root user" in script


def test_rules_narrows_the_plan_and_apply_rederives_it_with_the_same_rules(tmp_path: Path):
    findings = tmp_path / "findings.json"
    findings.write_bytes(codec.encode(hygiene_result(complete=True)))
    plan = build_plan(*load_evidence(findings), rules=[UNUSED])
    assert set(keys_of(plan).values()) == {(UNUSED,)}
    assert set(keys_of(plan)) == {"AKIAMGMTBREAKGLASS01", CAROL_OLDER, "AKIASANDBOXADMIN0001"}
    assert plan.manual == ()
    path = write_plan(plan, tmp_path / "plan.json")[0]
    check(read_plan(path), findings)  # the same decisions from the same evidence
    with pytest.raises(PlanError, match=r"^--rules: nope: not evaluated by run"):
        build_plan(*load_evidence(findings), rules=["nope"])

    refused = CliRunner().invoke(
        app, ["remediate", "plan", str(findings), "-o", str(tmp_path / "p.json"), "--rules", "x"]
    )
    assert refused.exit_code == 2
    assert "--rules: x: not evaluated by run" in refused.output
    made = CliRunner().invoke(
        app,
        ["remediate", "plan", str(findings), "-o", str(tmp_path / "p.json"), "--rules", UNUSED],
    )
    assert made.exit_code == 0, made.output
    assert f"  {UNUSED}: 3 key(s) to deactivate" in made.output


def test_a_plan_of_schema_1_1_reads_as_the_one_active_key_rules_and_still_checks(tmp_path: Path):
    findings = tmp_path / "findings.json"
    findings.write_bytes(codec.encode(scan_result()))
    path = write_plan(build_plan(*load_evidence(findings)), tmp_path / "plan.json")[0]
    data = json.loads(path.read_text())
    data["schema_version"] = "1.1"
    for name in ("manual", "rules"):
        del data[name]
    for action in data["actions"]:
        for key in action["deactivate"]:
            del key["rules"]
    path.write_text(json.dumps(data))
    old = read_plan(path)
    assert {k.rules for a in old.actions for k in a.deactivate} == {(MULTIPLE_ACTIVE_KEYS,)}
    check(old, findings)
