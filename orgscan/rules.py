"""The rules: their metadata, read from `orgscan/rules.yaml` alone (id, severity, title,
descriptions, resource, thresholds, needs, remediation, references), and the remedy's decision
of which key to keep.

Evaluation, the reports and remediation all read the rules from here; each rule's evaluation is
its function in `orgscan.checks`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import yaml

from orgscan.model import AccessKey, ResourceType, UserKeys

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Reference:
    title: str
    url: str


# The rule ids other code names: remediation's choices, and what evidence older than the rules
# (schema 1.x and 2.0) was about.
MULTIPLE_ACTIVE_KEYS = "iam-user-multiple-active-access-keys"
NOT_ROTATED = "iam-access-key-not-rotated"
UNUSED = "iam-access-key-unused"
ROOT_KEY = "root-access-key-present"
# What collection can be asked to read beyond the users and their keys.
NEEDS = frozenset({"key_last_use", "flagged_key_last_use", "root_keys"})
ROOT_USER = "<root_account>"  # the root user, as the credential report and exceptions name it


@dataclass(frozen=True, slots=True)
class Remediation:
    automated: bool  # `orgscan remediate` may deactivate keys for it; else the plan says how
    summary: str
    console: tuple[str, ...]
    cli: tuple[str, ...]
    infrastructure_as_code: str


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    title: str
    short_description: str
    full_description: str
    rationale: str
    severity: str
    security_severity: str  # a numeric string, as GitHub code scanning reads it
    help_uri: str
    resource: ResourceType
    parameters: dict[str, int]  # thresholds and their defaults
    needs: frozenset[str]
    remediation: Remediation
    references: tuple[Reference, ...]
    tags: tuple[str, ...]


def parse_rule(data: dict[str, Any]) -> Rule:
    remediation = data["remediation"]
    if remediation["automated"] not in ("deactivate", "manual"):
        raise ValueError(
            f"rules.yaml: {data['id']}: remediation.automated must be deactivate or manual"
        )
    if unknown := set(data["needs"]) - NEEDS:
        raise ValueError(f"rules.yaml: {data['id']}: unknown needs {sorted(unknown)}")
    rule = Rule(
        id=data["id"],
        name=data["name"],
        title=data["title"],
        short_description=data["short_description"],
        full_description=data["full_description"],
        rationale=data["rationale"],
        severity=data["severity"],
        security_severity=str(data["security_severity"]),
        help_uri=data["help_uri"],
        resource=ResourceType(data["resource"]),
        parameters={str(k): int(v) for k, v in data["parameters"].items()},
        needs=frozenset(data["needs"]),
        remediation=Remediation(
            automated=remediation["automated"] == "deactivate",
            summary=remediation["summary"],
            console=tuple(remediation["console"]),
            cli=tuple(remediation["cli"]),
            infrastructure_as_code=remediation["infrastructure_as_code"],
        ),
        references=tuple(Reference(**ref) for ref in data["references"]),
        tags=tuple(data["tags"]),
    )
    try:
        float(rule.security_severity)
    except ValueError:
        # Fail here rather than at upload: GitHub drops a severity that is not a number.
        raise ValueError(
            f"rules.yaml: {rule.id}: security_severity must be a number, "
            f"got {rule.security_severity!r}"
        ) from None
    return rule


@cache
def load_rules() -> tuple[Rule, ...]:
    """Every rule, in rules.yaml's order (the order of every report)."""
    text = resources.files("orgscan").joinpath("rules.yaml").read_text(encoding="utf-8")
    return tuple(parse_rule(entry) for entry in yaml.safe_load(text)["rules"])


@cache
def rule_by_id(rule_id: str) -> Rule:
    for rule in load_rules():
        if rule.id == rule_id:
            return rule
    raise KeyError(f"no rule {rule_id!r}; the rules are: {', '.join(rule_ids())}")


def rule_ids() -> tuple[str, ...]:
    return tuple(rule.id for rule in load_rules())


@dataclass(frozen=True, slots=True)
class Recommendation:
    key: AccessKey
    reason: str


def recommended_key(user: UserKeys) -> Recommendation | None:
    """The active key to keep: the most recently used one; if none was ever used, the newest.

    Only active keys are candidates: the remedy deactivates keys, it never reactivates one.
    Ties fall to the key id so that every report names the same key.
    """
    active = [key for key in user.access_keys if key.active]
    if not active:
        return None
    used = [key for key in active if key.last_used_at is not None]
    if used:
        best = max(used, key=lambda k: (k.last_used_at or _EPOCH, k.id or ""))
        return Recommendation(best, "most recently used")
    best = max(active, key=lambda k: (k.created_at or _EPOCH, k.id or ""))
    return Recommendation(best, "newest; no active key has been used")


def fingerprint(rule_id: str, resource_id: str) -> str:
    """One finding's identity across scans and formats (SARIF's partial fingerprint, OCSF's
    uid, ASFF's Id, the watch's alert): only the rule and the resource (a user's ARN, a key's
    id, the root's ARN), never run data, so an alert survives from scan to scan. A user rule's
    resource is the user's ARN, as before rules were many: old alerts keep their identity."""
    return hashlib.sha256(f"{rule_id}\n{resource_id}".encode()).hexdigest()
