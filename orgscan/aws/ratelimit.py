"""The per-account rate limit and call counter, charged for every HTTP attempt.

With `adaptive`, the rate adapts: the configured rate is where it starts and its ceiling, a
throttle cuts it, and calls that succeed bring it back (see `RateLimiter.throttled`)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
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
    # The adaptive rate. A throttle means AWS's bucket is empty: the calls it admitted since the
    # last time it was empty (or since the start, when it was full) tell the rate that is left
    # to us, and the rate drops to MARGIN of that at once (a fixed cut, x0.7 as botocore's
    # adaptive mode, left most crowded accounts above their share for seconds, each throttled
    # again and again). Then it grows back along CUBIC's curve (RFC 8312): up to that rate, flat
    # there, then faster, the configured rate being the ceiling.
    MARGIN = 0.9
    SCALE = 0.1  # CUBIC's C, calls/s per s^3: botocore's 0.4 overshot within two seconds
    FLOOR = 0.5  # calls/s: botocore's lowest fill rate
    DEEPEST = 0.5  # the deepest cut one throttle makes
    # After a late wake (see `throttled`), for this long a throttle is not taken as crowding.
    SETTLE = 1.0  # seconds

    def __init__(
        self,
        rate_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        adaptive: bool = False,
        crowding: Crowding | None = None,
    ) -> None:
        # asyncio-throttle's terms, for anyone who reads them: `rate_limit` calls per `period`.
        calls = max(1, int(rate_per_second))
        super().__init__(rate_limit=calls, period=calls / rate_per_second)
        self.clock = clock
        self.ceiling = rate_per_second
        self.adaptive = adaptive
        self.throttles = 0  # throttles met, all of them
        # AWS's bucket holds a second's calls at the configured rate (at least one), however
        # crowded: others take from its refill, not its size. Ours holds JITTER seconds' worth
        # fewer.
        burst = max(1.0, rate_per_second)
        self.capacity = max(1.0, burst - rate_per_second * self.JITTER)
        self._burst = burst
        # When a caller last woke more than JITTER late: the event loop was busy, and the calls
        # it then sent together may have been throttled for that alone.
        self._late_at: float | None = None
        now = clock()
        # Since when AWS's bucket is known to be full (the start) or empty (a throttle), and
        # the calls it admitted since: the rate left to us, when it is next found empty.
        self._since, self._admitted, self._full = now, 0, True
        self._cut_at: float | None = None  # the last cut; None: never cut
        self._crowding = crowding if adaptive else None
        self._voted = False
        # CUBIC: the rate the curve is flat at (W_max), and when it reaches it (K after a cut).
        self._plateau, self._plateau_at = rate_per_second, now
        start = rate_per_second
        if self._crowding is not None:
            start = self._crowding.start_rate(rate_per_second, now)
        self._configure(start)
        if start < rate_per_second:
            # Where other accounts found crowding, start a little under what they found, and
            # probe up from there as after a cut.
            self._plateau = start
            self._configure(start * self.MARGIN)
            self._cut_at = now
            self._plateau_at = now + ((start - self.target) / self.SCALE) ** (1 / 3)
        self._planned, self._planned_at = self.capacity, now  # tokens, as of when
        self._sent, self._sent_at = self.capacity, now

    def _configure(self, rate_per_second: float) -> None:
        self.target = rate_per_second  # the rate AWS should see, calls/s
        # Where the burst leaves less than one call beyond what the jitter holds back, ours
        # refills more slowly instead, so that two calls sent back to back still arrive a full
        # 1/rate apart.
        slowest = (self._burst + 1 - self.capacity) / (1 / rate_per_second + self.JITTER)
        self.rate = min(rate_per_second, slowest) * self.REFILL

    def throttled(self, sent_at: float | None = None) -> None:
        """AWS throttled a call sent at `sent_at` (None: unknown, taken as just now).

        Its bucket is empty now, and ours is emptied too. A throttle of a call sent before the
        last cut says nothing new: the rate was cut for it already. Within SETTLE of a caller
        waking late, the rate is kept: a late loop sends the calls it held back together, and
        AWS throttles that bunch even where nobody else shares the limit (cutting for it slowed
        the largest accounts on a busy machine). Otherwise the rate drops to MARGIN of what AWS
        admitted since its bucket was last full or empty, if that is lower."""
        self.throttles += 1
        if not self.adaptive:
            return
        now = self.clock()
        if self._cut_at is not None and (now if sent_at is None else sent_at) < self._cut_at:
            return
        self._planned, self._planned_at = min(self._planned, 0.0), now
        self._sent, self._sent_at = min(self._sent, 0.0), now
        elapsed = now - self._since
        admitted = self._admitted - (self._burst if self._full else 0.0)
        self._since, self._admitted, self._full = now, 0, False
        self._cut_at = now
        if self._late_at is not None and now - self._late_at < self.SETTLE:
            return
        left = max(0.0, admitted) / elapsed if elapsed > 0 else 0.0
        self._vote(left)
        if left * self.MARGIN >= self.target:
            return
        # A short or idle window makes `left` too low (nothing admitted yet is not nothing
        # left): one throttle never more than halves the rate.
        self._configure(max(self.FLOOR, self.target * self.DEEPEST, left * self.MARGIN))
        self._plateau = max(left, self.target)
        self._plateau_at = now + ((self._plateau - self.target) / self.SCALE) ** (1 / 3)

    def succeeded(self) -> None:
        """A call went through: while below the ceiling, grow the rate back."""
        if not self.adaptive:
            return
        self._admitted += 1
        if self.target >= self.ceiling:
            if not self._voted and self._admitted > 2 * self._burst:
                # A second's calls beyond the burst at the ceiling, never throttled since it
                # was last empty: not crowded.
                self._vote(self.ceiling)
            return
        since = self.clock() - self._plateau_at
        rate = min(self.ceiling, self.SCALE * since**3 + self._plateau)
        if rate >= self.ceiling or rate > self.target * 1.01:  # in steps, not on every call
            self._configure(rate)

    def _vote(self, rate: float) -> None:
        if self._crowding is not None and not self._voted:
            self._voted = True
            self._crowding.found(min(rate, self.ceiling), self.clock())

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

    async def acquire(self, *, ahead: bool = False) -> float:
        """Wait for this call's slot; returns when it was sent (for `throttled`). `ahead`: go
        before the callers already waiting, at the next token really free; it is charged all
        the same, so the rate AWS sees stays as is, and one waiting caller finds its token gone
        and waits one slot more."""
        now = self.clock()
        wait = self.reserve(now)
        if ahead:
            wait = 0.0
        if wait > 0:
            await asyncio.sleep(wait)
            if self.adaptive:
                self.woke(now + wait, self.clock())
        while (wait := self.take(now := self.clock())) > 0:
            await asyncio.sleep(wait)
        return now


class Ahead:
    """A limiter's bucket, for calls that go before those waiting in it: the OU walk shares
    the STS/Organizations limit with every AssumeRole, and an account whose role is assumed
    early (a hint's largest) can start its IAM calls only once the walk has listed it."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def acquire(self) -> float:
        return await self.limiter.acquire(ahead=True)

    def throttled(self, sent_at: float | None = None) -> None:
        self.limiter.throttled(sent_at)

    def succeeded(self) -> None:
        self.limiter.succeeded()


Limiter = RateLimiter | Ahead


class Crowding:
    """What the accounts of one run found left to them of their IAM limit: where a new
    account's adaptive rate starts.

    IAM throttles per account, but what crowds an organization's accounts is mostly in all of
    them (an organization-wide tool, pipelines deployed everywhere). Starting each account at
    the configured rate cost every crowded account at least one throttle before it learnt its
    share; it now starts near what the accounts of the last seconds found (the median, so that
    one odd account moves nothing), and still finds its own rate from there, up or down. With
    too few recent findings (an account that starts low and is never throttled finds nothing
    new), it starts at the configured rate again, so an old finding never holds a run down."""

    RECENT = 2.0  # seconds a finding counts for
    QUORUM = 5  # recent findings before any counts

    def __init__(self) -> None:
        self._found: deque[tuple[float, float]] = deque()  # (when, rate), oldest first

    def found(self, rate: float, now: float) -> None:
        """An account found `rate` calls/s left to it (its first cut), or ran a second of calls
        beyond its burst at the configured rate, unthrottled."""
        self._found.append((now, rate))

    def start_rate(self, ceiling: float, now: float) -> float:
        while self._found and self._found[0][0] < now - self.RECENT:
            self._found.popleft()
        if len(self._found) < self.QUORUM:
            return ceiling
        return min(ceiling, statistics.median(rate for _, rate in self._found))


@dataclass(slots=True)
class CallCounter:
    calls: int = 0
