"""The delta per rule: matched by rule and resource, resolved only where the rule could judge
the finding again, and printed per rule."""

from __future__ import annotations

from dataclasses import replace

from orgscan.delta import compare
from orgscan.model import (
    AccessKey,
    AccountResult,
    Change,
    FindingChange,
    RootKeys,
    RuleSettings,
    ScanError,
    UserKeys,
)
from orgscan.reports.summary import delta_text
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, UNUSED
from tests.report_fixtures import (
    ALL_RULES,
    CAROL_OLDER,
    MGMT,
    STARTED,
    hygiene_result,
    rescanned,
    scan_result,
)

LATER = "20250614T093000Z-2b3c4d5e"
ROOT_ARN = f"arn:aws:iam::{MGMT}:root"


def change_of(changes: list[FindingChange], rule_id: str, resource_id: str) -> FindingChange:
    (found,) = [c for c in changes if (c.rule_id, c.resource_id) == (rule_id, resource_id)]
    return found


def used_now(_: UserKeys, key: AccessKey) -> AccessKey:
    """Every active key used the day of the scan: no unused finding is left."""
    return replace(key, last_used_at=STARTED, last_used_service="s3") if key.active else key


def test_a_one_rule_baseline_makes_the_new_rules_findings_new_and_resolves_none_of_them():
    baseline = scan_result(complete=True)  # what a 2.0 findings.json reads as
    current = rescanned(baseline, LATER, rules=ALL_RULES)
    delta = compare(baseline, current)
    new_rules = {NOT_ROTATED, UNUSED, ROOT_KEY}
    assert {c.rule_id for c in delta.of(Change.NEW)} == new_rules
    assert all(c.rule_id == MULTIPLE_ACTIVE_KEYS for c in delta.of(Change.UNCHANGED))
    assert not delta.of(Change.RESOLVED) and not delta.of(Change.UNVERIFIED)
    assert change_of(delta.findings, ROOT_KEY, ROOT_ARN).change is Change.NEW


def test_a_rule_left_out_this_time_leaves_its_findings_unverified():
    baseline = hygiene_result(complete=True)
    current = rescanned(baseline, LATER, rules=[RuleSettings(MULTIPLE_ACTIVE_KEYS)])
    delta = compare(baseline, current)
    gone = [c for c in delta.findings if c.rule_id != MULTIPLE_ACTIVE_KEYS]
    assert gone and {c.change for c in gone} == {Change.UNVERIFIED}
    assert {c.reason for c in gone} == {"its rule was not evaluated this time"}


def test_an_unused_key_used_since_is_resolved_though_another_key_of_its_account_is_unread():
    baseline = hygiene_result(complete=True)
    carol_newer_unread = ScanError("AccessDenied", "denied")

    def keys(user: UserKeys, key: AccessKey) -> AccessKey:
        if user.user_name == "carol" and key.id != CAROL_OLDER:
            return replace(key, last_used_error=carol_newer_unread)
        return used_now(user, key)

    delta = compare(baseline, rescanned(baseline, LATER, keys))
    # The rule is incomplete in carol's account, but what it says of her older key is read.
    assert change_of(delta.findings, UNUSED, CAROL_OLDER).change is Change.RESOLVED


def test_an_unused_key_whose_last_use_is_unread_now_is_unverified_saying_so():
    baseline = hygiene_result(complete=True)

    def keys(user: UserKeys, key: AccessKey) -> AccessKey:
        if key.id == CAROL_OLDER:
            return replace(key, last_used_source=None, last_used_as_of=None)
        return used_now(user, key)

    change = change_of(
        compare(baseline, rescanned(baseline, LATER, keys)).findings, UNUSED, CAROL_OLDER
    )
    assert change.change is Change.UNVERIFIED
    assert change.reason == "the key's last use could not be read this time"


def test_a_root_key_finding_is_unverified_when_the_root_keys_are_unknown_and_resolved_when_gone():
    baseline = hygiene_result(complete=True)

    def root(known: bool):
        def edit(account: AccountResult) -> AccountResult:
            if account.account.id != MGMT:
                return account
            error = ScanError("AccessDenied", "no GetAccountSummary")
            keys = (
                RootKeys(None, None, None, None, error)
                if not known
                else RootKeys(account.root_keys.source, account.root_keys.as_of, False, 0)
            )
            return replace(account, root_keys=keys)

        return edit

    unknown = compare(baseline, rescanned(baseline, LATER, accounts=root(False)))
    change = change_of(unknown.findings, ROOT_KEY, ROOT_ARN)
    assert change.change is Change.UNVERIFIED
    assert change.reason == "the root user's access keys could not be read this time (AccessDenied)"
    removed = compare(baseline, rescanned(baseline, LATER, accounts=root(True)))
    assert change_of(removed.findings, ROOT_KEY, ROOT_ARN).change is Change.RESOLVED


def test_findings_gone_because_a_threshold_was_raised_are_unverified_not_resolved():
    baseline = hygiene_result(complete=True)
    looser = [
        RuleSettings(r.id, {"max_unused_days": 1000}) if r.id == UNUSED else r for r in ALL_RULES
    ]
    delta = compare(baseline, rescanned(baseline, LATER, rules=looser))
    gone = [c for c in delta.findings if c.rule_id == UNUSED]
    assert gone and {c.change for c in gone} == {Change.UNVERIFIED}
    assert {c.reason for c in gone} == {
        "its rule's thresholds changed since the baseline (max_unused_days 45 → 1000)"
    }
    # The other rules, judged as before, are unchanged.
    assert {c.change for c in delta.findings if c.rule_id != UNUSED} == {Change.UNCHANGED}


def test_the_printed_delta_counts_each_rule_and_names_each_change_by_rule_and_resource():
    baseline = hygiene_result(complete=True)
    current = rescanned(baseline, LATER, used_now)
    text = delta_text(compare(baseline, current), current)
    lines = text.splitlines()
    assert lines[0].endswith(": 0 new, 10 unchanged, 3 resolved, 0 unverified")
    assert lines[1:5] == [
        "  iam-user-multiple-active-access-keys: 0 new, 4 unchanged, 0 resolved, 0 unverified",
        "  iam-access-key-not-rotated:           0 new, 5 unchanged, 0 resolved, 0 unverified",
        "  iam-access-key-unused:                0 new, 0 unchanged, 3 resolved, 0 unverified",
        "  root-access-key-present:              0 new, 1 unchanged, 0 resolved, 0 unverified",
    ]
    assert (
        '  resolved   333333333333 ("><script>alert(1)</script>) iam-access-key-unused '
        f"arn:aws:iam::333333333333:user/engineering/carol key {CAROL_OLDER}"
    ) in lines
