"""Each rule's boundary, on evidence built by hand: what fails, what passes, what is unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orgscan.checks import Scanned
from orgscan.evaluate import evaluate, evaluate_account
from orgscan.model import (
    AccessKey,
    Account,
    AccountResult,
    ApprovedException,
    Coverage,
    FindingState,
    LastUseSource,
    ResourceType,
    RootKeys,
    RootKeySource,
    RuleSettings,
    ScanError,
    ScanStatus,
    UserKeys,
)
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, NOT_ROTATED, ROOT_KEY, UNUSED

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCANNED = Scanned(NOW, "aws")
ACCOUNT = "111111111111"
ALL = [
    RuleSettings(MULTIPLE_ACTIVE_KEYS),
    RuleSettings(NOT_ROTATED, {"max_age_days": 90}),
    RuleSettings(UNUSED, {"max_unused_days": 45}),
    RuleSettings(ROOT_KEY),
]
NO_ROOT_KEY = RootKeys(RootKeySource.CREDENTIAL_REPORT, NOW, False, 0)


def key(
    key_id: str,
    age: timedelta,
    used: timedelta | None = None,
    status: str = "Active",
    source: LastUseSource | None = LastUseSource.CREDENTIAL_REPORT,
) -> AccessKey:
    return AccessKey(
        key_id,
        status,
        NOW - age,
        last_used_at=None if used is None else NOW - used,
        last_used_source=source,
        last_used_as_of=NOW if source else None,
    )


def user(name: str, *keys: AccessKey, error: ScanError | None = None) -> UserKeys:
    arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    return UserKeys(ACCOUNT, name, arn, "/", keys, error=error)


def account(*users: UserKeys, root: RootKeys | None = NO_ROOT_KEY) -> AccountResult:
    return AccountResult(
        Account(ACCOUNT, "a", "a@example.com", "ACTIVE", "Root"),
        ScanStatus.SCANNED,
        users=list(users),
        scanned_at=NOW,
        root_keys=root,
    )


def judged(result: AccountResult, rules=ALL, exceptions=()):
    findings, coverage = evaluate_account(result, rules, list(exceptions), SCANNED)
    return findings, {c.rule_id: c for c in coverage}


def ids(findings, rule_id):
    return sorted(f.resource_id for f in findings if f.rule_id == rule_id)


DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def test_rotation_boundary_is_max_age_whole_days():
    findings, _ = judged(
        account(
            user("a", key("AKIAEXACT", 90 * DAY, used=DAY)),
            # 90 whole days and some hours: still 90 days old, as CIS's audit counts days
            user("b", key("AKIAALMOST", 91 * DAY - SECOND, used=DAY)),
            user("c", key("AKIAOVER", 91 * DAY, used=DAY)),
            user("d", key("AKIAOLDOFF", 400 * DAY, used=DAY, status="Inactive")),
        )
    )
    assert ids(findings, NOT_ROTATED) == ["AKIAOVER"]
    (finding,) = [f for f in findings if f.rule_id == NOT_ROTATED]
    assert finding.resource_type is ResourceType.ACCESS_KEY
    assert finding.access_key_id == "AKIAOVER"
    # The detail agrees with the verdict: more days than the limit.
    assert "91 days before the scan (limit 90)" in finding.detail


def test_unused_boundary_is_max_unused_whole_days_and_counts_never_used_keys_by_age():
    findings, coverage = judged(
        account(
            user("a", key("AKIAUSED45", 10 * DAY, used=46 * DAY - SECOND)),
            user("b", key("AKIAUSED46", 10 * DAY, used=46 * DAY)),
            user("c", key("AKIANEVER45", 46 * DAY - SECOND)),
            user("d", key("AKIANEVER46", 46 * DAY)),
            user("e", key("AKIAOFF", 300 * DAY, status="Inactive")),
        )
    )
    assert ids(findings, UNUSED) == ["AKIANEVER46", "AKIAUSED46"]
    never = next(f for f in findings if f.resource_id == "AKIANEVER46")
    assert "never used" in never.detail
    assert coverage[UNUSED].coverage is Coverage.COMPLETE


def test_a_key_whose_last_use_is_unknown_is_a_gap_never_a_pass():
    unknown = AccessKey(
        "AKIAUNKNOWN",
        "Active",
        NOW - DAY,
        last_used_error=ScanError("AccessDenied", "denied by an SCP"),
    )
    unread = key("AKIAUNREAD", DAY, source=None)
    findings, coverage = judged(account(user("a", unknown), user("b", unread)))
    assert ids(findings, UNUSED) == []
    assert coverage[UNUSED].coverage is Coverage.INCOMPLETE
    assert len(coverage[UNUSED].gaps) == 2
    assert "AccessDenied" in coverage[UNUSED].gaps[0]
    # The other rules judged everything they cover.
    assert coverage[NOT_ROTATED].coverage is Coverage.COMPLETE


def test_a_key_deleted_before_its_last_use_was_read_is_judged_by_no_key_rule():
    gone = AccessKey(
        "AKIAGONE",
        "Active",
        NOW - 400 * DAY,
        last_used_error=ScanError(
            "NoSuchEntity", "The Access Key with id AKIAGONE cannot be found"
        ),
    )
    findings, coverage = judged(account(user("a", gone, key("AKIAON", DAY, used=DAY))))
    assert [f.rule_id for f in findings] == [MULTIPLE_ACTIVE_KEYS]  # listed Active: counted
    assert coverage[UNUSED].coverage is Coverage.COMPLETE


def test_two_old_keys_give_two_rotation_findings_and_one_multiple_keys_finding():
    findings, _ = judged(
        account(
            user("bob", key("AKIAONE", 200 * DAY, used=DAY), key("AKIATWO", 100 * DAY, used=DAY))
        )
    )
    assert ids(findings, NOT_ROTATED) == ["AKIAONE", "AKIATWO"]
    assert ids(findings, MULTIPLE_ACTIVE_KEYS) == [f"arn:aws:iam::{ACCOUNT}:user/bob"]
    assert ids(findings, UNUSED) == []
    (multiple,) = [f for f in findings if f.rule_id == MULTIPLE_ACTIVE_KEYS]
    assert multiple.active_key_count == 2


def test_inactive_keys_never_count_for_any_rule():
    findings, _ = judged(
        account(
            user(
                "bob",
                key("AKIAON", DAY, used=DAY),
                key("AKIAOFF", 900 * DAY, status="Inactive"),
            )
        )
    )
    assert findings == []


@pytest.mark.parametrize(
    ("root", "active"),
    [
        (RootKeys(RootKeySource.CREDENTIAL_REPORT, NOW, True, 1), ", 1 of them active"),
        (RootKeys(RootKeySource.CREDENTIAL_REPORT, NOW, True, 0), ", 0 of them active"),
        (RootKeys(RootKeySource.ACCOUNT_SUMMARY, NOW, True, None), ""),
    ],
)
def test_a_root_key_fails_the_account_active_or_not(root, active):
    findings, _ = judged(account(root=root))
    (finding,) = findings
    assert finding.rule_id == ROOT_KEY
    assert finding.severity == "critical"
    assert finding.resource_type is ResourceType.ACCOUNT
    assert finding.resource_id == finding.arn == f"arn:aws:iam::{ACCOUNT}:root"
    assert finding.user_name == "<root_account>"
    assert finding.detail.endswith(f"access key{active} (source: {root.source})")


def test_root_keys_unknown_make_the_root_rule_incomplete_and_the_partition_is_the_runs():
    denied = RootKeys(None, None, None, None, ScanError("AccessDenied", "no"))
    findings, coverage = judged(account(root=denied))
    assert findings == []
    assert coverage[ROOT_KEY].coverage is Coverage.INCOMPLETE
    assert "AccessDenied" in coverage[ROOT_KEY].gaps[0]
    _, coverage = judged(account(root=None))
    assert coverage[ROOT_KEY].coverage is Coverage.INCOMPLETE
    gov = evaluate_account(
        account(root=RootKeys(RootKeySource.CREDENTIAL_REPORT, NOW, True, 1)),
        [RuleSettings(ROOT_KEY)],
        [],
        Scanned(NOW, "aws-us-gov"),
    )[0]
    assert gov[0].arn == f"arn:aws-us-gov:iam::{ACCOUNT}:root"


def test_unreadable_users_are_gaps_of_every_user_rule_and_accounts_not_scanned_are_judged_by_none():
    denied = user("x", error=ScanError("AccessDenied", "scp"))
    _, coverage = judged(account(denied))
    assert {r: c.coverage for r, c in coverage.items()} == {
        MULTIPLE_ACTIVE_KEYS: Coverage.INCOMPLETE,
        NOT_ROTATED: Coverage.INCOMPLETE,
        UNUSED: Coverage.INCOMPLETE,
        ROOT_KEY: Coverage.COMPLETE,
    }
    failed = account(user("a", key("AKIAOLD", 900 * DAY)))
    failed.scan_status = ScanStatus.FAILED
    findings, coverage = judged(failed)
    assert findings == []
    assert {c.coverage for c in coverage.values()} == {Coverage.NOT_SCANNED}


def test_only_the_rules_of_the_run_are_judged_with_its_thresholds():
    result = account(user("a", key("AKIAOLD", 40 * DAY, used=40 * DAY)))
    findings, coverage = judged(result, [RuleSettings(UNUSED, {"max_unused_days": 30})])
    assert ids(findings, UNUSED) == ["AKIAOLD"]
    assert list(coverage) == [UNUSED]


def test_exceptions_cover_the_rules_they_name_and_old_ones_the_one_active_key_rule():
    bob = user("bob", key("AKIAONE", 200 * DAY, used=DAY), key("AKIATWO", 100 * DAY, used=DAY))
    old = ApprovedException(ACCOUNT, "bob", "r", "o", NOW.date() + DAY)
    rotation = ApprovedException(ACCOUNT, "bob", "r", "o", NOW.date() + DAY, rules=(NOT_ROTATED,))
    findings, _ = judged(account(bob), exceptions=[old])
    states = {(f.rule_id, f.resource_id): f.state for f in findings}
    assert states[(MULTIPLE_ACTIVE_KEYS, bob.arn)] is FindingState.EXCEPTED
    assert states[(NOT_ROTATED, "AKIAONE")] is FindingState.OPEN
    findings, _ = judged(account(bob), exceptions=[rotation])
    states = {(f.rule_id, f.resource_id): f.state for f in findings}
    assert states[(MULTIPLE_ACTIVE_KEYS, bob.arn)] is FindingState.OPEN
    assert states[(NOT_ROTATED, "AKIATWO")] is FindingState.EXCEPTED


def test_a_root_finding_is_excepted_by_root_account_or_its_arn():
    root = RootKeys(RootKeySource.CREDENTIAL_REPORT, NOW, True, 1)
    for who in ("<root_account>", f"arn:aws:iam::{ACCOUNT}:root", "arn:aws:iam::*:root"):
        approval = ApprovedException(ACCOUNT, who, "r", "o", NOW.date(), rules=(ROOT_KEY,))
        (finding,) = judged(account(root=root), exceptions=[approval])[0]
        assert finding.state is FindingState.EXCEPTED, who


def test_evaluate_records_each_accounts_coverage_and_judges_at_its_scan_time():
    early = account(user("a", key("AKIAK", 90 * DAY, used=DAY)))
    early.scanned_at = NOW - DAY  # the key was 89 days old when this account was scanned
    late = account(user("a", key("AKIAK2", 90 * DAY, used=DAY)))
    late.account = Account("222222222222", "b", "b@example.com", "ACTIVE", "Root")
    late.scanned_at = None  # 1.0 evidence: judged at the run's start
    findings = evaluate([early, late], ALL, [], "aws", NOW + DAY)
    assert ids(findings, NOT_ROTATED) == ["AKIAK2"]
    assert {c.rule_id for c in early.coverage} == {r.id for r in ALL}
