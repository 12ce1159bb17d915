"""`orgscan remediate plan`: from the evidence, which keys to keep and which to deactivate.

The plan is derived from findings.json alone and bound to it by the file's SHA-256. `apply`
re-derives every action from that same evidence and refuses the whole plan on any difference,
so no edit to the plan can choose which key is switched off. The plan also records what each
key looked like when it was made, so `apply` can refuse any key that changed since, above all
one used after the plan.

findings.json may come from a CI artifact: it is untrusted input. Every id and ARN is checked
against AWS's formats before it reaches the plan, and comment text is stripped of control
characters, so `plan.sh` runs nothing but the commands it lists.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict

from orgscan import evidence as codec
from orgscan.fs import write_atomic
from orgscan.model import EVIDENCE, FindingState, ScanResult, Timestamp, iso, utcnow
from orgscan.rules import recommended_key

KIND = "orgscan-remediation-plan"
# 1.1: the plan names its evidence (path and SHA-256). A 1.0 plan cannot be checked against
# its evidence, so it is refused rather than trusted.
SCHEMA_VERSION = "1.1"

# Formats from the IAM and Organizations service models, ASCII only and matched in full.
ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
ORGANIZATION_ID = re.compile(r"o-[a-z0-9]{10,32}", re.ASCII)
ACCESS_KEY_ID = re.compile(r"\w{16,128}", re.ASCII)
USER_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
# arn:<partition>:iam::<account>:user<path><name>; a path is "/" or "/" printable ASCII "/".
USER_ARN = re.compile(
    r"arn:aws[a-z-]{0,20}:iam::(\d{12}):user(/|/[\x21-\x7e]{1,510}/)([\w+=,.@-]{1,64})", re.ASCII
)
# orgscan's run ids are YYYYMMDDTHHMMSSZ-<hex>; anything else in this charset is tolerated.
RUN_ID = re.compile(r"[\w.:+-]{1,128}", re.ASCII)
SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


class PlanError(Exception):
    """A plan or its evidence that is missing, malformed, or does not match the other."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """The findings.json a plan was made from."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE

    path: str  # absolute, as it was when the plan was made
    sha256: str  # of the file's bytes


@dataclass(frozen=True, slots=True)
class KeyAction:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    access_key_id: str
    created_at: Timestamp | None
    last_used_at: Timestamp | None  # as the scan saw it; a newer date at apply time means "in use"


@dataclass(frozen=True, slots=True)
class UserAction:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    account_id: str
    account_name: str
    user_name: str
    arn: str
    keep: str
    keep_reason: str
    deactivate: tuple[KeyAction, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    created_at: Timestamp
    source_run_id: str
    organization_id: str
    evidence: Evidence
    actions: tuple[UserAction, ...]
    not_planned: tuple[str, ...] = ()  # open findings no action could be planned for, and why

    def per_account(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.account_id] = counts.get(action.account_id, 0) + len(action.deactivate)
        return counts


# plan.json: the Plan as the evidence codec writes it, after its kind and version.
PLAN = codec.Codec(Plan, {"kind": KIND, "schema_version": SCHEMA_VERSION})


def load_evidence(path: Path) -> tuple[ScanResult, Evidence]:
    """findings.json and its digest, from one read of the file: what is hashed is what is used."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the evidence: {exc.strerror or exc}") from None
    evidence = Evidence(str(path.resolve()), hashlib.sha256(data).hexdigest())
    try:
        parsed = json.loads(data)
        if not isinstance(parsed, dict):
            raise ValueError("expected a JSON object")
        return codec.decode(parsed, str(path)), evidence
    except codec.EvidenceError as exc:
        raise PlanError(str(exc)) from None
    except ValueError as exc:
        raise PlanError(f"{path}: not a findings.json this orgscan can read: {exc}") from None


def build_plan(result: ScanResult, evidence: Evidence) -> Plan:
    """For each open finding keep the recommended key and deactivate the other active ones.

    Raises PlanError when the evidence holds an id or ARN that is not in AWS's format.
    """
    users = {user.arn: user for user in result.users}
    names = {a.account.id: a.account.name for a in result.accounts}
    actions, not_planned = [], []
    for finding in result.findings:
        if finding.state is not FindingState.OPEN:
            continue
        user = users.get(finding.arn)
        keep = recommended_key(user) if user else None
        if user is None or keep is None:
            not_planned.append(f"{_comment(finding.arn)}: the evidence has no keys for this user")
            continue
        others = [k for k in user.access_keys if k.active and k is not keep.key]
        if keep.key.id is None or any(k.id is None for k in others):
            not_planned.append(f"{_comment(finding.arn)}: the evidence lacks its access key ids")
            continue
        unknown = [k for k in user.access_keys if k.active and k.last_used_error]
        if unknown:
            # The key to keep is the one in use: with a last use unknown, it cannot be chosen.
            not_planned.append(
                f"{_comment(finding.arn)}: the last use of "
                f"{_comment(', '.join(str(k.id) for k in unknown))} is unknown; scan again"
            )
            continue
        actions.append(
            UserAction(
                account_id=finding.account_id,
                account_name=names.get(finding.account_id, ""),
                user_name=finding.user_name,
                arn=finding.arn,
                keep=keep.key.id,
                keep_reason=keep.reason,
                deactivate=tuple(
                    KeyAction(str(k.id), k.created_at, k.last_used_at) for k in others
                ),
            )
        )
    plan = Plan(
        created_at=utcnow(),
        source_run_id=result.run.id,
        organization_id=result.run.organization_id,
        evidence=evidence,
        actions=tuple(actions),
        not_planned=tuple(not_planned),
    )
    problems = [*_used_after_the_run(result), *malformed(plan)]
    if problems:
        raise PlanError("the evidence is not fit for a plan: " + "; ".join(problems[:5]))
    return plan


def _used_after_the_run(result: ScanResult) -> list[str]:
    """Last uses no scan could have seen: dated after the run that read them had finished
    (for a run with no end, in the future), so the evidence was edited."""
    end = result.run.finished_at or utcnow()
    return [
        f"{_comment(user.arn)}: key {_comment(str(key.id))} was last used at "
        f"{iso(key.last_used_at)}, after its run finished at {iso(end)}"
        for user in result.users
        for key in user.access_keys
        if key.last_used_at is not None and key.last_used_at > end
    ]


def _bad(what: str, value: object, expected: str) -> str:
    return f"{what} {value!r} is not {expected}"


def _fits(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def malformed(plan: Plan) -> list[str]:
    """Every id and ARN in the plan checked against AWS's formats, and against each other."""
    problems = []
    if not _fits(ORGANIZATION_ID, plan.organization_id):
        problems.append(_bad("organization id", plan.organization_id, "o- and 10-32 of a-z0-9"))
    if not _fits(RUN_ID, plan.source_run_id):
        problems.append(_bad("run id", plan.source_run_id, "a run id (A-Za-z0-9_.:+-)"))
    if not _fits(SHA256, plan.evidence.sha256):
        problems.append(_bad("evidence sha256", plan.evidence.sha256, "64 hex digits"))
    seen: set[str] = set()
    for index, a in enumerate(plan.actions):
        ids = [a.keep, *(k.access_key_id for k in a.deactivate)]
        texts = [a.account_id, a.account_name, a.user_name, a.arn, a.keep_reason, *ids]
        if not all(isinstance(text, str) for text in texts):
            problems.append(f"action {index}: every id, name, ARN and reason must be a string")
            continue
        if not _fits(ACCOUNT_ID, a.account_id):
            problems.append(_bad("account id", a.account_id, "12 digits"))
        if not _fits(USER_NAME, a.user_name):
            problems.append(_bad("user name", a.user_name, "an IAM user name"))
        arn = USER_ARN.fullmatch(a.arn)
        if not arn:
            problems.append(_bad("ARN", a.arn, "an IAM user ARN"))
        elif arn.group(1) != a.account_id:
            problems.append(f"{a.arn} is in account {arn.group(1)}, not {a.account_id}")
        elif arn.group(3) != a.user_name:
            problems.append(f"{a.arn} is not the ARN of user {a.user_name!r}")
        if a.arn in seen:
            problems.append(f"{a.arn} has more than one action")
        seen.add(a.arn)
        problems += [
            _bad("access key id", i, "an access key id") for i in ids if not _fits(ACCESS_KEY_ID, i)
        ]
        if len(set(ids)) != len(ids):
            problems.append(f"{a.arn}: a key is listed twice, or both kept and deactivated")
    return problems


def differences(plan: Plan, result: ScanResult) -> list[str]:
    """How the plan differs from the plan its evidence gives today; empty when they agree.

    The same decision function (`recommended_key`) makes both, so any difference is an edit.
    """
    derived = build_plan(result, plan.evidence)
    problems = [
        f"{name}: the plan says {mine!r}, the evidence {theirs!r}"
        for name, mine, theirs in (
            ("source_run_id", plan.source_run_id, derived.source_run_id),
            ("organization_id", plan.organization_id, derived.organization_id),
            ("not_planned", plan.not_planned, derived.not_planned),
        )
        if mine != theirs
    ]
    planned = {a.arn: a for a in plan.actions}
    expected = {a.arn: a for a in derived.actions}
    for arn in sorted(planned.keys() | expected.keys()):
        mine, theirs = planned.get(arn), expected.get(arn)
        if theirs is None:
            problems.append(f"{arn}: the plan has an action the evidence does not call for")
        elif mine is None:
            problems.append(f"{arn}: the evidence calls for an action the plan lacks")
        elif mine != theirs:
            problems.append(
                f"{arn}: the plan keeps {mine.keep} and deactivates {_ids(mine)}; "
                f"the evidence keeps {theirs.keep} and deactivates {_ids(theirs)}"
                if (mine.keep, _ids(mine)) != (theirs.keep, _ids(theirs))
                else f"{arn}: the plan's details (names, reasons or dates) differ from the evidence"
            )
    return problems


def _ids(action: UserAction) -> str:
    return ", ".join(k.access_key_id for k in action.deactivate) or "nothing"


def check(plan: Plan, findings: Path) -> ScanResult:
    """The plan's evidence, read and proven to be the plan's: same bytes, same decisions.

    Raises PlanError, naming every difference, when the evidence was changed or the plan was.
    """
    result, evidence = load_evidence(findings)
    if evidence.sha256 != plan.evidence.sha256:
        raise PlanError(
            f"{findings} is not the evidence this plan was made from: its SHA-256 is "
            f"{evidence.sha256}, the plan's evidence had {plan.evidence.sha256}"
        )
    problems = differences(plan, result)
    if problems:
        raise PlanError(
            "the plan does not match its evidence, so none of it is applied (was it edited?):\n  "
            + "\n  ".join(problems)
        )
    return result


def _comment(text: str) -> str:
    """Text fit for one `#` line: no control, format or separator character, which could end
    the comment (a newline) or hide what follows it (a bidi override)."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in _UNPRINTABLE)


_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _command(*args: str) -> str:
    return " ".join(shlex.quote(arg) for arg in args)


def commands(plan: Plan) -> str:
    """The same plan as AWS CLI commands, for teams that apply changes through a pipeline."""
    lines = [
        "#!/bin/sh",
        f"# orgscan remediation plan for organization {_comment(plan.organization_id)},",
        f"# from scan {_comment(plan.source_run_id)}, made {iso(plan.created_at)}.",
        f"# Evidence: findings.json with SHA-256 {_comment(plan.evidence.sha256)}.",
        "# Deactivates keys only; nothing is deleted. Reactivate with --status Active.",
        "set -eu",
    ]
    by_account: dict[str, list[UserAction]] = {}
    for action in plan.actions:
        by_account.setdefault(action.account_id, []).append(action)
    for account_id, actions in sorted(by_account.items()):
        lines += [
            "",
            f"# Account {_comment(account_id)} ({_comment(actions[0].account_name)}): "
            "run with its credentials",
        ]
        for action in actions:
            lines.append(
                f"# {_comment(action.arn)}: keep {_comment(action.keep)} "
                f"({_comment(action.keep_reason)})"
            )
            lines += [
                _command(
                    "aws",
                    "iam",
                    "update-access-key",
                    "--user-name",
                    action.user_name,
                    "--access-key-id",
                    key.access_key_id,
                    "--status",
                    "Inactive",
                )
                for key in action.deactivate
            ]
    return "\n".join(lines) + "\n"


def write(plan: Plan, path: Path) -> list[Path]:
    script = path.with_suffix(".sh")
    write_atomic(path, (json.dumps(PLAN.document(plan), indent=2) + "\n").encode())
    write_atomic(script, commands(plan).encode())
    return [path, script]


def read(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: cannot read a plan: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise PlanError(f"{path}: not an orgscan remediation plan")
    version = data.get("schema_version")
    if version == "1.0":
        raise PlanError(
            f"{path}: a plan of schema_version '1.0' does not name its evidence, so it cannot be "
            "checked; make a new one with 'orgscan remediate plan'"
        )
    if version != SCHEMA_VERSION:
        raise PlanError(f"{path}: plan schema_version {version!r} unsupported")
    try:
        plan = PLAN.decode(data, f"{path}: malformed plan")
    except codec.EvidenceError as exc:
        raise PlanError(str(exc)) from None
    problems = malformed(plan)
    if problems:
        raise PlanError(f"{path}: malformed plan: " + "; ".join(problems[:5]))
    return plan
