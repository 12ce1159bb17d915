"""Shard runs merged into one sweep, without AWS: the owning shard's record wins."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from orgscan.accounts import Shard
from orgscan.merge import MergeError, merge
from orgscan.model import ScanStatus, sweep_complete
from tests.report_fixtures import scan_result


def _shard(index: int, count: int, **kwargs):
    """The fixture's run as shard `index`: the accounts it does not own skipped as a shard
    run records them."""
    result = scan_result(run_id=f"20250314T093000Z-0000000{index}", complete=True, **kwargs)
    accounts = [
        a
        if Shard.owner(a.account.id, count) == index
        else replace(a, scan_status=ScanStatus.SKIPPED, users=[], error=None, skip_reason="x")
        for a in result.accounts
    ]
    owned = {a.account.id for a in accounts if a.scan_status is not ScanStatus.SKIPPED}
    findings = [f for f in result.findings if f.account_id in owned]
    run = replace(result.run, shard=f"{index}/{count}")
    return replace(result, run=run, accounts=accounts, findings=findings)


def test_the_shards_together_are_the_whole_sweep():
    whole = scan_result(complete=True)
    merged = merge([_shard(1, 2), _shard(2, 2)])
    assert [a.account.id for a in merged.accounts] == [a.account.id for a in whole.accounts]
    assert {f.arn for f in merged.findings} == {f.arn for f in whole.findings}
    assert merged.run.id not in (whole.run.id,)
    assert merged.run.complete == sweep_complete(merged.accounts, merged.run.errors)


def test_a_missing_shard_makes_the_sweep_incomplete():
    merged = merge([_shard(1, 2)])
    assert [e.code for e in merged.run.errors] == ["ShardMissing"]
    assert merged.run.complete is False


def test_runs_that_are_not_shards_of_one_sweep_are_refused():
    with pytest.raises(MergeError, match="not a shard"):
        merge([scan_result()])
    with pytest.raises(MergeError, match="given twice"):
        merge([_shard(1, 2), _shard(1, 2)])
    late = _shard(2, 2)
    month = timedelta(days=30)
    assert late.run.finished_at is not None
    late.run = replace(
        late.run,
        started_at=late.run.started_at + month,
        finished_at=late.run.finished_at + month,
    )
    with pytest.raises(MergeError, match="apart"):
        merge([_shard(1, 2), late])
