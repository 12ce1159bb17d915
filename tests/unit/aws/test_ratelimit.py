"""The per-account limiter against AWS's own token bucket, in simulated time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

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


class SimLoop:
    """Simulated time for a limiter: its clock, and its timers, each woken `late()` seconds
    after it was due (a busy event loop)."""

    def __init__(self, late: Callable[[], float] = lambda: 0.0) -> None:
        self.now = 0.0
        self.late = late
        self._events: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(callback)
        heapq.heappush(self._events, (when, next(self._order), timer))
        return timer

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.at(self.now + delay + self.late(), callback)

    def run(self, until: float = math.inf, events: int = 1_000_000) -> None:
        for _ in range(events):  # a bound against a limiter that never lets go
            if not self._events or self._events[0][0] > until:
                return
            self.now, _, timer = heapq.heappop(self._events)
            if not timer.cancelled:
                timer.callback()
        raise AssertionError("the simulation never ended")


class Timer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Slot:
    """A caller's turn, as an asyncio future is: `then` runs when it comes."""

    def __init__(self, then: Callable[[float], None] = lambda _: None) -> None:
        self.sent_at: float | None = None
        self.cancelled = False
        self.then = then

    def done(self) -> bool:
        return self.cancelled or self.sent_at is not None

    def set_result(self, sent_at: float) -> None:
        assert not self.done()
        self.sent_at = sent_at
        self.then(sent_at)


def sim_limiter(rate: float, loop: SimLoop, **kwargs: Any) -> RateLimiter:
    return RateLimiter(rate, clock=loop, schedule=loop.schedule, **kwargs)


def send_times(limiter: RateLimiter, loop: SimLoop, asked: list[float]) -> list[float]:
    """When calls asked for at `asked` are sent."""
    slots = [Slot() for _ in asked]
    for slot, at in zip(slots, asked, strict=True):
        loop.at(at, lambda slot=slot: limiter.request(slot))  # type: ignore[misc]
    loop.run()
    return sorted(slot.sent_at for slot in slots if slot.sent_at is not None)


@pytest.mark.parametrize("rate", [0.5, 1, 3, 10, 20, 100])
def test_the_limiter_never_outruns_aws_despite_late_wakeups_and_uneven_delays(rate):
    draw = random.Random(rate)
    # The event loop wakes a third of the timers up to 0.5 s late; then each call takes up to
    # JITTER to reach AWS.
    loop = SimLoop(late=lambda: draw.choice([0.0, 0.0, draw.uniform(0, 0.5)]))
    limiter = sim_limiter(rate, loop)
    # Callers at random times, some in bursts.
    asked = sorted(
        at
        for start in (draw.uniform(0, 60) for _ in range(max(3, int(rate * 10))))
        for at in [start] * draw.randint(1, 4)
    )
    sent = send_times(limiter, loop, asked)
    assert len(sent) == len(asked)
    bucket = AwsBucket(rate)
    arrivals = sorted(at + draw.uniform(0, limiter.JITTER) for at in sent)
    assert all(bucket.admit(at) for at in arrivals)


@pytest.mark.parametrize("rate", [10, 100])
def test_the_limiter_keeps_up_with_the_rate(rate):
    loop = SimLoop()
    limiter = sim_limiter(rate, loop)
    sent = send_times(limiter, loop, [0.0] * (rate * 5))
    # A burst at once, then one call every 1/rate seconds: no slot is left unused.
    assert sent[: int(limiter.capacity)] == [0.0] * int(limiter.capacity)
    assert sent[-1] == pytest.approx((rate * 5 - limiter.capacity) / limiter.rate)
    steady = sent[int(limiter.capacity) :]
    gaps = [b - a for a, b in itertools.pairwise(steady)]
    assert max(gaps) == pytest.approx(1 / limiter.rate)
    assert limiter.rate == pytest.approx(rate * limiter.REFILL)


def test_callers_are_served_in_arrival_order() -> None:
    loop = SimLoop()
    limiter = sim_limiter(10, loop)
    served: list[int] = []
    for index in range(40):
        limiter.request(Slot(lambda _, index=index: served.append(index)))  # type: ignore[misc]
    loop.run()
    assert served == list(range(40))


def test_a_cancelled_caller_is_passed_over_and_costs_no_token() -> None:
    loop = SimLoop()
    limiter = sim_limiter(10, loop)
    first = [Slot() for _ in range(int(limiter.capacity))]
    for slot in first:
        limiter.request(slot)  # the burst, at once
    gone, next_one = Slot(), Slot()
    limiter.request(gone)
    limiter.request(next_one)
    gone.cancelled = True
    loop.run()
    assert gone.sent_at is None
    assert next_one.sent_at == pytest.approx(1 / limiter.rate)  # the first token after the burst


async def test_acquire_waits_on_the_event_loop() -> None:
    limiter = RateLimiter(50)
    sent = [await limiter.acquire() for _ in range(int(limiter.capacity) + 5)]
    # The burst at once, then never closer than the rate: five more slots take five tokens.
    assert sent == sorted(sent)
    assert sent[-1] - sent[0] >= 5 / limiter.rate * (1 - 1e-6)


def test_a_limiter_used_by_a_later_event_loop_still_serves() -> None:
    limiter = RateLimiter(2)

    async def first() -> None:
        await limiter.acquire()  # the burst's one token
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        waiter.cancel()  # its loop ends with the timer set

    async def later() -> float:
        # Bounded, so that a stranded waiter fails the test instead of hanging it.
        return await asyncio.wait_for(limiter.acquire(), timeout=5)

    asyncio.run(first())
    assert asyncio.run(later()) > 0


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


def crowded_account(adaptive: bool) -> tuple[int, float]:
    """60 calls by 10 workers against AWS's bucket (10 calls, refilled at the 5/s others
    leave), answers after 30 ms, throttled calls retried after botocore's backoff, in simulated
    time: the throttles met, and the rate the limiter ended at."""
    rng = random.Random(1)
    loop = SimLoop()
    limiter = sim_limiter(10, loop, adaptive=adaptive)
    bucket = AwsBucket(10)
    bucket.rate = 5.0
    counts = {"throttles": 0, "left": 60 - 10}

    def ask() -> None:
        limiter.request(Slot(send))

    def send(sent_at: float) -> None:
        if bucket.admit(loop.now):
            loop.at(loop.now + 0.03, answered)
        else:
            loop.at(loop.now + 0.03, lambda: throttle(sent_at))

    def answered() -> None:
        limiter.succeeded()
        if counts["left"]:
            counts["left"] -= 1
            ask()

    def throttle(sent_at: float) -> None:
        counts["throttles"] += 1
        limiter.throttled(sent_at=sent_at)
        loop.at(loop.now + rng.random(), ask)  # botocore's standard mode, first retry

    for _ in range(10):
        ask()
    loop.run()
    assert not counts["left"], "the calls never all went through"
    return counts["throttles"], limiter.target


def test_a_crowded_account_settles_under_its_share_with_few_throttles() -> None:
    fixed, _ = crowded_account(adaptive=False)
    adaptive, rate = crowded_account(adaptive=True)
    # A fixed 10/s meets a throttle for most calls beyond the burst; the adaptive rate a few
    # (the first, and calls already sent at the old rate).
    assert 1 <= adaptive <= 3 and fixed >= 20
    assert rate < 10


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


def test_the_rate_stays_within_the_floor_and_the_configured_ceiling() -> None:
    clock = FakeClock()
    slow = RateLimiter(0.2, clock=clock, adaptive=True)
    clock.now += 10.0
    slow.throttled()
    assert slow.target <= 0.2  # the floor is never above what is configured
    crowding = Crowding()
    for _ in range(5):
        crowding.found(0.1, clock.now)
    assert started(clock, crowding).target == pytest.approx(RateLimiter.FLOOR)


def test_a_first_throttle_counts_what_aws_admitted_since_the_first_call() -> None:
    # The limiter exists 2 s before its account's first call (its role is being assumed):
    # AWS's bucket was full then, and 7 calls/s are left to it.
    clock = FakeClock()
    crowding = Crowding()
    limiter = RateLimiter(10, clock=clock, adaptive=True, crowding=crowding)
    clock.now = 2.0
    limiter.request(Slot())
    admit(limiter, clock, 10 + 14, 2.0)  # the burst, then 2 s of 7/s
    limiter.throttled(sent_at=clock.now)
    assert crowding._found[-1][1] == pytest.approx(7.0)
    assert limiter.target == pytest.approx(0.9 * 7.0)


def test_a_caller_waiting_when_the_rate_changes_is_served_at_the_new_rate() -> None:
    loop = SimLoop()
    limiter = sim_limiter(10, loop, adaptive=True)
    for _ in range(int(limiter.capacity)):
        limiter.request(Slot())
    loop.at(0.0, limiter.throttled)  # the bucket emptied, the rate halved
    waiting = Slot()
    loop.at(0.0, lambda: limiter.request(waiting))
    loop.run(until=0.0)
    assert limiter.target == pytest.approx(5.0)
    # 0.1 s at the lower rate: half a token grown so far. Then the rate is back at 10/s.
    loop.at(0.1, lambda: limiter._configure(10.0))
    loop.run()
    # What grew at the lower rate, and the rest at the higher one: not when the timer set for
    # the lower rate was due, nor sooner.
    low, high = 5.0 * limiter.REFILL, limiter.rate
    assert waiting.sent_at == pytest.approx(0.1 + (1 - 0.1 * low) / high)
    assert waiting.sent_at < 1 / low


def test_a_fixed_rate_counts_throttles_and_keeps_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    for _ in range(5):
        limiter.throttled()
        clock.now += 1.0
    assert (limiter.throttles, limiter.target) == (5, 10)


def test_throttles_just_after_a_late_wake_do_not_cut_the_rate() -> None:
    # A busy event loop woke the limiter's timer 0.4 s late: the calls it held back went out
    # together, and AWS throttled the bunch. That says nothing about other tools sharing the
    # limit.
    lateness = iter([limiter_jitter := RateLimiter.JITTER / 2] + [0.4] + [0.0] * 1000)
    loop = SimLoop(late=lambda: next(lateness))
    limiter = sim_limiter(10, loop, adaptive=True)
    for _ in range(int(limiter.capacity) + 1):
        limiter.request(Slot())
    loop.run()  # the first timer, late within the jitter: nothing to note
    assert loop.now == pytest.approx(1 / limiter.rate + limiter_jitter)
    limiter.throttled()
    assert (limiter.throttles, limiter.target) == (1, pytest.approx(5.0))
    limiter = sim_limiter(10, loop, adaptive=True)
    for _ in range(int(limiter.capacity) + 1):
        limiter.request(Slot())
    loop.run()  # this one 0.4 s late
    loop.now += 0.5
    limiter.throttled()
    assert (limiter.throttles, limiter.target) == (1, 10)
    # Once the loop has kept time for SETTLE, a throttle is AWS's word again.
    loop.now += limiter.SETTLE
    limiter.throttled()
    assert (limiter.throttles, limiter.target) == (2, pytest.approx(5.0))


def started(clock: FakeClock, crowding: Crowding, adaptive: bool = True) -> RateLimiter:
    """An account's limiter, at its first call: where its rate starts."""
    limiter = RateLimiter(10, clock=clock, adaptive=adaptive, crowding=crowding)
    limiter.request(Slot())
    return limiter


def test_accounts_start_near_what_the_accounts_before_them_found() -> None:
    clock = FakeClock()
    crowding = Crowding()
    for rate in (4.0, 4.2, 3.8, 4.1):
        crowding.found(rate, clock.now)
    # Too few findings yet: the configured rate.
    assert started(clock, crowding).target == 10
    crowding.found(30.0, clock.now)  # one odd account moves nothing: the median counts
    limiter = started(clock, crowding)
    assert limiter.target == pytest.approx(0.9 * 4.1)
    # It still finds its own rate: never throttled, it grows back to the configured one.
    admit(limiter, clock, 200, 20.0)
    assert limiter.target == 10
    # Findings older than RECENT no longer count: an old finding never holds a run down.
    assert started(clock, crowding).target == 10
    # A fixed rate ignores them.
    assert started(clock, crowding, adaptive=False).target == 10


def test_an_account_starts_from_what_was_found_by_its_first_call() -> None:
    # Its limiter exists while its role is assumed and the walk lists it, a second or more:
    # what the others found meanwhile counts.
    clock = FakeClock()
    crowding = Crowding()
    limiter = RateLimiter(10, clock=clock, adaptive=True, crowding=crowding)
    assert limiter.target == 10
    clock.now += 1.0
    for _ in range(5):
        crowding.found(4.0, clock.now)
    limiter.request(Slot())
    assert limiter.target == pytest.approx(0.9 * 4.0)


def test_an_account_tells_the_others_each_finding_and_an_unthrottled_run_once() -> None:
    clock = FakeClock()
    crowding = Crowding()
    crowded = RateLimiter(10, clock=clock, adaptive=True, crowding=crowding)
    calm = RateLimiter(10, clock=clock, adaptive=True, crowding=crowding)
    for limiter in (crowded, calm):
        limiter.request(Slot())
    admit(crowded, clock, 18, 2.0)
    crowded.throttled(sent_at=clock.now)  # found 4/s left
    admit(crowded, clock, 4, 1.0)
    crowded.throttled(sent_at=clock.now)  # found 4/s left again, from an empty bucket
    admit(calm, clock, 21, 1.0)  # a second's calls beyond its burst, never throttled
    admit(calm, clock, 40, 2.0)  # and more: said once
    # The first time it found 4/s left, but a throttle cuts by half at most (a short window
    # reads low), and the others start from what it cut to.
    assert [rate for _, rate in crowding._found] == [
        pytest.approx(5.0),
        pytest.approx(4.0),
        10,
    ]


def test_an_account_that_started_low_and_ran_unthrottled_keeps_the_finding_alive() -> None:
    clock = FakeClock()
    crowding = Crowding()
    for rate in (4.0, 4.2, 3.8, 4.1, 4.0):
        crowding.found(rate, clock.now)
    starters = [started(clock, crowding) for _ in range(5)]
    assert all(s.target == pytest.approx(0.9 * 4.0) for s in starters)
    # They run 4 s at that rate, never throttled: each says so once, before the first
    # findings lapse (RECENT), so an account entered later still starts low.
    for _ in range(21):
        clock.now += 3.6 / 21
        for limiter in starters:
            limiter.succeeded()
    clock.now += crowding.RECENT / 2
    later = started(clock, crowding)
    assert later.target < 5


def test_a_call_ahead_goes_before_the_callers_already_waiting() -> None:
    # The OU walk shares its limit with AssumeRole; queued behind hundreds of them, each page
    # would wait seconds, and accounts (the hint's largest too) would be listed late.
    loop = SimLoop()
    limiter = sim_limiter(10, loop)
    queued = [Slot() for _ in range(100)]  # the last about 10 s from now
    for slot in queued:
        limiter.request(slot)
    ahead = [Slot() for _ in range(3)]
    loop.at(2.0, lambda: [limiter.request(slot, ahead=True) for slot in ahead])  # type: ignore[func-returns-value]
    later = Slot()
    loop.at(2.0, lambda: limiter.request(later))
    loop.run()
    # Each at the next tokens after it asked, in its own order.
    sent = [slot.sent_at for slot in ahead]
    assert sent == sorted(sent) and sent[0] >= 2.0 and sent[-1] < 2.0 + 3.5 / limiter.rate
    # The callers that waited lost three slots between them, and kept their order.
    assert [slot.sent_at for slot in queued] == sorted(slot.sent_at for slot in queued)
    assert queued[-1].sent_at == pytest.approx((100 + 3 - limiter.capacity) / limiter.rate)
    # A caller that is not ahead waits its turn behind them all.
    assert later.sent_at == pytest.approx((100 + 4 - limiter.capacity) / limiter.rate)
