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
        assert gc.get_freeze_count() > 0
        survivor = [[] for _ in range(10)]  # lists are tracked by the collector

        def tracked() -> bool:  # frozen objects are not among the collector's generations
            return any(o is survivor for o in gc.get_objects())

        assert tracked()
        for _ in range(100):  # the survivors are frozen too, at the next tick
            await asyncio.sleep(0.02)
            if not tracked():
                break
        assert not tracked()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert survivor
