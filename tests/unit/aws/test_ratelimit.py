"""The per-account limiter against AWS's own token bucket, in simulated time."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable

import pytest

from orgscan.aws import ratelimit
from orgscan.aws.ratelimit import Crowding, RateLimiter


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


def admit(limiter: RateLimiter, clock: FakeClock, calls: int, seconds: float) -> None:
    """`calls` answered OK, evenly over `seconds`."""
    for _ in range(calls):
        clock.now += seconds / calls
        limiter.succeeded()


def test_the_rate_falls_under_throttling_and_recovers_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, adaptive=True)
    assert limiter.target == 10
    # Others take 6 of AWS's 10 calls/s: from a full bucket (10), 2 s admit 10 + 2 * 4.
    admit(limiter, clock, 18, 2.0)
    limiter.throttled(sent_at=clock.now)
    assert limiter.target == pytest.approx(5.0)  # one throttle halves it at most
    # Calls sent at the old rate are throttled too: the rate was cut for them already.
    limiter.throttled(sent_at=clock.now - 0.05)
    assert limiter.target == pytest.approx(5.0)
    # Still too fast: the bucket was empty at the last throttle, 4 calls admitted in the second
    # since tell the 4 calls/s left, and the rate goes just under that.
    admit(limiter, clock, 4, 1.0)
    limiter.throttled(sent_at=clock.now)
    assert limiter.target == pytest.approx(0.9 * 4.0)
    assert limiter.throttles == 3
    # The bucket follows the rate: slots are spaced at the lower rate.
    assert limiter.rate < 10 * limiter.REFILL * 0.5
    low = limiter.target
    # Then every call succeeds: the rate grows back step by step, up to the ceiling, no further.
    seen = [low]
    for _ in range(60):
        admit(limiter, clock, 1, 0.25)
        seen.append(limiter.target)
    assert seen == sorted(seen)
    assert len({rate for rate in seen if low < rate < 10}) >= 3  # gradually, not at once
    assert limiter.target == 10
    assert limiter.rate == pytest.approx(10 * limiter.REFILL)
    assert limiter.throttles == 3


def test_it_lingers_near_the_rate_it_found_before_probing_above() -> None:
    # CUBIC's plateau is the rate AWS was found to leave (4/s), not the rate that was throttled
    # (10/s, far too high): growing back, it stays near 4/s for a while first.
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, adaptive=True)
    admit(limiter, clock, 18, 2.0)
    limiter.throttled(sent_at=clock.now)
    admit(limiter, clock, 4, 1.0)
    limiter.throttled(sent_at=clock.now)
    rates = []
    for _ in range(12):
        admit(limiter, clock, 1, 0.25)
        rates.append(limiter.target)
    assert all(3.6 <= rate <= 4.4 for rate in rates)


def test_a_crowded_account_settles_under_its_share_with_few_throttles() -> None:
    """10 workers against AWS's bucket (10 calls, refilled at the 5/s others leave), answers
    after 30 ms, throttled calls retried after botocore's backoff: simulated time."""
    throttled: dict[bool, int] = {}
    for adaptive in (False, True):
        rng = random.Random(1)
        clock = FakeClock()
        limiter = RateLimiter(10, clock=clock, adaptive=adaptive)
        limiter._planned_at = limiter._sent_at = 0.0
        bucket = AwsBucket(10)
        bucket.rate = 5.0
        events: list[tuple[float, int, str, float]] = []
        order = itertools.count()
        throttles, left = 0, 60 - 10
        for _ in range(10):
            heapq.heappush(events, (0.0, next(order), "ask", 1))
        for _ in range(100_000):  # events, a bound against a limiter that never lets go
            if not events:
                break
            clock.now, _, kind, value = heapq.heappop(events)
            if kind == "ask":
                wait = limiter.reserve(clock.now)
                heapq.heappush(events, (clock.now + wait, next(order), "send", value))
            elif kind == "send":
                wait = limiter.take(clock.now)
                if wait:  # (at least a microsecond: float time must move on)
                    later = clock.now + max(wait, 1e-6)
                    heapq.heappush(events, (later, next(order), "send", value))
                elif bucket.admit(clock.now):
                    heapq.heappush(events, (clock.now + 0.03, next(order), "ok", 0))
                else:
                    heapq.heappush(events, (clock.now + 0.03, next(order), "no", clock.now))
            elif kind == "ok":
                limiter.succeeded()
                if left:
                    left -= 1
                    heapq.heappush(events, (clock.now, next(order), "ask", 1))
            else:
                throttles += 1
                limiter.throttled(sent_at=value)
                backoff = rng.random()  # botocore's standard mode, first retry
                heapq.heappush(events, (clock.now + backoff, next(order), "ask", 1))
        assert not events and not left, "the calls never all went through"
        throttled[adaptive] = throttles
        if adaptive:
            assert limiter.target < 10
    # A fixed 10/s meets a throttle for most calls beyond the burst; the adaptive rate a few
    # (the first, and calls already sent at the old rate).
    assert 1 <= throttled[True] <= 3 and throttled[False] >= 20


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
        clock.now += 1.0
        limiter.throttled(sent_at=clock.now)  # nothing admitted in between
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
    assert (limiter.throttles, limiter.target) == (2, pytest.approx(5.0))


def test_accounts_start_near_what_the_accounts_before_them_found() -> None:
    clock = FakeClock()
    crowding = Crowding()
    for rate in (4.0, 4.2, 3.8, 4.1):
        crowding.found(rate, clock.now)
    # Too few findings yet: the configured rate.
    assert RateLimiter(10, clock=clock, adaptive=True, crowding=crowding).target == 10
    crowding.found(30.0, clock.now)  # one odd account moves nothing: the median counts
    limiter = RateLimiter(10, clock=clock, adaptive=True, crowding=crowding)
    assert limiter.target == pytest.approx(0.9 * 4.1)
    # It still finds its own rate: never throttled, it grows back to the configured one.
    admit(limiter, clock, 200, 20.0)
    assert limiter.target == 10
    # Findings older than RECENT no longer count: an old finding never holds a run down.
    assert RateLimiter(10, clock=clock, adaptive=True, crowding=crowding).target == 10
    # A fixed rate ignores them.
    assert RateLimiter(10, clock=clock, crowding=crowding).target == 10


def test_an_account_tells_the_others_what_it_found_once() -> None:
    clock = FakeClock()
    crowding = Crowding()
    crowded = RateLimiter(10, clock=clock, adaptive=True, crowding=crowding)
    calm = RateLimiter(10, clock=clock, adaptive=True, crowding=crowding)
    admit(crowded, clock, 18, 2.0)
    crowded.throttled(sent_at=clock.now)  # found 4/s left
    admit(crowded, clock, 4, 1.0)
    crowded.throttled(sent_at=clock.now)  # its second finding is its own
    admit(calm, clock, 21, 1.0)  # a second's calls beyond its burst, never throttled
    assert [rate for _, rate in crowding._found] == [pytest.approx(4.0), 10]


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
