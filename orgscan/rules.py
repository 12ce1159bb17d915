"""The rule: its metadata, read from `orgscan/rule.yaml` alone (id, severity, title,
descriptions, remediation, references), and the remedy's decision of which key to keep.

Evaluation, the reports and remediation all read the rule from here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import yaml

from orgscan.model import AccessKey, UserKeys

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Reference:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Remediation:
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
    remediation: Remediation
    references: tuple[Reference, ...]
    tags: tuple[str, ...]


def parse_rule(data: dict[str, Any]) -> Rule:
    remediation = data["remediation"]
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
        remediation=Remediation(
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
            f"rule.yaml: security_severity must be a number, got {rule.security_severity!r}"
        ) from None
    return rule


@cache
def load_rule() -> Rule:
    text = resources.files("orgscan").joinpath("rule.yaml").read_text(encoding="utf-8")
    return parse_rule(yaml.safe_load(text))


# The rule's id and severity, as every finding carries them: rule.yaml's, never restated.
RULE_ID = load_rule().id
SEVERITY = load_rule().severity


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


def fingerprint(rule_id: str, arn: str) -> str:
    """One finding's identity across scans and formats (SARIF's partial fingerprint, OCSF's
    uid, ASFF's Id, the watch's alert): only the rule and the ARN, never run data, so an alert
    survives from scan to scan."""
    return hashlib.sha256(f"{rule_id}\n{arn}".encode()).hexdigest()
