"""controls.yaml as plain data: every entry names its rule and its source, and the CIS numbers are
the ones checked against the public sources (a typo in the data fails here)."""

from __future__ import annotations

from collections import Counter
from importlib import resources
from typing import Any

import pytest
import yaml

CIS = "CIS AWS Foundations Benchmark"
NIST_FRAMEWORKS = {
    ("NIST SP 800-53", "Rev. 5"),
    ("NIST Cybersecurity Framework", "2.0"),
    ("NIST Cybersecurity Framework", "1.1"),
}
VERSIONS = ("1.4.0", "1.5.0", "2.0.0", "3.0.0", "4.0.1", "5.0.0", "6.0.0", "7.0.0")
MULTIPLE = "iam-user-multiple-active-access-keys"
ROTATION = "iam-access-key-not-rotated"
UNUSED = "iam-access-key-unused"
ROOT = "root-access-key-present"

# The table, per rule and CIS version. None: the version has no equivalent control.
CIS_IDS: dict[str, tuple[str | None, ...]] = {
    MULTIPLE: ("1.13", "1.13", "1.13", "1.13", "1.13", "1.12", "2.12", None),
    ROTATION: ("1.14", "1.14", "1.14", "1.14", "1.14", "1.13", "2.13", "2.12"),
    UNUSED: ("1.12", "1.12", "1.12", "1.12", "1.12", "1.11", "2.11", "2.11"),
    ROOT: ("1.4", "1.4", "1.4", "1.4", "1.4", "1.3", "2.3", "2.4"),
}


def _entries() -> list[dict[str, Any]]:
    text = resources.files("orgscan").joinpath("controls.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert set(data) == {"controls"}
    entries = data["controls"]
    assert isinstance(entries, list)
    return entries


def test_every_entry_names_its_rule_control_and_source():
    for entry in _entries():
        for key in ("rule", "framework", "version", "id", "title", "source"):
            assert isinstance(entry.get(key), str) and entry[key].strip(), (key, entry)


def test_the_rules_are_exactly_the_four():
    assert {entry["rule"] for entry in _entries()} == set(CIS_IDS)


def test_cis_entries_are_of_the_eight_versions_and_give_their_level():
    for entry in _entries():
        if entry["framework"] == CIS:
            assert entry["version"] in VERSIONS, entry
            assert entry["level"] == "Level 1 (automated)", entry


def test_cis_sources_name_prowlers_file_and_a_second_source():
    for entry in _entries():
        if entry["framework"] == CIS:
            # Prowler names its files by major.minor: cis_4.0_aws.json holds v4.0.1.
            prowler = f"prowler/compliance/aws/cis_{entry['version'].rsplit('.', 1)[0]}_aws.json"
            assert prowler in entry["source"], entry
            assert any(s in entry["source"] for s in ("Steampipe", "Tenable", "Cloudaware")), entry


def test_ours_mappings_carry_a_rationale():
    for entry in _entries():
        if entry["framework"] != CIS:
            assert (entry["framework"], entry["version"]) in NIST_FRAMEWORKS, entry
            assert isinstance(entry.get("rationale"), str) and entry["rationale"].strip(), entry


def test_no_entry_is_written_twice():
    keys = Counter((e["rule"], e["framework"], e["version"], e["id"]) for e in _entries())
    assert [key for key, n in keys.items() if n > 1] == []


def test_cis_v7_has_no_one_active_key_control():
    assert not [
        e
        for e in _entries()
        if e["rule"] == MULTIPLE and e["framework"] == CIS and e["version"] == "7.0.0"
    ]


@pytest.mark.parametrize("rule", sorted(CIS_IDS))
def test_cis_numbers_per_version_are_the_checked_ones(rule: str):
    expected = {version: cid for version, cid in zip(VERSIONS, CIS_IDS[rule], strict=True) if cid}
    found: dict[str, list[str]] = {}
    for entry in _entries():
        if entry["rule"] == rule and entry["framework"] == CIS:
            found.setdefault(entry["version"], []).append(entry["id"])
    assert found == {version: [cid] for version, cid in expected.items()}


@pytest.mark.parametrize("rule", sorted(CIS_IDS))
def test_every_rule_maps_to_each_nist_framework(rule: str):
    frameworks = {
        (e["framework"], e["version"])
        for e in _entries()
        if e["rule"] == rule and e["framework"] != CIS
    }
    assert frameworks == NIST_FRAMEWORKS


def test_titles_follow_the_wording_of_their_version():
    # v4.0.1 reworded two titles; the older wording must not leak into the newer versions.
    titles = {(e["rule"], e["version"]): e["title"] for e in _entries() if e["framework"] == CIS}
    for version in VERSIONS[:4]:
        assert (
            titles[(MULTIPLE, version)]
            == "Ensure there is only one active access key available for any single IAM user"
        )
        assert (
            titles[(UNUSED, version)]
            == "Ensure credentials unused for 45 days or greater are disabled"
        )
    for version in VERSIONS[4:]:
        if version != "7.0.0":
            assert (
                titles[(MULTIPLE, version)]
                == "Ensure there is only one active access key for any single IAM user"
            )
        assert (
            titles[(UNUSED, version)]
            == "Ensure credentials unused for 45 days or more are disabled"
        )
    for version in VERSIONS:
        assert titles[(ROTATION, version)] == "Ensure access keys are rotated every 90 days or less"
        assert titles[(ROOT, version)] == "Ensure no 'root' user account access key exists"
