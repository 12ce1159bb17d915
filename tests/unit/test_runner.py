"""The process around a run: the collector's tuning is undone after it."""

from __future__ import annotations

import asyncio
import gc

from orgscan.runner import YOUNG_COLLECTION, frozen_gc


async def test_the_collector_is_restored_after_a_run(monkeypatch):
    monkeypatch.setattr("orgscan.runner.FREEZE_EVERY", 0.01)
    before = gc.get_threshold()
    gc.unfreeze()
    async with frozen_gc():
        assert gc.get_threshold()[0] >= YOUNG_COLLECTION
        frozen = gc.get_freeze_count()
        assert frozen > 0
        survivor = [object() for _ in range(1000)]
        await asyncio.sleep(0.05)  # the survivors are frozen too
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert survivor
