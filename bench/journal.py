"""The remediation journal's cost: `python -m bench.journal [DIR]` from the repository root.

Writes 2,000 entries through the journal apply and rollback use (append-only JSON Lines, one
fsync per entry, on a thread of its own), from 64 accounts' tasks at once as an apply runs
them, and meanwhile measures how late the event loop wakes a task that sleeps 1 ms: if the
disk blocked the loop, that lag would be the fsync time. DIR defaults to a temporary
directory; pass one on the disk a real journal would be written to.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from orgscan.model import utcnow
from orgscan.remediation.apply import Entry, Journal, JournalFile, Outcome, _header, _Recorder

ENTRIES = 2000
ACCOUNTS = 64


async def ticker(lags: list[float], done: asyncio.Event) -> None:
    while not done.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - start - 0.001)


async def write(directory: Path) -> tuple[float, list[float]]:
    path = directory / "bench-journal.jsonl"
    path.unlink(missing_ok=True)
    journal = Journal("apply", "bench", "o-abc123defg", utcnow())
    record = _Recorder(journal, JournalFile.create(path, _header(journal)))
    lags: list[float] = []
    done = asyncio.Event()
    tick = asyncio.create_task(ticker(lags, done))

    async def account(index: int) -> None:
        for n in range(index, ENTRIES, ACCOUNTS):
            await record(
                Entry(
                    f"{index:012d}",
                    f"user-{n}",
                    f"arn:aws:iam::{index:012d}:user/user-{n}",
                    f"AKIA{n:016d}",
                    Outcome.PENDING if n % 2 else Outcome.DEACTIVATED,
                    "Inactive sent",
                )
            )

    start = time.perf_counter()
    await asyncio.gather(*(account(i) for i in range(ACCOUNTS)))
    elapsed = time.perf_counter() - start
    done.set()
    await tick
    record.finish([])
    lines = len(path.read_bytes().splitlines())
    assert lines == ENTRIES + 2, lines
    path.unlink()
    return elapsed, lags


def main() -> None:
    with tempfile.TemporaryDirectory() as default:
        directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(default)
        elapsed, lags = asyncio.run(write(directory))
    lags.sort()
    print(
        f"{ENTRIES} journal entries from {ACCOUNTS} tasks in {directory}: {elapsed:.2f} s "
        f"({elapsed / ENTRIES * 1000:.2f} ms each, one fsync per entry)\n"
        f"event loop, a 1 ms sleep woke late by: median {lags[len(lags) // 2] * 1000:.2f} ms, "
        f"p99 {lags[int(len(lags) * 0.99)] * 1000:.2f} ms, max {lags[-1] * 1000:.2f} ms "
        f"({len(lags)} wake-ups)"
    )


if __name__ == "__main__":
    main()
