"""How a scan grows with accounts and users: `python -m bench.scale [ACCOUNTS ...]`.

For organizations shaped like `org-1k` (users per account from the simulator's lognormal, mean
25; IAM 10 calls/s per account; STS and Organizations 100 calls/s together; 30 ms a call), and
for both strategies, it prints:
- the calls, and the two bounds of `bench.lower_bound` (any client; roles assumed in listing
  order);
- orgscan's CPU at its measured CPU per call;
- its memory at its measured memory per user, an upper estimate: part of org-1k's peak is the
  state of the hundreds of accounts in flight, which does not grow with the organization;
- a prediction of its wall time: the listing-order bound times the overhead orgscan measured
  over that bound on `org-1k` and `org-1k-report`, or its CPU time on one core if longer.

The measured figures come from `python -m bench --json FILE` (pass `--measured FILE`); without
one, the figures of the README's Performance section are used.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

if __package__ in (None, ""):  # `python bench/scale.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lower_bound import Scenario, Strategy, lower_bound
from bench.run import SCENARIOS, bound_kwargs, walk_order
from bench.simaws import ground_truth


@dataclass(frozen=True, slots=True)
class Measured:
    """What orgscan showed on the benchmark (README, Performance)."""

    overhead: dict[str, float]  # wall / listing-order bound, by strategy
    cpu_per_call: dict[str, float]  # seconds, by strategy
    base_rss_mb: float  # the process with nothing scanned yet
    rss_per_user_kb: float


DEFAULT = Measured(
    overhead={"live": 1.085, "credential-report": 1.109},
    cpu_per_call={"live": 0.00045, "credential-report": 0.00079},
    base_rss_mb=66.4,
    rss_per_user_kb=2.43,
)


def measured_from(path: Path) -> Measured:
    rows = json.loads(path.read_text())
    live, report, small = rows["org-1k"], rows["org-1k-report"], rows["small"]
    users_1k = 1000 * SCENARIOS["org-1k"].users_mean
    users_small = SCENARIOS["small"].accounts * SCENARIOS["small"].users_mean
    per_user = (live["peak_rss_mb"] - small["peak_rss_mb"]) / (users_1k - users_small)
    return Measured(
        overhead={
            "live": live["wall_seconds"] / live["listing_order_bound"],
            "credential-report": report["wall_seconds"] / report["listing_order_bound"],
        },
        cpu_per_call={
            "live": live["cpu_per_1k_calls"] / 1000,
            "credential-report": report["cpu_per_1k_calls"] / 1000,
        },
        base_rss_mb=small["peak_rss_mb"] - users_small * per_user,
        rss_per_user_kb=per_user * 1024,
    )


def model(accounts: int, measured: Measured) -> list[str]:
    shape = replace(SCENARIOS["org-1k"], accounts=accounts)
    org = shape.org
    truth = ground_truth(org)
    ordered = {account: truth[account] for account in walk_order(org)}
    users = sum(map(len, truth.values()))
    lines = []
    for strategy in ("live", "credential-report"):
        kind: Strategy = "live" if strategy == "live" else "credential-report"
        kwargs = bound_kwargs(replace(shape, strategy=kind))
        bound = lower_bound(Scenario.from_truth(truth, **kwargs))
        order = lower_bound(Scenario.from_truth(ordered, **kwargs)).listing_order_seconds
        calls = bound.global_calls + bound.iam_calls
        cpu = calls * measured.cpu_per_call[strategy]
        wall = max(order * measured.overhead[strategy], cpu)
        rss = measured.base_rss_mb + users * measured.rss_per_user_kb / 1024
        if cpu >= order * measured.overhead[strategy]:
            limit = "client CPU (one core)"
        else:
            limit = "STS/Organizations rate + IAM rate of the accounts entered last"
        lines.append(
            f"{accounts:>6} {users:>8} {strategy:<17} {bound.global_calls:>7} "
            f"{bound.iam_calls:>8} {bound.global_seconds:>7.1f} {bound.account_seconds:>7.1f} "
            f"{bound.seconds:>7.1f} {order:>7.1f} {cpu:>6.1f} {rss:>6.0f} {wall:>7.1f}  {limit}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("accounts", nargs="*", type=int, default=[1000, 10_000])
    parser.add_argument("--measured", type=Path, help="JSON from python -m bench --json")
    args = parser.parse_args()
    measured = measured_from(args.measured) if args.measured else DEFAULT
    print(
        f"{'accts':>6} {'users':>8} {'strategy':<17} {'global':>7} {'iam':>8} {'sts s':>7} "
        f"{'acct s':>7} {'bound s':>7} {'order s':>7} {'cpu s':>6} {'rss MB':>6} "
        f"{'pred. s':>7}  bound by"
    )
    for accounts in args.accounts:
        for line in model(accounts, measured):
            print(line, flush=True)
    print(
        "global: STS + Organizations calls; iam: IAM calls; sts s: the global limit alone; "
        "acct s: the slowest account alone; pred.: predicted orgscan wall time"
    )


if __name__ == "__main__":
    main()
