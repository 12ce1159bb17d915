"""The rule is named once, in rule.yaml; evaluation and the control mappings read it."""

from __future__ import annotations

from datetime import date
from importlib import resources

import yaml

from orgscan.evaluate import evaluate
from orgscan.model import AccessKey, UserKeys
from orgscan.rules import RULE_ID, SEVERITY, recommended_key


def _data(name: str) -> dict:
    return yaml.safe_load(resources.files("orgscan").joinpath(name).read_text())


def test_findings_carry_the_id_and_severity_of_rule_yaml():
    rule = _data("rule.yaml")
    user = UserKeys(
        "111111111111",
        "bob",
        "arn:aws:iam::111111111111:user/bob",
        "/",
        (AccessKey("AKIA1", "Active", None), AccessKey("AKIA2", "Active", None)),
    )
    [finding] = evaluate([user], [], date(2026, 1, 1))
    assert (finding.rule_id, finding.severity) == (rule["id"], rule["severity"])
    assert (rule["id"], rule["severity"]) == (RULE_ID, SEVERITY)


def test_the_control_mappings_do_not_restate_the_rule():
    assert set(_data("controls.yaml")) == {"controls"}


def test_the_remedy_keeps_an_active_key_only():
    user = UserKeys("1", "u", "arn", "/", (AccessKey("AKIA1", "Inactive", None),))
    assert recommended_key(user) is None
