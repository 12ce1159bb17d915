"""The rules are named once, in rules.yaml; evaluation, config and the reports read them there."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from orgscan.checks import CHECKS
from orgscan.config import ConfigError, parse_config
from orgscan.model import AccessKey, UserKeys
from orgscan.rules import load_rules, recommended_key, rule_by_id


def _data(name: str) -> dict:
    return yaml.safe_load(resources.files("orgscan").joinpath(name).read_text())


def test_every_rule_in_the_data_has_one_check_and_no_check_lacks_its_data():
    assert [rule["id"] for rule in _data("rules.yaml")["rules"]] == list(CHECKS)
    assert [rule.id for rule in load_rules()] == list(CHECKS)


def test_the_four_rules_and_their_defaults():
    assert {
        r.id: (r.severity, r.resource, r.parameters, r.remediation.automated) for r in load_rules()
    } == {
        "iam-user-multiple-active-access-keys": ("medium", "user", {}, True),
        "iam-access-key-not-rotated": ("medium", "access-key", {"max_age_days": 90}, False),
        "iam-access-key-unused": ("medium", "access-key", {"max_unused_days": 45}, True),
        "root-access-key-present": ("critical", "account", {}, False),
    }
    assert rule_by_id("iam-access-key-unused").needs == {"key_last_use"}
    assert rule_by_id("root-access-key-present").needs == {"root_keys"}
    with pytest.raises(KeyError, match="no rule 'nope'"):
        rule_by_id("nope")


def test_the_control_mappings_do_not_restate_the_rules():
    assert set(_data("controls.yaml")) == {"controls"}


def test_config_rules_default_to_all_four_with_their_thresholds():
    config = parse_config({})
    assert [(r.id, r.thresholds) for r in config.rules] == [
        ("iam-user-multiple-active-access-keys", {}),
        ("iam-access-key-not-rotated", {"max_age_days": 90}),
        ("iam-access-key-unused", {"max_unused_days": 45}),
        ("root-access-key-present", {}),
    ]


def test_config_rules_enable_disable_and_set_thresholds():
    config = parse_config(
        {
            "rules": {
                "iam-access-key-unused": {"max_unused_days": 30},
                "root-access-key-present": {"enabled": False},
            }
        }
    )
    assert [(r.id, r.thresholds) for r in config.rules] == [
        ("iam-user-multiple-active-access-keys", {}),
        ("iam-access-key-not-rotated", {"max_age_days": 90}),
        ("iam-access-key-unused", {"max_unused_days": 30}),
    ]
    assert [r.id for r in config.with_rules(["iam-access-key-unused"]).rules] == [
        "iam-access-key-unused"
    ]


@pytest.mark.parametrize(
    ("rules", "where", "message"),
    [
        ({"nope": {}}, "rules.nope", "unknown rule; expected one of: iam-user-multiple"),
        (
            {"iam-access-key-unused": {"max_unused_days": 0}},
            "rules.iam-access-key-unused.max_unused_days",
            "expected a number of days from 1 to 3650, got int 0",
        ),
        (
            {"iam-access-key-unused": {"max_age_days": 90}},
            "rules.iam-access-key-unused.max_age_days",
            "unknown key; expected one of: enabled, max_unused_days",
        ),
        (
            {"iam-access-key-unused": {"enabled": "yes"}},
            "rules.iam-access-key-unused.enabled",
            "expected true or false, got 'yes'",
        ),
        (
            {r.id: {"enabled": False} for r in load_rules()},
            "rules",
            "every rule is disabled",
        ),
    ],
)
def test_config_rules_refusals_name_the_key(rules, where, message):
    with pytest.raises(ConfigError) as error:
        parse_config({"rules": rules})
    assert error.value.path == where
    assert message in str(error.value)


def test_narrowing_to_an_unknown_or_disabled_rule_is_refused():
    config = parse_config({"rules": {"root-access-key-present": {"enabled": False}}})
    with pytest.raises(ConfigError, match="unknown rule 'nope'"):
        config.with_rules(["nope"])
    with pytest.raises(ConfigError, match=r"disabled by rules\.root-access-key-present\.enabled"):
        config.with_rules(["root-access-key-present"])


EXCEPTION = {
    "account": "123456789012",
    "user": "ci",
    "reason": "vendor",
    "owner": "team",
    "expires": "2027-01-01",
}


def test_an_exception_without_rules_covers_the_one_active_key_rule_only():
    (old,) = parse_config({"exceptions": [EXCEPTION]}).exceptions
    assert old.rules == ("iam-user-multiple-active-access-keys",)
    (new,) = parse_config(
        {"exceptions": [EXCEPTION | {"rules": ["iam-access-key-unused"]}]}
    ).exceptions
    assert new.rules == ("iam-access-key-unused",)
    with pytest.raises(ConfigError, match=r"exceptions\[0\].rules\[0\]: expected a rule id"):
        parse_config({"exceptions": [EXCEPTION | {"rules": ["unused"]}]})
    with pytest.raises(ConfigError, match=r"exceptions\[0\].rules: expected a non-empty list"):
        parse_config({"exceptions": [EXCEPTION | {"rules": []}]})


def test_the_remedy_keeps_an_active_key_only():
    user = UserKeys("1", "u", "arn", "/", (AccessKey("AKIA1", "Inactive", None),))
    assert recommended_key(user) is None
