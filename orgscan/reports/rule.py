"""The rule's metadata (`orgscan/rule.yaml`): title, descriptions, remediation, references."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml


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
