"""`orgscan remediate plan`: from the evidence, which keys to keep and which to deactivate,
and the steps a person takes for the findings no tool should remedy.

Per rule (rules.yaml's `remediation.automated`): the one-active-key rule keeps the key in use
and deactivates the user's other active keys; the unused-key rule deactivates the unused key. A
key both would deactivate is one action naming both rules. A key is only ever deactivated for a
rule that calls for it, never because it is "not the one kept" when the kept key goes too: when
the key the one-active-key remedy would keep is itself unused, it is deactivated for the unused
rule alone and the user's other keys stay as they are (a key created days ago, mid-rotation,
is not switched off with it); a user whose every active key is unused ends with none active, as
the unused rule asks, and rollback restores them. Rules whose remedy is manual (rotation, the
root user's keys) are listed with their steps in plan.sh, as comments: never run.

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
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict

from orgscan import evidence as codec
from orgscan.fs import write_atomic
from orgscan.model import (
    EVIDENCE,
    Finding,
    FindingState,
    RuleSettings,
    ScanResult,
    Timestamp,
    UserKeys,
    iso,
    utcnow,
)
from orgscan.rules import (
    MULTIPLE_ACTIVE_KEYS,
    ROOT_USER,
    UNUSED,
    Rule,
    recommended_key,
    rule_by_id,
)

KIND = "orgscan-remediation-plan"
# 1.1: the plan names its evidence (path and SHA-256). A 1.0 plan cannot be checked against
# its evidence, so it is refused rather than trusted.
# 1.2: several rules. The plan names the rules it was made for (with the evidence's
# thresholds), each key the rules it is deactivated for, and the manual findings. A 1.1 plan
# reads as one for the one-active-key rule alone, which is what it was.
SCHEMA_VERSION = "1.2"
READABLE_VERSIONS = ("1.1", SCHEMA_VERSION)
# The rules orgscan deactivates keys for, each by its own decision below.
AUTOMATED = (MULTIPLE_ACTIVE_KEYS, UNUSED)

# Formats from the IAM and Organizations service models, ASCII only and matched in full.
ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
ORGANIZATION_ID = re.compile(r"o-[a-z0-9]{10,32}", re.ASCII)
ACCESS_KEY_ID = re.compile(r"\w{16,128}", re.ASCII)
USER_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
# The root user of an account: arn:<partition>:iam::<account>:root.
ROOT_ARN = re.compile(r"arn:aws[a-z-]{0,20}:iam::(\d{12}):root", re.ASCII)
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
    # The rules whose remedy deactivates the key, each for an open finding; a 1.1 plan's keys
    # were the one-active-key rule's.
    rules: tuple[str, ...] = (MULTIPLE_ACTIVE_KEYS,)


@dataclass(frozen=True, slots=True)
class UserAction:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    account_id: str
    account_name: str
    user_name: str
    arn: str
    # The key the one-active-key remedy keeps; None when no key is deactivated for that rule.
    keep: str | None
    keep_reason: str | None
    deactivate: tuple[KeyAction, ...]


@dataclass(frozen=True, slots=True)
class ManualAction:
    """An open finding of a rule orgscan never remedies itself: plan.sh gives its steps."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    rule_id: str
    account_id: str
    account_name: str
    user_name: str  # the key's owner, or ROOT_USER
    arn: str  # the user's ARN, or the account's root ARN
    access_key_id: str | None  # the key, for a key rule
    detail: str  # the finding's line of evidence


@dataclass(frozen=True, slots=True)
class Plan:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    created_at: Timestamp
    source_run_id: str
    organization_id: str
    evidence: Evidence
    actions: tuple[UserAction, ...]
    not_planned: tuple[str, ...] = ()  # open findings no action could be planned for, and why
    manual: tuple[ManualAction, ...] = ()
    # The rules planned for, with the thresholds their findings were judged by (apply re-checks
    # an unused key against the same limit).
    rules: tuple[RuleSettings, ...] = (RuleSettings(MULTIPLE_ACTIVE_KEYS),)

    def thresholds(self, rule_id: str) -> dict[str, int]:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule_by_id(rule_id).parameters | rule.thresholds
        raise KeyError(rule_id)

    def per_rule(self) -> dict[str, int]:
        """Keys to deactivate per rule, in the plan's rule order (a key may count for two)."""
        counts = {rule.id: 0 for rule in self.rules if rule.id in AUTOMATED}
        for action in self.actions:
            for key in action.deactivate:
                for rule_id in key.rules:
                    counts[rule_id] = counts.get(rule_id, 0) + 1
        return counts

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


def planned_rules(
    result: ScanResult, wanted: Sequence[str] | None = None
) -> tuple[RuleSettings, ...]:
    """The evidence's rules (all, or those `wanted`), in its order. PlanError, naming
    `--rules`, for a rule the run did not evaluate: its findings could not be in the evidence."""
    evaluated = [rule.id for rule in result.run.rules]
    unknown = [rule_id for rule_id in wanted or () if rule_id not in evaluated]
    if unknown:
        raise PlanError(
            f"--rules: {', '.join(unknown)}: not evaluated by run {result.run.id}; it evaluated "
            + ", ".join(evaluated)
        )
    return tuple(r for r in result.run.rules if wanted is None or r.id in wanted)


def build_plan(result: ScanResult, evidence: Evidence, rules: Sequence[str] | None = None) -> Plan:
    """Per open finding of the rules planned for (all the run evaluated, or `rules`): the keys
    to deactivate, or the manual steps. An excepted finding is never remedied.

    Raises PlanError when the evidence holds an id or ARN that is not in AWS's format.
    """
    settings = planned_rules(result, rules)
    planned = {rule.id for rule in settings}
    users = {user.arn: user for user in result.users}
    names = {a.account.id: a.account.name for a in result.accounts}
    order = {rule.id: index for index, rule in enumerate(settings)}
    automated: dict[str, dict[str, list[Finding]]] = {}  # per user ARN, per rule
    manual, not_planned = [], []
    for finding in result.findings:
        if finding.state is not FindingState.OPEN or finding.rule_id not in planned:
            continue
        rule = rule_by_id(finding.rule_id)
        if finding.rule_id in AUTOMATED:
            automated.setdefault(finding.arn, {}).setdefault(finding.rule_id, []).append(finding)
        elif not rule.remediation.automated:
            manual.append(
                ManualAction(
                    rule_id=finding.rule_id,
                    account_id=finding.account_id,
                    account_name=names.get(finding.account_id, ""),
                    user_name=finding.user_name,
                    arn=finding.arn,
                    access_key_id=finding.access_key_id,
                    detail=finding.detail,
                )
            )
        else:
            not_planned.append(
                f"{_comment(finding.arn)}: {finding.rule_id}: this orgscan has no automated "
                "remedy for the rule"
            )
    actions = []
    for arn, found in automated.items():
        action, problems = _user_action(users.get(arn), found, names, order)
        not_planned += [f"{_comment(arn)}: {problem}" for problem in problems]
        if action is not None:
            actions.append(action)
    plan = Plan(
        created_at=utcnow(),
        source_run_id=result.run.id,
        organization_id=result.run.organization_id,
        evidence=evidence,
        actions=tuple(actions),
        not_planned=tuple(not_planned),
        manual=tuple(manual),
        rules=settings,
    )
    problems = [*_used_after_the_run(result), *malformed(plan)]
    if problems:
        raise PlanError("the evidence is not fit for a plan: " + "; ".join(problems[:5]))
    return plan


def _user_action(
    user: UserKeys | None,
    found: dict[str, list[Finding]],
    names: dict[str, str],
    order: dict[str, int],
) -> tuple[UserAction | None, list[str]]:
    """One user's keys to deactivate for its open findings of the automated rules, and why any
    finding gets no action."""
    if user is None or user.error is not None:
        return None, ["the evidence has no keys for this user"]
    active = [key for key in user.access_keys if key.active]
    if any(key.id is None for key in active):
        return None, ["the evidence lacks its access key ids"]
    problems: list[str] = []
    unused = {f.access_key_id for f in found.get(UNUSED, ())}
    if gone := unused - {key.id for key in active}:
        problems.append(
            f"{UNUSED}: {_comment(', '.join(sorted(map(str, gone))))} is not an active key "
            "of the user in the evidence"
        )
    rules: dict[str, list[str]] = {
        str(key.id): [UNUSED] if key.id in unused else [] for key in active
    }
    keep = None
    if MULTIPLE_ACTIVE_KEYS in found:
        chosen = recommended_key(user)
        unknown = [key for key in active if key.last_used_error]
        if unknown:
            # The key to keep is the one in use: with a last use unknown, it cannot be chosen.
            problems.append(
                f"{MULTIPLE_ACTIVE_KEYS}: the last use of "
                f"{_comment(', '.join(str(k.id) for k in unknown))} is unknown; scan again"
            )
        elif chosen is None:
            problems.append(f"{MULTIPLE_ACTIVE_KEYS}: the evidence has no active keys for the user")
        elif chosen.key.id in unused:
            problems.append(
                f"{MULTIPLE_ACTIVE_KEYS}: the key it would keep, {_comment(str(chosen.key.id))} "
                f"({chosen.reason}), is itself unused and is deactivated for {UNUSED}; no "
                "other key is deactivated for this rule"
            )
        else:
            keep = chosen
            for key in active:
                if key is not chosen.key:
                    rules[str(key.id)].append(MULTIPLE_ACTIVE_KEYS)
    deactivate = tuple(
        KeyAction(
            str(key.id),
            key.created_at,
            key.last_used_at,
            tuple(sorted(rules[str(key.id)], key=order.__getitem__)),
        )
        for key in active
        if rules[str(key.id)]
    )
    if not deactivate:
        return None, problems
    first = next(iter(found.values()))[0]
    return (
        UserAction(
            account_id=first.account_id,
            account_name=names.get(first.account_id, ""),
            user_name=first.user_name,
            arn=first.arn,
            keep=str(keep.key.id) if keep else None,
            keep_reason=keep.reason if keep else None,
            deactivate=deactivate,
        ),
        problems,
    )


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
    planned = {rule.id for rule in plan.rules}
    if unknown := [rule.id for rule in plan.rules if not _known_rule(rule.id)]:
        problems.append(f"rules {unknown!r} are not rules of this orgscan")
    seen: set[str] = set()
    for index, a in enumerate(plan.actions):
        ids = [*([a.keep] if a.keep is not None else []), *(k.access_key_id for k in a.deactivate)]
        texts = [a.account_id, a.account_name, a.user_name, a.arn, a.keep_reason or "", *ids]
        if not all(isinstance(text, str) for text in texts):
            problems.append(f"action {index}: every id, name, ARN and reason must be a string")
            continue
        problems += _owner(a.account_id, a.user_name, a.arn, root=False)
        if a.arn in seen:
            problems.append(f"{a.arn} has more than one action")
        seen.add(a.arn)
        problems += [
            _bad("access key id", i, "an access key id") for i in ids if not _fits(ACCESS_KEY_ID, i)
        ]
        if len(set(ids)) != len(ids):
            problems.append(f"{a.arn}: a key is listed twice, or both kept and deactivated")
        for key in a.deactivate:
            if not key.rules or not set(key.rules) <= planned & set(AUTOMATED):
                problems.append(
                    f"{a.arn}: key {key.access_key_id} is deactivated for {list(key.rules)!r}, "
                    f"not for rules this plan deactivates keys for"
                )
            if MULTIPLE_ACTIVE_KEYS in key.rules and a.keep is None:
                problems.append(f"{a.arn}: {MULTIPLE_ACTIVE_KEYS} deactivates, but keeps no key")
    for m in plan.manual:
        if m.rule_id not in planned or not _known_rule(m.rule_id):
            problems.append(_bad("manual rule", m.rule_id, "a rule of this plan"))
        problems += _owner(m.account_id, m.user_name, m.arn, root=m.user_name == ROOT_USER)
        if m.access_key_id is not None and not _fits(ACCESS_KEY_ID, m.access_key_id):
            problems.append(_bad("access key id", m.access_key_id, "an access key id"))
    return problems


def _known_rule(rule_id: str) -> bool:
    try:
        rule_by_id(rule_id)
    except KeyError:
        return False
    return True


def _owner(account_id: str, user_name: str, arn: str, root: bool) -> list[str]:
    """The account id, user name and ARN in AWS's formats, and naming the same principal: an
    IAM user, or (root) the account's root user."""
    problems = []
    if not _fits(ACCOUNT_ID, account_id):
        problems.append(_bad("account id", account_id, "12 digits"))
    if root:
        found = ROOT_ARN.fullmatch(arn)
        if not found:
            problems.append(_bad("ARN", arn, "an account's root ARN"))
        elif found.group(1) != account_id:
            problems.append(f"{arn} is in account {found.group(1)}, not {account_id}")
        return problems
    if not _fits(USER_NAME, user_name):
        problems.append(_bad("user name", user_name, "an IAM user name"))
    match = USER_ARN.fullmatch(arn)
    if not match:
        problems.append(_bad("ARN", arn, "an IAM user ARN"))
    elif match.group(1) != account_id:
        problems.append(f"{arn} is in account {match.group(1)}, not {account_id}")
    elif match.group(3) != user_name:
        problems.append(f"{arn} is not the ARN of user {user_name!r}")
    return problems


def differences(plan: Plan, result: ScanResult) -> list[str]:
    """How the plan differs from the plan its evidence gives today; empty when they agree.

    The same decision function (`recommended_key`) makes both, so any difference is an edit.
    """
    derived = build_plan(result, plan.evidence, [rule.id for rule in plan.rules])
    problems = [
        f"{name}: the plan says {mine!r}, the evidence {theirs!r}"
        for name, mine, theirs in (
            ("source_run_id", plan.source_run_id, derived.source_run_id),
            ("organization_id", plan.organization_id, derived.organization_id),
            ("rules", plan.rules, derived.rules),
            ("not_planned", plan.not_planned, derived.not_planned),
            ("manual", plan.manual, derived.manual),
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
        elif (mine.keep, _ids(mine)) != (theirs.keep, _ids(theirs)):
            problems.append(
                f"{arn}: the plan keeps {mine.keep} and deactivates {_ids(mine)}; "
                f"the evidence keeps {theirs.keep} and deactivates {_ids(theirs)}"
            )
        elif _for(mine) != _for(theirs):
            problems.append(
                f"{arn}: the plan deactivates {_for(mine)}; the evidence {_for(theirs)}"
            )
        elif mine != theirs:
            problems.append(
                f"{arn}: the plan's details (names, reasons or dates) differ from the evidence"
            )
    return problems


def _ids(action: UserAction) -> str:
    return ", ".join(k.access_key_id for k in action.deactivate) or "nothing"


def _for(action: UserAction) -> str:
    return "; ".join(f"{k.access_key_id} for {', '.join(k.rules)}" for k in action.deactivate)


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
    """The same plan as AWS CLI commands, for teams that apply changes through a pipeline; the
    manual findings follow, each with its rule's steps as comments, never run."""
    lines = [
        "#!/bin/sh",
        f"# orgscan remediation plan for organization {_comment(plan.organization_id)},",
        f"# from scan {_comment(plan.source_run_id)}, made {iso(plan.created_at)}.",
        f"# Evidence: findings.json with SHA-256 {_comment(plan.evidence.sha256)}.",
        "# Rules: " + ", ".join(_comment(rule.id) for rule in plan.rules) + ".",
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
            kept = (
                f": keep {_comment(action.keep)} ({_comment(action.keep_reason or '')})"
                if action.keep
                else ""
            )
            lines.append(f"# {_comment(action.arn)}{kept}")
            for key in action.deactivate:
                used = f"last used {iso(key.last_used_at)}" if key.last_used_at else "never used"
                lines.append(
                    f"#   {_comment(key.access_key_id)}: for "
                    f"{_comment(', '.join(key.rules))}; {used}, created {iso(key.created_at)}"
                )
                lines.append(
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
                )
    for rule in plan.rules:
        found = [m for m in plan.manual if m.rule_id == rule.id]
        if found:
            lines += ["", *_manual_steps(rule_by_id(rule.id), found)]
    return "\n".join(lines) + "\n"


# The placeholders of a rule's CLI steps (rules.yaml) that a finding fills in.
_PLACEHOLDER = re.compile(r"\b(USER_NAME|OLD_ACCESS_KEY_ID|ACCESS_KEY_ID|ACCOUNT_ID)\b")


def _manual_steps(rule: Rule, found: Sequence[ManualAction]) -> list[str]:
    """A manual rule's findings as comments: who owns each, and its steps (the rule's CLI steps
    from rules.yaml with the finding's names filled in). Comments only: orgscan never runs
    them."""
    lines = [
        f"# Not automated: {_comment(rule.title)} ({_comment(rule.id)}), "
        f"{len(found)} finding(s). Steps for a person; nothing below runs.",
        *(f"# {line}" for line in textwrap.wrap(_comment(rule.remediation.summary), 94)),
    ]
    for m in sorted(found, key=lambda m: (m.account_id, m.arn, m.access_key_id or "")):
        lines += [
            "#",
            f"# Account {_comment(m.account_id)} ({_comment(m.account_name)}), "
            f"{_comment(m.arn)}: {_comment(m.detail)}",
            *(
                "#   " + _comment(_PLACEHOLDER.sub(partial(_filled, m), step))
                for step in rule.remediation.cli
            ),
        ]
    return lines


def _filled(finding: ManualAction, match: re.Match[str]) -> str:
    placeholder = match.group(1)
    value = {
        "USER_NAME": finding.user_name,
        "OLD_ACCESS_KEY_ID": finding.access_key_id,
        "ACCESS_KEY_ID": finding.access_key_id,
        "ACCOUNT_ID": finding.account_id,
    }[placeholder]
    return value or placeholder  # a root finding has no key id: the placeholder stays


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
    if version not in READABLE_VERSIONS:
        raise PlanError(f"{path}: plan schema_version {version!r} unsupported")
    try:
        plan = PLAN.decode(data, f"{path}: malformed plan")
    except codec.EvidenceError as exc:
        raise PlanError(str(exc)) from None
    problems = malformed(plan)
    if problems:
        raise PlanError(f"{path}: malformed plan: " + "; ".join(problems[:5]))
    return plan
