"""Running many calls at once, with errors that arrive as themselves and a bound on work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """A TaskGroup (siblings cancelled on the first error) that raises that error itself.

    The account's error code is read from the exception, so it must not arrive wrapped in an
    ExceptionGroup.
    """
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None


async def bounded_map(
    func: Callable[[T], Awaitable[R]], items: Sequence[T], workers: int
) -> list[R]:
    """func over items with at most `workers` in flight, results in input order.

    A fixed set of workers, not a task per item: an account with thousands of users must not
    hold thousands of pending coroutines.
    """
    results: list[R | None] = [None] * len(items)
    position = iter(range(len(items)))

    async def worker() -> None:
        for index in position:
            results[index] = await func(items[index])

    # A TaskGroup cancels the other workers when one fails: an account already recorded as
    # failed must not go on spending its rate limit, or overlap the retry of its account.
    async with task_group() as group:
        for _ in range(min(workers, len(items))):
            group.create_task(worker())
    return results  # type: ignore[return-value]
