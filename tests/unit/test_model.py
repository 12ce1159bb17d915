"""The result model: what it derives from its inputs."""

from __future__ import annotations

from orgscan.config import ScanConfig
from orgscan.model import Limits


def test_limits_are_read_from_the_scan_section_by_name():
    scan = ScanConfig(max_attempts=3, call_timeout=17.0, account_rate_limit=5.0)
    limits = Limits.of(scan)
    assert (limits.max_attempts, limits.call_timeout, limits.account_rate_limit) == (3, 17.0, 5.0)
    assert limits.max_accounts_in_flight == scan.max_accounts_in_flight
