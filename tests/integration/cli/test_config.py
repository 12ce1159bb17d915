"""Config validation: every problem names its key path, exits 2, and shows no traceback."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orgscan.cli import app
from orgscan.config import ConfigError, load_config, parse_config
from orgscan.model import ApprovedException, Control, join_ou_path, split_ou_path
from orgscan.rules import MULTIPLE_ACTIVE_KEYS as MULTIPLE

ROOT = Path(__file__).resolve().parents[3]
EXCEPTION = {
    "account": "111122223333",
    "user": "ci",
    "reason": "r",
    "owner": "o@example.com",
    "expires": "2027-01-01",
}


def test_example_config_is_valid_and_documents_every_key():
    cfg = load_config(ROOT / "config.example.yaml")
    assert cfg.scan.strategy == "live"
    assert cfg.exceptions[0].expires == date(2027, 3, 31)
    assert cfg.exceptions[0].account == "111122223333"
    assert any(c.framework == "ISO/IEC 27001" for c in cfg.controls)
    text = (ROOT / "config.example.yaml").read_text()
    for key in (
        "management_account",
        "include_accounts",
        "exclude_accounts",
        "include_ous",
        "exclude_ous",
        "include_states",
        "name",
        "external_id",
        "session_name",
        "duration_seconds",
        "strategy",
        "max_accounts_in_flight",
        "management_rate_limit",
        "account_rate_limit",
        "adaptive_rate",
        "max_attempts",
        "call_timeout",
    ):
        assert f"  {key}:" in text


def test_empty_config_gives_the_documented_defaults():
    cfg = parse_config(None)
    assert (cfg.organization.management_account, cfg.role.name, cfg.scan.strategy) == (
        "auto",
        "OrgScanAudit",
        "live",
    )
    assert (cfg.scan.max_accounts_in_flight, cfg.scan.max_attempts) == (256, 8)
    assert cfg.organization.include_states == ("ACTIVE", "PENDING_CLOSURE")
    assert {(c.version, c.id) for c in cfg.controls if c.framework.startswith("CIS")} >= {
        ("1.4.0", "1.13"),
        ("1.5.0", "1.13"),
        ("5.0.0", "1.12"),
        ("6.0.0", "2.12"),
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"scan": {"strategy": "fast"}},
            "scan.strategy: expected 'live' or 'credential-report', got 'fast'",
        ),
        ({"scan": {"strategi": "live"}}, "scan.strategi: unknown key; expected one of: strategy,"),
        ({"organisation": {}}, "organisation: unknown key; expected one of: organization,"),
        (
            {"scan": {"max_attempts": "8"}},
            "scan.max_attempts: expected an integer from 1 to 50, got '8'",
        ),
        (
            {"scan": {"max_accounts_in_flight": True}},
            "scan.max_accounts_in_flight: expected an integer",
        ),
        (
            {"scan": {"account_rate_limit": 0}},
            "scan.account_rate_limit: expected a number of requests per second",
        ),
        ({"scan": []}, "scan: expected a mapping, got a list"),
        (
            {"organization": {"include_accounts": ["12345"]}},
            "organization.include_accounts[0]: expected a 12-digit account id, got '12345'",
        ),
        (
            {"organization": {"exclude_accounts": [123]}},
            "organization.exclude_accounts[0]: expected a 12-digit account id in quotes, got 123",
        ),
        (
            {"organization": {"include_ous": ["Prod"]}},
            "organization.include_ous[0]: expected an OU id (ou-...) or a path starting with",
        ),
        (
            {"organization": {"include_states": ["ACTIVE", "Suspended"]}},
            "organization.include_states[1]: expected one of 'PENDING_ACTIVATION', 'ACTIVE', "
            "'SUSPENDED', 'PENDING_CLOSURE', 'CLOSED', got 'Suspended'",
        ),
        (
            {"organization": {"include_states": []}},
            "organization.include_states: expected at least one account state",
        ),
        (
            {"organization": {"management_account": "me"}},
            "organization.management_account: expected one of 'auto', 'caller', 'assume', 'skip', "
            "got 'me'",
        ),
        ({"role": {"external_id": "x"}}, "role.external_id: expected a string of 2-1224"),
        (
            {"role": {"duration_seconds": 60}},
            "role.duration_seconds: expected an integer from 900 to 43200",
        ),
        (
            {"exceptions": [{k: v for k, v in EXCEPTION.items() if k != "owner"}]},
            "exceptions[0].owner: is required",
        ),
        (
            {"exceptions": [{k: v for k, v in EXCEPTION.items() if k != "expires"}]},
            "exceptions[0].expires: is required",
        ),
        (
            {"exceptions": [{**EXCEPTION, "expires": "next year"}]},
            "exceptions[0].expires: expected a date as YYYY-MM-DD, got 'next year'",
        ),
        (
            {"exceptions": [{**EXCEPTION, "account": "abc"}]},
            "exceptions[0].account: expected a 12-digit",
        ),
        ({"exceptions": [{**EXCEPTION, "approver": "x"}]}, "exceptions[0].approver: unknown key"),
        (
            {"controls": [{"framework": "X", "version": 2.0, "id": "1", "title": "t"}]},
            "controls[0].version: expected a quoted string, got float 2.0; quote it",
        ),
        (
            {"exceptions": [{**EXCEPTION, "expires": datetime(2099, 1, 1)}]},
            "exceptions[0].expires: expected a date as YYYY-MM-DD, got datetime",
        ),
        ({"role": {"session_name": "orgscän"}}, "role.session_name: expected a session name"),
        ({"role": {"name": "Audité"}}, "role.name: expected an IAM role name"),
        (
            {"organization": {"include_accounts": ["123456789012\n"]}},
            "organization.include_accounts[0]: expected a 12-digit account id",
        ),
        (
            {"organization": {"include_accounts": ["١٢٣٤٥٦٧٨٩٠١٢"]}},
            "organization.include_accounts[0]: expected a 12-digit account id",
        ),
        ({"scan": {"account_rate_limit": 1e-7}}, "scan.account_rate_limit: expected a number"),
        ("just text", "expected a mapping, got 'just text'"),
        (
            {"organization": {"": None}},
            "organization.: unknown key; expected one of: management_account, include_accounts,",
        ),
        ({"scan": {"strategi": 1, 5: 1}}, "scan: keys must be strings, got int 5"),
        (
            {"scan": {"strategy": "fast", "strategi": "live"}},
            "scan.strategi: unknown key; expected one of: strategy, max_accounts_in_flight,",
        ),
        (
            {"scan": {"max_attempts": 8}, "bogus": 1},
            "bogus: unknown key; expected one of: organization, role, scan, exceptions, rules, "
            "controls,",
        ),
        (
            {"organization": {"include_ous": "Root/Prod"}},
            "organization.include_ous: expected a list, got 'Root/Prod'",
        ),
        (
            {"organization": {"include_ous": ["ou-x"]}},
            "organization.include_ous[0]: expected an OU id like 'ou-ab12-cd34ef56' or a path like"
            " 'Root/Prod', got 'ou-x'",
        ),
        (
            {"organization": {"include_ous": ["Root/Prod/"]}},
            "organization.include_ous[0]: expected an OU path like 'Root/Prod' ('\\/' for a '/' in"
            " a name): an OU name cannot be empty ('//', or '/' at either end)",
        ),
        (
            {"organization": {"exclude_ous": ["Prod/Web"]}},
            "organization.exclude_ous[0]: expected an OU id (ou-...) or a path starting with"
            " 'Root/', got 'Prod/Web'",
        ),
        (
            {"organization": {"include_states": None}},
            "organization.include_states: expected at least one account state; empty would scan"
            " nothing",
        ),
        (
            {"organization": {"include_states": "ACTIVE"}},
            "organization.include_states: expected a list, got 'ACTIVE'",
        ),
        (
            {"organization": {"bogus": 1, "include_suspended": True}},
            "organization.include_suspended: was replaced by organization.include_states",
        ),
        (
            {"organization": {"include_suspended": "yes", 5: 1}},
            "organization: keys must be strings, got int 5",
        ),
        (
            {"bogus": 1, "organization": {"include_suspended": True}},
            "bogus: unknown key; expected one of: organization, role, scan, exceptions, rules, "
            "controls,",
        ),
        ({"exceptions": [{**EXCEPTION, "user": None}]}, "exceptions[0].user: is required"),
        ({"exceptions": [None]}, "exceptions[0].account: is required"),
        (
            {"exceptions": [{**EXCEPTION, "ticket": None}]},
            "exceptions[0].ticket: expected a non-empty string, got null",
        ),
        (
            {"exceptions": [{**EXCEPTION, "owner": "  "}]},
            "exceptions[0].owner: expected a non-empty string, got '  '",
        ),
        (
            {"exceptions": [{**EXCEPTION, "account": 12345}]},
            "exceptions[0].account: expected a 12-digit account id in quotes, got 12345",
        ),
        (
            {"scan": {"call_timeout": 0}},
            "scan.call_timeout: expected seconds above 0 and at most 3600, got int 0",
        ),
        (
            {"organization": {"include_accounts": ["1"]}, "scan": {"strategy": "fast"}},
            "organization.include_accounts[0]: expected a 12-digit account id, got '1'",
        ),
        (
            {"role": {"name": None}},
            "role.name: expected an IAM role name (1-64 of A-Za-z0-9+=,.@_-), got null",
        ),
        (
            {"scan": {"adaptive_rate": "yes"}},
            "scan.adaptive_rate: expected true or false, got 'yes'",
        ),
        (
            {"controls": [{"framework": "X", "version": "1", "id": 800, "title": "t"}]},
            "controls[0].id: expected a quoted string, got int 800; quote it",
        ),
        (
            {
                "controls": [
                    {"framework": "X", "version": "1", "id": "8", "title": "t", "level": None}
                ]
            },
            "controls[0].level: expected a non-empty string, got null",
        ),
    ],
)
def test_bad_config_names_the_key(data, message):
    """Each of these would otherwise pass validation and fail, or hang, only mid-scan."""
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert str(raised.value).startswith(message)


def test_user_controls_replace_one_framework_version_and_add_others():
    cfg = parse_config(
        {
            "controls": [
                {"framework": "NIST SP 800-53", "version": "Rev. 5", "id": "IA-5(1)", "title": "t"},
                {"framework": "SOC 2", "version": "2017", "id": "CC6.1", "title": "Logical access"},
            ]
        }
    )
    nist = [c.id for c in cfg.controls if c.framework == "NIST SP 800-53"]
    # The entry (rule omitted: the one-active-key rule's) replaces that rule's NIST entries
    # only; the other rules keep theirs.
    assert [
        c.id for c in cfg.controls if c.framework == "NIST SP 800-53" and c.rule == MULTIPLE
    ] == ["IA-5(1)"]
    assert {"AC-6", "AC-2(3)"} <= set(nist)
    assert any(c.framework == "SOC 2" for c in cfg.controls)
    assert any(c.framework.startswith("CIS") for c in cfg.controls)


def test_digest_of_the_same_settings_never_changes():
    """findings.json records the digest and --resume compares it: a rewrite of the parser must
    not move it. These are the digests of the settings since the four rules (their thresholds
    and every rule's control mappings are settings: a run resumed under other rules is refused)."""
    assert parse_config(None).digest() == (
        "sha256:22e58a7c70ac5ee2719b7a1b53432cc1b72c870ec2c631a12355e4998a615861"
    )
    assert load_config(ROOT / "config.example.yaml").digest() == (
        "sha256:28689a89739067627733ff9d10e079b661a3a0bcc36dac6c0e0f29323840481d"
    )


def test_config_is_frozen_hashable_dataclasses_with_tuples():
    cfg = load_config(ROOT / "config.example.yaml")
    assert hash(cfg) == hash(load_config(ROOT / "config.example.yaml"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.scan.max_attempts = 3  # type: ignore[misc]
    changed = dataclasses.replace(cfg.scan, strategy="credential-report")
    assert (changed.strategy, changed.max_attempts) == ("credential-report", 8)
    assert type(cfg.organization.include_accounts) is tuple
    assert type(cfg.exceptions[0]) is ApprovedException
    assert all(type(c) is Control for c in cfg.controls)
    assert (cfg.scan.management_rate_limit, type(cfg.scan.management_rate_limit)) == (20.0, float)


def test_digest_changes_with_the_settings():
    assert parse_config({}).digest() == parse_config({}).digest()
    assert parse_config({}).digest() != parse_config({"scan": {"max_attempts": 3}}).digest()
    # Left out: it only paces calls, and runs from before the key keep their digest.
    fixed = parse_config({"scan": {"adaptive_rate": False}}).digest()
    assert parse_config({"scan": {"adaptive_rate": True}}).digest() == parse_config({}).digest()
    assert fixed == parse_config({}).digest()


@pytest.mark.parametrize("command", [["validate-config"], ["scan", "--output", "out", "--config"]])
def test_cli_reports_config_errors_with_exit_2_and_no_traceback(tmp_path, command):
    path = tmp_path / "c.yaml"
    path.write_text("scan:\n  strategy: fast\n")
    result = CliRunner().invoke(app, [*command, str(path)])
    assert result.exit_code == 2
    assert "scan.strategy: expected 'live' or 'credential-report', got 'fast'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        ("true", "write include_states: [ACTIVE, PENDING_CLOSURE, SUSPENDED] instead"),
        ("false", "write include_states: [ACTIVE] to skip them as before"),
    ],
)
def test_the_retired_include_suspended_exits_2_naming_include_states(tmp_path, value, fix):
    # Its meaning changed (Status retired; closing accounts now scanned): never translated.
    path = tmp_path / "old.yaml"
    path.write_text(f"organization:\n  include_suspended: {value}\n")
    result = CliRunner().invoke(app, ["validate-config", str(path)])
    assert result.exit_code == 2
    assert (
        "organization.include_suspended: was replaced by organization.include_states, the list "
        "of account states to scan" in result.output
    )
    assert fix in result.output


def test_a_key_given_twice_is_refused_not_silently_overridden(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("scan:\n  strategy: live\nscan:\n  max_attempts: 2\n")
    result = CliRunner().invoke(app, ["validate-config", str(path)])
    assert result.exit_code == 2
    assert "line 3, column 1: duplicate key 'scan'" in result.output


def test_cli_reports_yaml_syntax_and_missing_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("scan:\n  strategy: [live\n")
    result = CliRunner().invoke(app, ["validate-config", str(broken)])
    assert result.exit_code == 2
    assert "not valid YAML at line 3" in result.output
    missing = CliRunner().invoke(app, ["validate-config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert "cannot read the file" in missing.output


def test_validate_config_accepts_the_example():
    result = CliRunner().invoke(app, ["validate-config", str(ROOT / "config.example.yaml")])
    assert result.exit_code == 0
    assert "valid (live strategy, role OrgScanAudit, 1 exception(s))" in result.output


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.dates(),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=20), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
)
known_keys = st.sampled_from(
    [
        "organization",
        "role",
        "scan",
        "exceptions",
        "controls",
        "include_accounts",
        "strategy",
        "management_account",
        "expires",
        "owner",
        "account",
        "user",
        "name",
        "max_attempts",
    ]
)
config_like = st.dictionaries(
    known_keys,
    st.one_of(
        yaml_values,
        st.dictionaries(known_keys, yaml_values, max_size=4),
        st.lists(st.dictionaries(known_keys, yaml_values, max_size=6), max_size=3),
    ),
    max_size=5,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(yaml_values, config_like))
def test_any_document_is_a_config_or_a_clean_config_error(data):
    try:
        parse_config(data)
    except ConfigError as exc:
        assert str(exc)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_file_text_loads_or_fails_cleanly_through_the_cli(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("h") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate-config", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4))
def test_ou_paths_escape_slashes_and_backslashes_both_ways(names):
    path = join_ou_path(names)
    assert split_ou_path(path) == tuple(names)


@pytest.mark.parametrize(
    ("ref", "valid"),
    [
        (r"Root/Legacy\/Old", True),
        (r"Root/Back\\slash", True),
        (r"Root/Trailing\/", True),  # an OU named "Trailing/"
        (r"Root/Bad\x", False),
        ("Root/Dangling\\", False),
        ("Root//Empty", False),
        ("Root/", False),
    ],
)
def test_ou_path_filters_take_escaped_names(ref, valid):
    if valid:
        assert parse_config({"organization": {"include_ous": [ref]}}).organization.include_ous == (
            ref,
        )
    else:
        with pytest.raises(ConfigError, match=r"organization\.include_ous\[0\]: expected an OU"):
            parse_config({"organization": {"include_ous": [ref]}})
