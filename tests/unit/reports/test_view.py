"""Facts shared by the reports: the key to keep and the status of a control."""

from __future__ import annotations

from datetime import UTC, datetime

from orgscan.model import AccessKey, ScanResult, UserKeys
from orgscan.reports.view import ControlStatus, rule_status
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, recommended_key
from tests.report_fixtures import scan_result, without_open_findings


def _key(key_id: str, created: int, used: int | None = None, status: str = "Active") -> AccessKey:
    return AccessKey(
        id=key_id,
        status=status,
        created_at=datetime(2024, 1, created, tzinfo=UTC),
        last_used_at=datetime(2024, 6, used, tzinfo=UTC) if used else None,
    )


def _user(*keys: AccessKey) -> UserKeys:
    return UserKeys("1", "u", "arn:aws:iam::1:user/u", "/", keys)


def test_most_recently_used_wins_over_newer() -> None:
    keep = recommended_key(_user(_key("OLD", created=1, used=20), _key("NEW", created=9, used=5)))
    assert keep is not None and keep.key.id == "OLD"
    assert keep.reason == "most recently used"


def test_a_used_key_wins_over_a_never_used_newer_one() -> None:
    keep = recommended_key(_user(_key("USED", created=1, used=2), _key("FRESH", created=30)))
    assert keep is not None and keep.key.id == "USED"


def test_newest_when_none_was_used() -> None:
    keep = recommended_key(_user(_key("A", created=3), _key("B", created=7), _key("C", created=5)))
    assert keep is not None and keep.key.id == "B"
    assert keep.reason.startswith("newest")


def test_inactive_keys_are_never_recommended() -> None:
    keep = recommended_key(
        _user(_key("INACTIVE", created=9, used=30, status="Inactive"), _key("ACTIVE", created=1))
    )
    assert keep is not None and keep.key.id == "ACTIVE"
    assert recommended_key(_user(_key("X", created=1, status="Inactive"))) is None


def test_rule_status() -> None:
    def status(result: ScanResult) -> ControlStatus:
        return rule_status(result, MULTIPLE_ACTIVE_KEYS)

    assert status(scan_result()) is ControlStatus.FAIL
    assert status(scan_result(complete=True)) is ControlStatus.FAIL
    assert status(without_open_findings(scan_result())) is ControlStatus.INCOMPLETE
    assert status(without_open_findings(scan_result(complete=True))) is ControlStatus.PASS
    # Only excepted findings left: nothing open, so a complete scan passes.
    result = scan_result(complete=True)
    result.findings = [f for f in result.findings if f.exception]
    assert result.findings and status(result) is ControlStatus.PASS
