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
from functools import partial
from typing import Protocol


class Slot(Protocol):
    """A waiting caller's turn: an asyncio future, or a test's stand-in."""

    def done(self) -> bool: ...

    def set_result(self, result: float, /) -> None: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


# Runs a callback after a delay (seconds): the event loop's call_later, or a test's clock.
Schedule = Callable[[float, Callable[[], None]], Timer]


def _call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


class RateLimiter:
    """A token bucket like AWS's own (a burst of one second's calls, then the rate), with one
    queue of waiting callers and one timer that hands out tokens as they come.

    Callers are served in arrival order, except those that go `ahead` (served first, in their
    own order), and each sleeps once, on its own slot. The timer wakes when the next token is
    due; if a busy event loop wakes it late, the tokens grown since (never more than the
    bucket holds) go to that many callers at once, so calls never reach AWS closer together
    than its bucket admits. Holding back `JITTER` seconds' worth of the burst keeps that true
    for calls that take different times to reach AWS, up to `JITTER`. A cancelled caller is
    passed over; one cancelled after its slot came keeps its token spent, which errs on the
    safe side of the limit.
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
    # CUBIC's C, calls/s per s^3. botocore's 0.4 overshot within two seconds; with 0.1, an
    # account found crowded at 5/s probed back above it within 6 s, the time most accounts take,
    # and met a throttle or two again. 0.03 takes 8 s to overshoot that much, and 8 s more to
    # climb from half the configured rate back to all of it when the crowding is gone.
    SCALE = 0.03
    FLOOR = 0.5  # calls/s: botocore's lowest fill rate
    DEEPEST = 0.5  # the deepest cut one throttle makes
    # After a late wake (see `throttled`), for this long a throttle is not taken as crowding.
    SETTLE = 1.0  # seconds
    # A token, as the timer finds it: the refill over exactly the wait may fall short of 1.0
    # by a rounding error, and a timer set for that error would not move float time on.
    _WHOLE = 1.0 - 1e-9

    def __init__(
        self,
        rate_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        adaptive: bool = False,
        crowding: Crowding | None = None,
        schedule: Schedule = _call_later,
    ) -> None:
        self.clock = clock
        self._schedule = schedule
        self.ceiling = rate_per_second
        self.adaptive = adaptive
        self.throttles = 0  # throttles met, all of them
        # AWS's bucket holds a second's calls at the configured rate (at least one), however
        # crowded: others take from its refill, not its size. Ours holds JITTER seconds' worth
        # fewer.
        burst = max(1.0, rate_per_second)
        self.capacity = max(1.0, burst - rate_per_second * self.JITTER)
        self._burst = burst
        # When the timer last woke more than JITTER late: the event loop was busy, and the
        # calls it then sent together may have been throttled for that alone.
        self._late_at: float | None = None
        now = clock()
        self.rate = rate_per_second  # calls/s our bucket refills at: set by _configure
        self._tokens, self._stamp = self.capacity, now
        self._waiting: deque[Slot] = deque()
        self._ahead: deque[Slot] = deque()
        self._timer: Timer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # acquire()'s, for its timer
        self._due = now  # when the timer is set for
        self._armed = 0  # timers set so far: a timer that is not the last one set does nothing
        # Since when AWS's bucket is known to be full (the start) or empty (a throttle), and
        # the calls it admitted since: the rate left to us, when it is next found empty.
        self._since, self._admitted, self._full = now, 0, True
        self._cut_at: float | None = None  # the last cut; None: never cut
        self._crowding = crowding if adaptive else None
        self._confirmed = False  # told the others it ran unthrottled
        # CUBIC: the rate the curve is flat at (W_max), and when it reaches it (K after a cut).
        self._plateau, self._plateau_at = rate_per_second, now
        self._configure(rate_per_second)
        self._started = False

    def _start(self, now: float) -> None:
        """At the first call (an account's limiter exists a second and more before it, while
        its role is assumed and the walk lists it): where other accounts found crowding, start
        a little under what they found, and probe up from there as after a cut."""
        self._started = True
        # AWS's bucket is full now, however long the account waited: what it admits is
        # counted from here.
        self._since = now
        if self._crowding is None:
            return
        start = self._crowding.start_rate(self.ceiling, now)
        if start < self.ceiling:
            self._plateau = start
            self._configure(start * self.MARGIN)
            self._cut_at = now
            self._plateau_at = now + ((start - self.target) / self.SCALE) ** (1 / 3)

    def _configure(self, rate_per_second: float) -> None:
        # Never above the configured rate, nor below the floor (unless that is configured).
        rate_per_second = min(self.ceiling, max(min(self.FLOOR, self.ceiling), rate_per_second))
        self.target = rate_per_second  # the rate AWS should see, calls/s
        # Where the burst leaves less than one call beyond what the jitter holds back, ours
        # refills more slowly instead, so that two calls sent back to back still arrive a full
        # 1/rate apart.
        slowest = (self._burst + 1 - self.capacity) / (1 / rate_per_second + self.JITTER)
        self._refill(self.clock())
        self.rate = min(rate_per_second, slowest) * self.REFILL
        if self._timer is not None:  # the next token comes sooner or later now
            self._timer.cancel()
            self._timer = None
            self._arm()

    def throttled(self, sent_at: float | None = None) -> None:
        """AWS throttled a call sent at `sent_at` (None: unknown, taken as just now).

        Its bucket is empty now, and ours is emptied too. A throttle of a call sent before the
        last cut says nothing new: the rate was cut for it already. Within SETTLE of the timer
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
        self._refill(now)
        self._tokens = min(self._tokens, 0.0)
        elapsed = now - self._since
        admitted = self._admitted - (self._burst if self._full else 0.0)
        self._since, self._admitted, self._full = now, 0, False
        self._cut_at = now
        if self._late_at is not None and now - self._late_at < self.SETTLE:
            return
        left = max(0.0, admitted) / elapsed if elapsed > 0 else 0.0
        # What it found, no lower than one throttle cuts to (a short window reads low): every
        # finding counts, the latest ones most.
        self._tell(max(left, self.target * self.DEEPEST))
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
        if not self._confirmed and self._admitted > 2 * self._burst:
            # A second's calls beyond the burst, never throttled since it was last empty (or
            # since its start): at least the rate it runs at is left to it (the ceiling: not
            # crowded). An account that started low where others found crowding so confirms
            # the rate it started from, or a higher one it has grown to, once; else that
            # finding lapsed after RECENT, and the accounts entered then started at the
            # ceiling again, each throttled before it knew. (Its own 0.9 of it would make the
            # finding drift down account after account.)
            self._confirmed = True
            self._tell(max(self.target, self._plateau))
        if self.target >= self.ceiling:
            return
        since = self.clock() - self._plateau_at
        rate = min(self.ceiling, self.SCALE * since**3 + self._plateau)
        if rate >= self.ceiling or rate > self.target * 1.01:  # in steps, not on every call
            self._configure(rate)

    def _tell(self, rate: float) -> None:
        if self._crowding is not None:
            self._crowding.found(min(rate, self.ceiling), self.clock())

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def request(self, slot: Slot, *, ahead: bool = False) -> None:
        """Queue `slot`; it is given the time its call may be sent, at once if a token is there
        and nobody waits. `ahead`: before the callers already waiting, at the next token; it is
        charged all the same, so the rate AWS sees stays as is."""
        now = self.clock()
        if not self._started:
            self._start(now)
        self._refill(now)
        if self._tokens >= self._WHOLE and not self._waiting and not self._ahead:
            self._tokens -= 1.0
            slot.set_result(now)
            return
        (self._ahead if ahead else self._waiting).append(slot)
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and (self._ahead or self._waiting):
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            self._due = self._stamp + wait
            self._armed += 1
            self._timer = self._schedule(wait, partial(self._release, self._armed))

    def _release(self, armed: int) -> None:
        """The timer: hand the tokens grown since to the callers first in line."""
        if armed != self._armed:
            return
        self._timer = None
        now = self.clock()
        if now - self._due > self.JITTER:
            self._late_at = now
        self._refill(now)
        while self._tokens >= self._WHOLE and (queue := self._ahead or self._waiting):
            slot = queue.popleft()
            if not slot.done():  # else cancelled while it waited
                self._tokens -= 1.0
                slot.set_result(now)
        self._arm()

    async def acquire(self, *, ahead: bool = False) -> float:
        """Wait for this call's slot; returns when it was sent (for `throttled`)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Used by another event loop before (a later asyncio.run): its timer and waiters
            # went with it.
            self._loop, self._timer = loop, None
            self._waiting.clear()
            self._ahead.clear()
        slot: asyncio.Future[float] = loop.create_future()
        self.request(slot, ahead=ahead)
        return await slot


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
    one odd account moves nothing), and still finds its own rate from there, up or down. An
    account that runs unthrottled at the rate it started at confirms it. With too few recent
    findings, accounts start at the configured rate again, so an old finding never holds a run
    down."""

    RECENT = 10.0  # seconds a finding counts for
    QUORUM = 5  # recent findings before any counts

    def __init__(self) -> None:
        self._found: deque[tuple[float, float]] = deque()  # (when, rate), oldest first

    def found(self, rate: float, now: float) -> None:
        """An account found `rate` calls/s left to it (its first cut), or ran a second of calls
        beyond its burst at `rate`, unthrottled."""
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
