"""The per-account limiter against AWS's own token bucket, in simulated time."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable

import pytest

from orgscan.aws import ratelimit
from orgscan.aws.ratelimit import RateLimiter


class AwsBucket:
    """AWS's side: a token bucket holding one second of calls (at least one), checked on
    arrival."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = self.tokens = max(1.0, rate)
        self.stamp = 0.0

    def admit(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def fresh_limiter(rate: float) -> RateLimiter:
    limiter = RateLimiter(rate)
    limiter._planned_at = limiter._sent_at = 0.0  # its clock starts at 0 here
    return limiter


def send_times(limiter: RateLimiter, asked: list[float], late: Callable[[], float]) -> list[float]:
    """When calls asked for at `asked` are sent by acquire(), if the event loop wakes each
    sleeper `late()` seconds late."""
    wakeups = []
    for index, now in enumerate(asked):
        wait = limiter.reserve(now)
        heapq.heappush(wakeups, (now + wait + late() if wait else now, index))
    sent = []
    while wakeups:
        now, index = heapq.heappop(wakeups)
        wait = limiter.take(now)
        if wait:
            heapq.heappush(wakeups, (now + wait + late(), index))
        else:
            sent.append(now)
    return sent


@pytest.mark.parametrize("rate", [0.5, 1, 3, 10, 20, 100])
def test_the_limiter_never_outruns_aws_despite_late_wakeups_and_uneven_delays(rate):
    draw = random.Random(rate)
    limiter = fresh_limiter(rate)
    # Callers at random times, some in bursts. The event loop wakes a third of the sleepers
    # up to 0.5 s late; then each call takes up to JITTER to reach AWS.
    asked = sorted(
        at
        for start in (draw.uniform(0, 60) for _ in range(max(3, int(rate * 10))))
        for at in [start] * draw.randint(1, 4)
    )
    sent = send_times(limiter, asked, lambda: draw.choice([0.0, 0.0, draw.uniform(0, 0.5)]))
    assert len(sent) == len(asked)
    bucket = AwsBucket(rate)
    arrivals = sorted(at + draw.uniform(0, limiter.JITTER) for at in sent)
    assert all(bucket.admit(at) for at in arrivals)


@pytest.mark.parametrize("rate", [10, 100])
def test_the_limiter_keeps_up_with_the_rate(rate):
    limiter = fresh_limiter(rate)
    sent = [limiter.reserve(0.0) for _ in range(rate * 5)]
    # A burst at once, then one call every 1/rate seconds: no slot is left unused.
    assert sent[: int(limiter.capacity)] == [0.0] * int(limiter.capacity)
    assert sent[-1] == pytest.approx((rate * 5 - limiter.capacity) / limiter.rate)
    assert limiter.rate == pytest.approx(rate * limiter.REFILL)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_falls_under_throttling_and_recovers_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, adaptive=True)
    assert limiter.target == 10
    # Throttled once a second for a while: the rate is cut, multiplicatively, each time.
    rates = []
    for _ in range(5):
        limiter.throttled()
        rates.append(limiter.target)
        clock.now += 1.0
    assert rates[0] == pytest.approx(7.0)
    assert all(later < earlier for earlier, later in itertools.pairwise(rates))
    assert limiter.throttles == 5
    # The bucket follows the rate: slots are spaced at the lower rate.
    assert limiter.rate < 10 * limiter.REFILL * 0.5
    low = limiter.target
    # Then every call succeeds: the rate grows back step by step, up to the ceiling and no further.
    seen = [low]
    for _ in range(60):
        clock.now += 0.5
        limiter.succeeded()
        seen.append(limiter.target)
    assert seen == sorted(seen)
    assert len({rate for rate in seen if low < rate < 10}) >= 3  # gradually, not at once
    assert limiter.target == 10
    assert limiter.rate == pytest.approx(10 * limiter.REFILL)
    assert limiter.throttles == 5


def test_a_burst_of_throttles_cuts_the_rate_once() -> None:
    # The calls in flight when AWS first throttles were all sent at the old rate.
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, adaptive=True)
    for _ in range(4):
        limiter.throttled()
        clock.now += 0.1
    assert limiter.target == pytest.approx(7.0)
    assert limiter.throttles == 4


def test_successes_never_lift_the_rate_above_the_configured_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, adaptive=True)
    for _ in range(10):
        clock.now += 1.0
        limiter.succeeded()
    assert limiter.target == 10


def test_the_rate_never_falls_below_the_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, adaptive=True)
    for _ in range(30):
        limiter.throttled()
        clock.now += 1.0
    assert limiter.target == pytest.approx(limiter.FLOOR)


def test_a_fixed_rate_counts_throttles_and_keeps_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    for _ in range(5):
        limiter.throttled()
        clock.now += 1.0
    assert (limiter.throttles, limiter.target) == (5, 10)


def test_throttles_just_after_a_late_wake_do_not_cut_the_rate() -> None:
    # A busy event loop woke a caller 0.4 s late: the calls it held back went out together,
    # and AWS throttled the bunch. That says nothing about other tools sharing the limit.
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, adaptive=True)
    limiter.woke(due=1.0, now=1.0 + limiter.JITTER / 2)  # on time, within the jitter
    clock.now = 2.0
    limiter.woke(due=1.6, now=clock.now)
    clock.now += 0.5
    limiter.throttled()
    assert (limiter.throttles, limiter.target) == (1, 10)
    # Once the loop has kept time for SETTLE, a throttle is AWS's word again.
    clock.now += limiter.SETTLE
    limiter.throttled()
    assert (limiter.throttles, limiter.target) == (2, pytest.approx(7.0))


async def test_a_call_ahead_goes_before_the_callers_already_waiting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The OU walk shares its limit with AssumeRole; queued behind hundreds of them, each page
    # would wait seconds, and accounts (the hint's largest too) would be listed late.
    clock = FakeClock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr(ratelimit.asyncio, "sleep", sleep)
    limiter = RateLimiter(10, clock=clock)
    for _ in range(100):
        limiter.reserve(clock.now)  # 100 callers planned, the last about 10 s from now
    await limiter.acquire(ahead=True)
    assert clock.now < 1.0
    before = clock.now
    await limiter.acquire()  # in its turn: behind the 100, and behind the one that went ahead
    assert clock.now - before > 9.0
