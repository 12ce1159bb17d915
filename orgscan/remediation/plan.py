"""`orgscan remediate plan`: from the evidence, which keys to keep and which to deactivate.

The plan is derived from findings.json alone and records what each key looked like when it
was made, so `apply` can refuse any key that changed since, above all one used after the plan.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orgscan.model import FindingState, ScanResult, iso, parse_iso, utcnow
from orgscan.reports.files import write_atomic
from orgscan.reports.view import recommended_key

KIND = "orgscan-remediation-plan"
SCHEMA_VERSION = "1.0"


class PlanError(Exception):
    """A plan file that is missing, malformed or not a plan."""


@dataclass(frozen=True, slots=True)
class KeyAction:
    access_key_id: str
    created_at: datetime | None
    last_used_at: datetime | None  # as the scan saw it; a newer date at apply time means "in use"


@dataclass(frozen=True, slots=True)
class UserAction:
    account_id: str
    account_name: str
    user_name: str
    arn: str
    keep: str
    keep_reason: str
    deactivate: tuple[KeyAction, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    created_at: datetime
    source_run_id: str
    organization_id: str
    actions: tuple[UserAction, ...]
    not_planned: tuple[str, ...] = ()  # open findings no action could be planned for, and why

    def per_account(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.account_id] = counts.get(action.account_id, 0) + len(action.deactivate)
        return counts


def build_plan(result: ScanResult) -> Plan:
    """For each open finding keep the recommended key and deactivate the other active ones."""
    users = {user.arn: user for user in result.users}
    names = {a.account.id: a.account.name for a in result.accounts}
    actions, not_planned = [], []
    for finding in result.findings:
        if finding.state is not FindingState.OPEN:
            continue
        user = users.get(finding.arn)
        keep = recommended_key(user) if user else None
        if user is None or keep is None:
            not_planned.append(f"{finding.arn}: the evidence has no keys for this user")
            continue
        others = [k for k in user.access_keys if k.active and k is not keep.key]
        if keep.key.id is None or any(k.id is None for k in others):
            not_planned.append(f"{finding.arn}: the evidence lacks its access key ids")
            continue
        unknown = [k for k in user.access_keys if k.active and k.last_used_error]
        if unknown:
            # The key to keep is the one in use: with a last use unknown, it cannot be chosen.
            not_planned.append(
                f"{finding.arn}: the last use of {', '.join(str(k.id) for k in unknown)} is "
                "unknown; scan again"
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
    return Plan(
        created_at=utcnow(),
        source_run_id=result.run.id,
        organization_id=result.run.organization_id,
        actions=tuple(actions),
        not_planned=tuple(not_planned),
    )


def to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "created_at": iso(plan.created_at),
        "source_run_id": plan.source_run_id,
        "organization_id": plan.organization_id,
        "actions": [
            {
                "account_id": a.account_id,
                "account_name": a.account_name,
                "user_name": a.user_name,
                "arn": a.arn,
                "keep": a.keep,
                "keep_reason": a.keep_reason,
                "deactivate": [
                    {
                        "access_key_id": k.access_key_id,
                        "created_at": iso(k.created_at),
                        "last_used_at": iso(k.last_used_at),
                    }
                    for k in a.deactivate
                ],
            }
            for a in plan.actions
        ],
        "not_planned": list(plan.not_planned),
    }


def commands(plan: Plan) -> str:
    """The same plan as AWS CLI commands, for teams that apply changes through a pipeline."""
    lines = [
        "#!/bin/sh",
        f"# orgscan remediation plan for organization {plan.organization_id},",
        f"# from scan {plan.source_run_id}, made {iso(plan.created_at)}.",
        "# Deactivates keys only; nothing is deleted. Reactivate with --status Active.",
        "set -eu",
    ]
    by_account: dict[str, list[UserAction]] = {}
    for action in plan.actions:
        by_account.setdefault(action.account_id, []).append(action)
    for account_id, actions in sorted(by_account.items()):
        lines += [
            "",
            f"# Account {account_id} ({actions[0].account_name}): run with its credentials",
        ]
        for action in actions:
            lines.append(f"# {action.arn}: keep {action.keep} ({action.keep_reason})")
            lines += [
                "aws iam update-access-key"
                f" --user-name {shlex.quote(action.user_name)}"
                f" --access-key-id {shlex.quote(key.access_key_id)} --status Inactive"
                for key in action.deactivate
            ]
    return "\n".join(lines) + "\n"


def write(plan: Plan, path: Path) -> list[Path]:
    script = path.with_suffix(".sh")
    write_atomic(path, (json.dumps(to_dict(plan), indent=2) + "\n").encode())
    write_atomic(script, commands(plan).encode())
    return [path, script]


def read(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: cannot read a plan: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise PlanError(f"{path}: not an orgscan remediation plan")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise PlanError(f"{path}: plan schema_version {data.get('schema_version')!r} unsupported")
    try:
        return Plan(
            created_at=parse_iso(data["created_at"]),  # type: ignore[arg-type]
            source_run_id=data["source_run_id"],
            organization_id=data["organization_id"],
            actions=tuple(
                UserAction(
                    account_id=a["account_id"],
                    account_name=a["account_name"],
                    user_name=a["user_name"],
                    arn=a["arn"],
                    keep=a["keep"],
                    keep_reason=a["keep_reason"],
                    deactivate=tuple(
                        KeyAction(
                            k["access_key_id"],
                            parse_iso(k["created_at"]),
                            parse_iso(k["last_used_at"]),
                        )
                        for k in a["deactivate"]
                    ),
                )
                for a in data["actions"]
            ),
            not_planned=tuple(data["not_planned"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path}: malformed plan: {exc!r}") from None
