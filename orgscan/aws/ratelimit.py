"""The per-account rate limit and call counter, charged for every HTTP attempt.

With `adaptive`, the rate adapts: the configured rate is where it starts and its ceiling, a
throttle cuts it, and calls that succeed bring it back (see `RateLimiter.throttled`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from asyncio_throttle import Throttler


class RateLimiter(Throttler):  # type: ignore[misc]
    """A token bucket like AWS's own (a burst of one second's calls, then the rate), in which
    each caller reserves its own slot and sleeps once, until exactly then.

    asyncio-throttle's `acquire` polls every 10 ms per waiter; waking all waiters whenever a
    slot frees is no better, since all but one go back to sleep. Here the bucket may run into
    debt: a caller takes a token, and if none was there it waits for its turn in the refill.
    Callers are served in arrival order, and nothing wakes without a slot. A cancelled caller's
    token stays spent, which errs on the safe side of the limit.

    Two things can still make calls reach AWS closer together than planned:
    - A busy event loop wakes sleepers late, and all the late ones at once. So a caller that
      wakes is also checked against a second bucket charged when calls are really sent; if
      late predecessors used its token, it waits again for the shortfall (rarely, and briefly).
    - Calls take different times to reach AWS. Holding back `JITTER` seconds' worth of the
      burst keeps the calls that arrive in any interval within what AWS admits, for
      differences up to `JITTER`.
    """

    JITTER = 0.2  # seconds
    REFILL = 0.995  # of the rate, against rounding at the bucket's edge
    # The adaptive rate, as botocore's adaptive retry mode does it (CUBIC, RFC 8312): a
    # throttle multiplies the rate by BETA; then it grows back along SCALE * (t - K)^3 + the
    # rate it was throttled at, the configured rate being the ceiling.
    BETA = 0.7
    SCALE = 0.4
    FLOOR = 0.5  # calls/s: botocore's lowest fill rate
    # A throttle answers a call sent up to about a second before (AWS's bucket holds a second's
    # calls; the call's latency on top): the throttles of calls sent at the old rate cut once.
    SETTLE = 1.0  # seconds

    def __init__(
        self,
        rate_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        adaptive: bool = False,
    ) -> None:
        # asyncio-throttle's terms, for anyone who reads them: `rate_limit` calls per `period`.
        calls = max(1, int(rate_per_second))
        super().__init__(rate_limit=calls, period=calls / rate_per_second)
        self.clock = clock
        self.ceiling = rate_per_second
        self.adaptive = adaptive
        self.throttles = 0  # throttles met, all of them (the rate is cut at most once a SETTLE)
        # When a caller last woke more than JITTER late: the event loop was busy, and the calls
        # it then sent together may have been throttled for that alone.
        self._late_at: float | None = None
        self._throttled_at: float | None = None  # None: at the ceiling, nothing to recover
        self._throttled_rate = rate_per_second
        self._recovery = 0.0  # CUBIC's K: seconds from a cut back to the throttled rate
        now = clock()
        self._configure(rate_per_second)
        self._planned, self._planned_at = self.capacity, now  # tokens, as of when
        self._sent, self._sent_at = self.capacity, now

    def _configure(self, rate_per_second: float) -> None:
        self.target = rate_per_second  # the rate AWS should see, calls/s
        # AWS's bucket: `burst` calls, refilled at the rate. Ours holds JITTER seconds' worth
        # fewer. Where that would leave less than one call, ours refills more slowly instead,
        # so that two calls sent back to back still arrive a full 1/rate apart.
        burst = max(1.0, rate_per_second)
        self.capacity = max(1.0, burst - rate_per_second * self.JITTER)
        slowest = (burst + 1 - self.capacity) / (1 / rate_per_second + self.JITTER)
        self.rate = min(rate_per_second, slowest) * self.REFILL

    def throttled(self) -> None:
        """AWS throttled a call: cut the rate, unless it was cut less than SETTLE ago, or the
        event loop was late within SETTLE. A late loop sends the calls it held back together,
        and AWS throttles that bunch even where nobody else shares the limit; cutting the rate
        for it slowed the largest accounts (the ones that run longest) on a busy machine, while
        the bucket's own `take` already spaces the calls that follow."""
        self.throttles += 1
        if not self.adaptive:
            return
        now = self.clock()
        if self._throttled_at is not None and now - self._throttled_at < self.SETTLE:
            return
        if self._late_at is not None and now - self._late_at < self.SETTLE:
            return
        # Throttled again below the last throttled rate: others took more of the bucket, so
        # aim lower (CUBIC's fast convergence).
        fast = self._throttled_at is not None and self.target < self._throttled_rate
        self._throttled_rate = self.target * (1 + self.BETA) / 2 if fast else self.target
        self._throttled_at = now
        self._recovery = (self._throttled_rate * (1 - self.BETA) / self.SCALE) ** (1 / 3)
        self._configure(min(self.target, max(self.FLOOR, self.target * self.BETA)))

    def succeeded(self) -> None:
        """A call went through: while below the ceiling, grow the rate back."""
        if self._throttled_at is None:  # at the ceiling, and always when not adaptive
            return
        since = self.clock() - self._throttled_at
        if since < self.SETTLE:
            return
        rate = self.SCALE * (since - self._recovery) ** 3 + self._throttled_rate
        if rate >= self.ceiling:
            self._throttled_at = None
            self._configure(self.ceiling)
        elif rate > self.target * 1.01:  # reconfigured in steps, not on every call
            self._configure(rate)

    def reserve(self, now: float) -> float:
        """Plan a call at time `now` (monotonic seconds): the seconds until its slot."""
        tokens = min(self.capacity, self._planned + (now - self._planned_at) * self.rate) - 1.0
        self._planned, self._planned_at = tokens, now
        return max(0.0, -tokens / self.rate)

    def take(self, now: float) -> float:
        """Send a call at time `now` if the calls really sent leave a token: 0.0, the token
        taken. Otherwise the seconds until one is there (nothing taken)."""
        tokens = min(self.capacity, self._sent + (now - self._sent_at) * self.rate)
        if tokens >= 1.0:
            self._sent, self._sent_at = tokens - 1.0, now
            return 0.0
        self._sent, self._sent_at = tokens, now
        return (1.0 - tokens) / self.rate

    def woke(self, due: float, now: float) -> None:
        """A caller due at `due` woke at `now`: note a loop later than JITTER."""
        if now - due > self.JITTER:
            self._late_at = now

    async def acquire(self, *, ahead: bool = False) -> None:
        """Wait for this call's slot. `ahead`: go before the callers already waiting, at the
        next token really free; it is charged all the same, so the rate AWS sees stays as is,
        and one waiting caller finds its token gone and waits one slot more."""
        now = self.clock()
        wait = self.reserve(now)
        if ahead:
            wait = 0.0
        if wait > 0:
            await asyncio.sleep(wait)
            if self.adaptive:
                self.woke(now + wait, self.clock())
        while (wait := self.take(self.clock())) > 0:
            await asyncio.sleep(wait)


class Ahead:
    """A limiter's bucket, for calls that go before those waiting in it: the OU walk shares
    the STS/Organizations limit with every AssumeRole, and an account whose role is assumed
    early (a hint's largest) can start its IAM calls only once the walk has listed it."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def acquire(self) -> None:
        await self.limiter.acquire(ahead=True)

    def throttled(self) -> None:
        self.limiter.throttled()

    def succeeded(self) -> None:
        self.limiter.succeeded()


Limiter = RateLimiter | Ahead


@dataclass(slots=True)
class CallCounter:
    calls: int = 0
