"""The shortest wall time any client could scan a simulated organization in.

The model is the simulator's (`bench.simaws`):

- Every call is admitted or throttled on arrival and answered `latency` seconds later; the client
  itself costs nothing and has unlimited concurrency.
- Token buckets hold `rate` tokens and refill at `rate` per second; each admitted call takes a
  token. Over any interval [x, y] a bucket admits at most `rate + rate * (y - x)` calls (what is
  in the bucket at x, at most full, plus the refill), so m calls that cannot start before x finish
  no sooner than `x + max(0, (m - rate) / rate) + latency`. That is the burst: the first `rate`
  calls go at once, the rest at `rate` per second.
- One bucket per account takes that account's IAM calls; one global bucket takes STS and
  Organizations calls.

What a client must do, at the least:

- Organizations: list the accounts. A page holds at most 20, so knowing k accounts takes at least
  ceil(k/20) listing calls, whichever API (ListAccounts, or a tree walk whose pages may run in
  parallel). Nothing else in Organizations is strictly needed (DescribeOrganization, ListRoots and
  the OU walk are not counted).
- STS: one AssumeRole per member account; the management account scans with the caller's own
  credentials. The k-th AssumeRole needs the listing responses naming k accounts and is at least
  the (k + ceil(k/20))-th global call, so it starts no sooner than
  `s_k = max(wait(ceil(k/20)) + latency, wait(k + ceil(k/20)))` with `wait(n) = max(0, (n - rate)
  / rate)` on the global bucket.
- IAM, per account, counted from the moment its credentials arrive (its bucket is full then: no
  IAM call could use it before):
  - `live`: ceil(users/1000) ListUsers pages, one after the other; a ListAccessKeys per user, each
    after the page naming the user. Then, with only the count rule (`last_use` false), two
    GetAccessKeyLastUsed per flagged user (two active keys), after that user's ListAccessKeys (at
    best the user was on page 1). Chain: page 1 -> keys -> last used = 3 round trips, or pages + 1
    with no flagged user. With the rules that need every key's last use and the root user's keys
    (`last_use`), the credential report gives both, for every key at once: GenerateCredentialReport
    at the start, beside the listing, and one GetCredentialReport once the report is ready
    (`report_delay` after Generate); no GetAccessKeyLastUsed.
  - `credential-report`: GenerateCredentialReport; GetCredentialReport once Generate has answered
    and the report is ready (`report_delay` after Generate); then a ListAccessKeys per user read
    again live (`reread`: those a rule could fail on the report's word, which carries no key
    ids; by default the flagged ones). Their keys' last use is the report's. A client that polls
    Generate until COMPLETE pays one more round trip at least.
  The account's own time is the largest, over the release times x of its calls, of
  `x + wait(calls released at or after x) + latency` on its bucket: the critical path and the
  rate limit together, not just the larger of the two.

Which account gets the k-th AssumeRole is the client's choice. Whatever the order, the accounts
assumed k-th or later include one whose own time is at least the k-th largest, so no client ends
before `max_k s_k + latency + T_k` with own times T sorted largest first: `Bound.seconds`. A client
can only approach that by knowing account sizes before assuming roles; `listing_order_seconds`
pairs the same slots with the accounts in the order given (the listing order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["live", "credential-report"]

ORGS_PAGE = 20
LIST_USERS_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Scenario:
    users: tuple[int, ...]  # per account, management account first, in listing order
    flagged: tuple[int, ...]  # users with two active keys, per account
    latency: float
    iam_rate: float  # per account, calls/s; math.inf = unlimited
    global_rate: float  # STS + Organizations, calls/s; math.inf = unlimited
    strategy: Strategy = "live"
    report_delay: float = 0.0
    # Every active key's last use and the root user's keys are read (the rules beyond the count).
    last_use: bool = False
    # Users the credential-report strategy reads again live, per account; None: the flagged ones.
    reread: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.users) != len(self.flagged) or not self.users:
            raise ValueError("users and flagged need one entry per account, at least one")
        if any(f > u for u, f in zip(self.users, self.flagged, strict=True)):
            raise ValueError("more flagged users than users in an account")
        if self.reread is not None and len(self.reread) != len(self.users):
            raise ValueError("reread needs one entry per account")

    @classmethod
    def from_truth(
        cls,
        truth: Mapping[str, Mapping[str, int]],
        *,
        latency: float,
        iam_rate: float,
        global_rate: float,
        strategy: Strategy = "live",
        report_delay: float = 0.0,
        last_use: bool = False,
        reread: Mapping[str, int] | None = None,
    ) -> Scenario:
        """From `simaws.ground_truth`: account id -> user ARN -> active keys; `reread`: account
        id -> users read again live."""
        return cls(
            users=tuple(len(users) for users in truth.values()),
            flagged=tuple(sum(n >= 2 for n in users.values()) for users in truth.values()),
            latency=latency,
            iam_rate=iam_rate,
            global_rate=global_rate,
            strategy=strategy,
            report_delay=report_delay,
            last_use=last_use,
            reread=None if reread is None else tuple(reread[account] for account in truth),
        )


@dataclass(frozen=True, slots=True)
class Bound:
    seconds: float  # no client finishes sooner
    listing_order_seconds: float  # the same, assuming roles in listing order
    global_calls: int
    iam_calls: int
    global_seconds: float  # the global bucket alone: its last call answered
    account_seconds: float  # the slowest account alone, from its credentials to its last answer


def _wait(calls: int, rate: float) -> float:
    """When the last of `calls` released together into a full bucket can be admitted."""
    if math.isinf(rate) or calls <= rate:
        return 0.0
    return (calls - rate) / rate


def _iam_calls(s: Scenario, users: int, flagged: int, reread: int) -> dict[float, int]:
    """The account's IAM calls by earliest release, counted from its credentials' arrival."""
    latency = s.latency
    releases: dict[float, int] = {}

    def add(at: float, count: int) -> None:
        if count:
            releases[at] = releases.get(at, 0) + count

    report = max(latency, s.report_delay)
    if s.strategy == "live":
        pages = max(1, math.ceil(users / LIST_USERS_PAGE))
        for page in range(pages):
            add(page * latency, 1)
            add((page + 1) * latency, min(LIST_USERS_PAGE, users - page * LIST_USERS_PAGE))
        if s.last_use:
            add(0.0, 1)
            add(report, 1)
        else:
            add(2 * latency, 2 * flagged)
    else:
        add(0.0, 1)
        add(report, 1)
        add(report + latency, reread)
    return releases


def _account_seconds(s: Scenario, releases: dict[float, int]) -> float:
    pending = sum(releases.values())
    longest = 0.0
    for at in sorted(releases):
        longest = max(longest, at + _wait(pending, s.iam_rate) + s.latency)
        pending -= releases[at]
    return longest


def lower_bound(s: Scenario) -> Bound:
    reread = s.reread if s.reread is not None else s.flagged
    calls = [
        _iam_calls(s, users, flagged, again)
        for users, flagged, again in zip(s.users, s.flagged, reread, strict=True)
    ]
    own = [_account_seconds(s, releases) for releases in calls]
    members = len(s.users) - 1
    listing = max(1, math.ceil(len(s.users) / ORGS_PAGE))

    def assumed_at(k: int) -> float:
        pages = math.ceil(k / ORGS_PAGE)
        return max(_wait(pages, s.global_rate) + s.latency, _wait(k + pages, s.global_rate))

    def finish(order: list[float]) -> float:
        ends = [own[0], _wait(listing, s.global_rate) + s.latency]
        ends += [assumed_at(k) + s.latency + t for k, t in enumerate(order, start=1)]
        return max(ends)

    return Bound(
        seconds=finish(sorted(own[1:], reverse=True)),
        listing_order_seconds=finish(own[1:]),
        global_calls=listing + members,
        iam_calls=sum(sum(releases.values()) for releases in calls),
        global_seconds=_wait(listing + members, s.global_rate) + s.latency,
        account_seconds=max(own),
    )
