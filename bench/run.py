"""The benchmark: `python -m bench` (or `python bench/run.py`) from the repository root.

Each named scenario starts a cold simulator (`bench.simaws`) in its own process, runs the real
`orgscan.scanner.scan` against it in a child process (so CPU and peak RSS are orgscan's alone),
checks the result against the generated ground truth, and prints one line: the organization,
the calls and throttles the simulator saw, orgscan's wall time, CPU (also per 1,000 calls) and
peak RSS, the lower bound (`bench.lower_bound`) with orgscan's ratio to it, and the sequential
boto3 baseline (`bench.baseline`) with orgscan's speed-up over it.

Two bounds are shown. `bound` is `lower_bound(...).seconds`: no client finishes sooner, but
reaching it needs to know each account's size before assuming its role, which nothing in the
Organizations API tells. `order` is the same model with roles assumed in the order orgscan's
OU walk lists the accounts: what a client without that knowledge can approach.

The baseline runs only where it is cheap (`small`); elsewhere its time is estimated from the
per-call time it measured on `small` and the calls it would make, marked `~`. A scenario whose
result differs from the ground truth (accounts, users, active-key counts, findings, a failed or
incomplete run) is marked WRONG and fails the run with exit code 1: a fast wrong answer never
passes.

    python -m bench                          # the four scenarios (org-10k only when named)
    python -m bench small wide -v            # some, with diagnostics under each line
    python -m bench org-1k --py-spy DIR      # sample orgscan with py-spy; then
    python -m bench.profile DIR/org-1k.raw   # where its CPU went
    python -m bench org-1k --option wire=false --set max_accounts_in_flight=32   # ablations
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lower_bound import Bound, Scenario, Strategy, lower_bound
from bench.simaws import (
    OrgParams,
    SimOrg,
    SimParams,
    ground_truth,
    last_use_truth,
    root_truth,
    running_sim,
    sim_stats,
    use_sim,
)
from orgscan.model import AccountResult
from orgscan.progress import Progress

# AWS documents no generation time for a credential report. This is an assumption: a few
# seconds for an account with tens of users (the first GenerateCredentialReport answers
# STARTED; GetCredentialReport answers ReportInProgress until then).
REPORT_DELAY = 4.0
# The rule whose findings the ground truth lists (users with more than one active key).
MULTIPLE_ACTIVE_KEYS = "iam-user-multiple-active-access-keys"


@dataclass(frozen=True, slots=True)
class BenchScenario:
    name: str
    accounts: int
    users_mean: float
    latency: float  # seconds per call
    iam_rate: float  # per account, calls/s
    global_rate: float  # STS + Organizations together, calls/s
    strategy: Strategy = "live"
    # Both strategies generate a report when the rules need last use (orgscan's default).
    report_delay: float = REPORT_DELAY
    run_baseline: bool = False
    users_sigma: float = 0.5  # the simulator's default spread of users per account
    seed: int = 1
    default: bool = True  # run when no scenario is named
    iam_background: float = 0.0  # share of each account's IAM bucket other tools use
    hinted: bool = False  # run twice, the second with the first's findings as hint

    @property
    def org(self) -> OrgParams:
        return OrgParams(
            accounts=self.accounts,
            users_mean=self.users_mean,
            users_sigma=self.users_sigma,
            seed=self.seed,
        )

    @property
    def sim(self) -> SimParams:
        return SimParams(
            org=self.org,
            latency=self.latency,
            iam_rate=self.iam_rate,
            global_rate=self.global_rate,
            report_delay=self.report_delay,
            iam_background=self.iam_background,
        )

    def config(self, overrides: dict[str, Any], shards: int = 1) -> dict[str, Any]:
        """The orgscan config a user would write for this organization's limits (with shards
        run side by side, each gets an equal share of the STS/Organizations limit)."""
        scan = {
            "strategy": self.strategy,
            "account_rate_limit": self.iam_rate,
            "management_rate_limit": self.global_rate / shards,
            # Accounts are entered at the STS rate and each takes seconds at its own IAM
            # rate, so hundreds are in flight at once (see README, Performance).
            "max_accounts_in_flight": 512,
            **overrides,
        }
        return {"scan": scan}


SCENARIOS = {
    s.name: s
    for s in (
        # "50 accounts x 20 users": every account has exactly 20.
        BenchScenario("small", 50, 20, 0.03, 20, 100, run_baseline=True, users_sigma=0.0),
        # "25 users (mean)": the simulator's lognormal spread, 3 to 118 users here.
        BenchScenario("org-1k", 1000, 25, 0.03, 10, 100),
        BenchScenario("wide", 10, 2000, 0.03, 100, 100, users_sigma=0.0),
        BenchScenario("org-1k-report", 1000, 25, 0.03, 10, 100, "credential-report"),
        # org-1k again, the second run taking the first's findings.json as its hint.
        BenchScenario("org-1k-hinted", 1000, 25, 0.03, 10, 100, hinted=True),
        # org-1k where other tools use half of every account's IAM limit all along.
        BenchScenario("shared-iam", 1000, 25, 0.03, 10, 100, iam_background=0.5),
        # shared-iam as a quarterly sweep meets it: hinted by the sweep before (not by default).
        BenchScenario(
            "shared-iam-hinted",
            1000,
            25,
            0.03,
            10,
            100,
            iam_background=0.5,
            hinted=True,
            default=False,
        ),
        # Not run by default: AWS's default quota of accounts, to check bench/scale.py's model.
        BenchScenario("org-10k", 10_000, 25, 0.03, 10, 100, default=False),
    )
}


# --- orgscan, measured in its own process -------------------------------------------------------


@dataclass(slots=True)
class OrgscanRun:
    wall_seconds: float
    cpu_seconds: float  # user + system of orgscan's process (and any it started)
    peak_rss_mb: float  # orgscan's process (plus the largest child's peak, if any)
    api_calls: int  # as orgscan counted them
    complete: bool
    active_keys: dict[str, dict[str, int]]  # account id -> user ARN -> active keys
    findings: list[str]  # ARNs of the multiple-active-keys rule's findings
    # (user ARN, key created, epoch s) -> last used (None: never), for every active key whose
    # last use was read; and how many active keys' last use was not read.
    last_used: dict[tuple[str, int], int | None] = field(default_factory=dict)
    last_used_unread: int = 0
    root_keys: dict[str, bool | None] = field(default_factory=dict)  # account id -> present
    failed: dict[str, str] = field(default_factory=dict)  # account id -> error
    loop_lag_p99: float = 0.0  # seconds the event loop ran late, 99th percentile
    loop_lag_max: float = 0.0
    gc_seconds: float = 0.0  # in the cyclic garbage collector
    gc_max_pause: float = 0.0
    timeline: str = ""


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


class _GcTimer:
    """Time spent in the cyclic garbage collector, from its start/stop callbacks."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, _: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)


class _Timeline(Progress):
    """When accounts were listed and finished, in seconds from the scan's start."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()
        self.listed_at: list[float] = []
        self.finished_at: list[tuple[float, str, int]] = []  # when, account, users
        self.assumed_at: list[float] = []  # when each account's credentials arrived
        self.accounts: dict[str, dict[str, Any]] = {}  # per account, for --timeline
        self._watch_credentials()

    def _watch_credentials(self) -> None:
        from orgscan.aws import credentials as sessions

        get = sessions.AccountCredentials.get
        timeline = self

        async def timed(credentials: Any, account_id: str) -> Any:
            asked = time.perf_counter() - timeline.start
            found = await get(credentials, account_id)
            timeline.assumed_at.append(time.perf_counter() - timeline.start)
            timeline.accounts.setdefault(account_id, {}).update(
                asked=round(asked, 3), assumed=round(timeline.assumed_at[-1], 3)
            )
            return found

        sessions.AccountCredentials.get = timed  # type: ignore[method-assign,assignment]

    def listed(self) -> None:
        super().listed()
        self.listed_at.append(time.perf_counter() - self.start)

    def finished(self, result: AccountResult) -> None:
        super().finished(result)
        self.finished_at.append(
            (time.perf_counter() - self.start, result.account.id, len(result.users))
        )
        self.accounts.setdefault(result.account.id, {}).update(
            finished=round(self.finished_at[-1][0], 3),
            users=len(result.users),
            calls=result.api_calls,
            throttles=getattr(result, "throttles", 0),  # (an orgscan before it has none)
        )

    def summary(self) -> str:
        def quartiles(times: list[float]) -> str:
            if not times:
                return "-"
            return "/".join(
                f"{times[min(len(times) - 1, int(q * len(times)))]:.1f}"
                for q in (0.25, 0.5, 0.75, 1.0)
            )

        last = sorted(self.finished_at)[-3:]
        return (
            f"listed by {quartiles(self.listed_at)} s, entered by "
            f"{quartiles(sorted(self.assumed_at))} s, finished by "
            f"{quartiles(sorted(t for t, _, _ in self.finished_at))} s (25/50/75/100%); "
            "last: " + ", ".join(f"{a} ({n} users) at {t:.1f} s" for t, a, n in last)
        )


async def _measured(scan: Any, lags: list[float]) -> Any:
    """The scan, with the event loop's lateness sampled every 10 ms beside it."""

    async def monitor() -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - start - 0.01)

    watcher = asyncio.ensure_future(monitor())
    try:
        return await scan
    finally:
        watcher.cancel()


def _orgscan_child(
    url: str,
    config: dict[str, Any],
    options: dict[str, Any],
    profile: str | None,
    shard: tuple[int, int] | None,
    conn: Connection,
) -> None:
    use_sim(url)
    # Imports are not part of the measurement: a scan starts after them.
    from orgscan.accounts import Shard
    from orgscan.config import parse_config
    from orgscan.runner import frozen_gc
    from orgscan.scanner import ScanOptions, scan

    cfg = parse_config(config)
    if isinstance(options.get("report_polling"), dict):
        from orgscan.collect.credential_report import ReportPolling

        options["report_polling"] = ReportPolling(**options["report_polling"])
    # Ablations are not options of a scan: they patch what the scan is built from.
    if not options.pop("wire", True):
        from orgscan.aws.clients import ClientFactory

        async def no_wire(self: ClientFactory, service: str, client: Any) -> None:
            return None  # botocore sends every call

        ClientFactory._wire_for = no_wire  # type: ignore[method-assign]
    tune_gc = options.pop("tune_gc", True)
    # org-1k-hinted: the first run writes its findings.json, the second reads it as its hint.
    from orgscan import evidence as codec

    hints_out, hints_in = options.pop("hints_out", None), options.pop("hints", None)
    timeline_out = options.pop("timeline_out", None)
    hints = None
    if hints_in:  # (imported only then: the same bench measures an orgscan before hints)
        from orgscan.accounts import Hints

        hints = Hints.of(codec.read(Path(hints_in)))
    if "shared_clients" in options:
        sys.exit("shared_clients: a client per account is gone; see README Performance history")
    scan_options = ScanOptions(**options)
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
    lags: list[float] = []
    gc_timer = _GcTimer()
    gc.callbacks.append(gc_timer)
    timeline = _Timeline()
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()

    async def run() -> Any:
        # As the CLI runs it: with the collector tuned around the scan (orgscan.runner).
        async with frozen_gc() if tune_gc else contextlib.nullcontext():
            return await scan(
                cfg,
                options=scan_options,
                progress=timeline,
                shard=Shard(*shard) if shard else None,
                # Only when there is one, so that the same bench measures an orgscan before it.
                **({"hints": hints} if hints else {}),
            )

    result = asyncio.run(_measured(run(), lags))
    wall = time.perf_counter() - started
    if hints_out:
        Path(hints_out).write_bytes(codec.encode(result))
    if timeline_out:
        Path(timeline_out).write_text(json.dumps(timeline.accounts, indent=0))
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    gc.callbacks.remove(gc_timer)
    if profiler:
        profiler.stop()
        Path(profile).write_text(profiler.output_text(unicode=True))  # type: ignore[arg-type]
    # ru_maxrss is in KiB on Linux; for children it is the largest child's peak.
    peak = self_after.ru_maxrss + (children_after.ru_maxrss if _cpu(children_after) else 0)
    run = OrgscanRun(
        wall_seconds=wall,
        cpu_seconds=_cpu(self_after)
        - _cpu(self_before)
        + _cpu(children_after)
        - _cpu(children_before),
        peak_rss_mb=peak / 1024,
        api_calls=result.run.api_calls,
        complete=result.run.complete,
        active_keys={
            r.account.id: {u.arn: u.active_key_count for u in r.users}
            for r in result.accounts
            if r.scan_status == "scanned"
        },
        findings=sorted(f.arn for f in result.findings if f.rule_id == MULTIPLE_ACTIVE_KEYS),
        last_used={
            (u.arn, int(k.created_at.timestamp())): (
                int(k.last_used_at.timestamp()) if k.last_used_at else None
            )
            for u in result.users
            for k in u.access_keys
            if k.active and k.created_at and k.last_used_source
        },
        last_used_unread=sum(
            1 for u in result.users for k in u.access_keys if k.active and not k.last_used_source
        ),
        root_keys={r.account.id: r.root_keys.present for r in result.accounts if r.root_keys},
        failed={
            r.account.id: f"{r.error.code}: {r.error.message}"
            for r in result.accounts
            if r.error is not None
        },
        loop_lag_p99=sorted(lags)[int(len(lags) * 0.99)] if lags else 0.0,
        loop_lag_max=max(lags, default=0.0),
        gc_seconds=sum(gc_timer.pauses),
        gc_max_pause=max(gc_timer.pauses, default=0.0),
        timeline=timeline.summary(),
    )
    conn.send(asdict(run))
    conn.close()


def run_orgscan(
    url: str,
    config: dict[str, Any],
    options: dict[str, Any],
    profile: str | None = None,
    py_spy: str | None = None,
    shards: int = 1,
) -> OrgscanRun:
    """orgscan in a child process; with `shards` > 1, that many at once, each scanning its
    shard (`orgscan scan --shard K/N`) with an equal share of the STS/Organizations limit, the
    way parallel jobs would, merged as `orgscan merge` does."""
    ctx = multiprocessing.get_context("spawn")
    children = []
    for index in range(1, shards + 1):
        receiver, sender = ctx.Pipe(duplex=False)
        shard = (index, shards) if shards > 1 else None
        profile_k = profile if index == 1 else None
        process = ctx.Process(
            target=_orgscan_child, args=(url, config, options, profile_k, shard, sender)
        )
        process.start()
        sender.close()
        children.append((process, receiver))
    spy = None
    if py_spy:
        # Sampling from outside disturbs the scan little; child processes are followed too.
        executable = Path(sys.executable).with_name("py-spy")
        command = [str(executable), "record", "--pid", str(children[0][0].pid), "--subprocesses"]
        command += ["--rate", "250", "--format", "raw", "-o", py_spy]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = []
    for process, receiver in children:
        try:
            runs.append(OrgscanRun(**receiver.recv()))
        except EOFError:
            process.join()
            raise RuntimeError(f"an orgscan process died (exit code {process.exitcode})") from None
        process.join()
    if spy:
        spy.wait()
    return runs[0] if len(runs) == 1 else _merged(runs)


def _merged(runs: list[OrgscanRun]) -> OrgscanRun:
    """Shards run side by side: the slowest one's wall time, everyone's CPU and memory."""
    return OrgscanRun(
        wall_seconds=max(r.wall_seconds for r in runs),
        cpu_seconds=sum(r.cpu_seconds for r in runs),
        peak_rss_mb=sum(r.peak_rss_mb for r in runs),
        api_calls=sum(r.api_calls for r in runs),
        complete=all(r.complete for r in runs),
        active_keys={a: users for r in runs for a, users in r.active_keys.items()},
        findings=sorted(arn for r in runs for arn in r.findings),
        last_used={k: v for r in runs for k, v in r.last_used.items()},
        last_used_unread=sum(r.last_used_unread for r in runs),
        root_keys={a: p for r in runs for a, p in r.root_keys.items()},
        failed={a: e for r in runs for a, e in r.failed.items()},
        loop_lag_p99=max(r.loop_lag_p99 for r in runs),
        loop_lag_max=max(r.loop_lag_max for r in runs),
        gc_seconds=sum(r.gc_seconds for r in runs),
        gc_max_pause=max(r.gc_max_pause for r in runs),
        timeline=" | ".join(f"shard {k}: {r.timeline}" for k, r in enumerate(runs, 1)),
    )


# --- the baseline, also in its own process ------------------------------------------------------


def _baseline_child(url: str, conn: Connection) -> None:
    use_sim(url)
    from bench.baseline import run_baseline

    result = run_baseline()
    conn.send((result.wall_seconds, result.active_keys))
    conn.close()


def run_baseline_process(url: str) -> tuple[float, dict[str, dict[str, int]]]:
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_baseline_child, args=(url, sender))
    process.start()
    sender.close()
    wall, active = receiver.recv()
    process.join()
    return wall, active


def baseline_calls(truth: dict[str, dict[str, int]]) -> int:
    """The calls the sequential baseline makes: GetCallerIdentity, ListAccounts pages (20 a
    page), then per account an AssumeRole (not for the management account), ListUsers pages
    (100 a page by default) and one ListAccessKeys a user."""
    listing = max(1, math.ceil(len(truth) / 20))
    per_account = sum(1 + max(1, math.ceil(len(u) / 100)) + len(u) for u in truth.values())
    return 1 + listing + per_account - 1


# --- checks and the bound ---------------------------------------------------------------------


def check(
    run: OrgscanRun,
    truth: dict[str, dict[str, int]],
    last_use: dict[tuple[str, int], int | None],
    roots: dict[str, bool],
) -> list[str]:
    """Everything that makes the answer wrong; empty when orgscan found exactly the truth: the
    active keys, the findings, every active key's last use and every root user's keys."""
    problems = []
    if run.failed:
        problems.append(f"{len(run.failed)} accounts failed, e.g. {next(iter(run.failed.items()))}")
    if not run.complete:
        problems.append("the run says it is incomplete")
    if set(run.active_keys) != set(truth):
        missing, extra = set(truth) - set(run.active_keys), set(run.active_keys) - set(truth)
        problems.append(f"accounts: {len(missing)} missing, {len(extra)} unexpected")
    wrong = [a for a in truth if a in run.active_keys and run.active_keys[a] != truth[a]]
    if wrong:
        problems.append(f"{len(wrong)} accounts with wrong users or key counts, e.g. {wrong[0]}")
    expected = sorted(arn for users in truth.values() for arn, n in users.items() if n > 1)
    if run.findings != expected:
        problems.append(f"findings: {len(run.findings)} reported, {len(expected)} expected")
    if run.last_used_unread:
        problems.append(f"{run.last_used_unread} active keys without their last use")
    wrong_use = [key for key, used in last_use.items() if run.last_used.get(key, -1) != used]
    if wrong_use or len(run.last_used) != len(last_use):
        problems.append(
            f"last use: {len(run.last_used)} read, {len(last_use)} active keys, "
            f"{len(wrong_use)} wrong or missing, e.g. {wrong_use[:1]}"
        )
    if run.root_keys != roots:
        wrong_root = [a for a in roots if run.root_keys.get(a) != roots[a]]
        problems.append(f"root keys: {len(wrong_root)} accounts wrong, e.g. {wrong_root[:1]}")
    return problems


def walk_order(params: OrgParams) -> list[str]:
    """Account ids in the order orgscan's OU walk lists them (breadth first, accounts first)."""
    org = SimOrg(params)
    order: list[str] = []
    parents = deque([org.root.id])
    while parents:
        parent = parents.popleft()
        order += [a.id for a in org.accounts_of[parent]]
        parents += [ou.id for ou in org.ous_of[parent]]
    return order


def reread_counts(params: OrgParams) -> dict[str, int]:
    """Users per account the credential-report strategy reads again live with every rule on:
    those any rule could fail on the report's word (orgscan's own test of a report row)."""
    from orgscan.collect.credential_report import could_fail
    from orgscan.collect.usage import Needs
    from orgscan.config import default_rules
    from orgscan.model import AccessKey, KeySource, UserKeys

    def when(epoch: int | None) -> datetime | None:
        return None if epoch is None else datetime.fromtimestamp(epoch, UTC)

    now, org = datetime.now(UTC), SimOrg(params)
    counts = {}
    for account in org.accounts:
        rows = [
            UserKeys(
                account.id,
                user.name,
                user.arn,
                user.path,
                tuple(
                    AccessKey(
                        None,
                        "Active" if k.active else "Inactive",
                        when(k.created),
                        when(k.last_used),
                    )
                    for k in user.keys
                ),
                KeySource.CREDENTIAL_REPORT,
            )
            for user in org.users(account.id).users
        ]
        every_rule = Needs.of(default_rules())
        counts[account.id] = sum(could_fail(row, every_rule, now) for row in rows)
    return counts


def bound_kwargs(s: BenchScenario) -> dict[str, Any]:
    """The lower bound's model of the scenario, for orgscan's default: every rule on."""
    return {
        "latency": s.latency,
        # The capacity that is left when other tools take their share of IAM's limit.
        "iam_rate": s.iam_rate * (1.0 - s.iam_background),
        "global_rate": s.global_rate,
        "strategy": s.strategy,
        "report_delay": s.report_delay,
        "last_use": True,
        "reread": reread_counts(s.org) if s.strategy == "credential-report" else None,
    }


def bounds(s: BenchScenario, truth: dict[str, dict[str, int]]) -> tuple[Bound, float]:
    """The lower bound, and the bound for a client that assumes roles in the order orgscan's
    OU walk lists the accounts (not the simulator's own account order)."""
    kwargs = bound_kwargs(s)
    bound = lower_bound(Scenario.from_truth(truth, **kwargs))
    ordered = {account: truth[account] for account in walk_order(s.org)}
    return bound, lower_bound(Scenario.from_truth(ordered, **kwargs)).listing_order_seconds


# --- the run ----------------------------------------------------------------------------------

HEADER = (
    f"{'scenario':<14} {'accts':>5} {'users':>6} {'calls':>6} {'thr':>4} | "
    f"{'wall s':>7} {'cpu s':>6} {'cpu/1k':>6} {'rss MB':>6} | "
    f"{'bound s':>7} {'ratio':>5} {'order s':>7} {'ratio':>5} | "
    f"{'baseline s':>10} {'speed-up':>8} | check"
)


@dataclass(slots=True)
class Row:
    scenario: BenchScenario
    users: int
    calls: int
    throttles: int
    retried: int
    throttled: dict[str, int]
    run: OrgscanRun
    bound: Bound
    ordered_bound: float
    baseline_seconds: float | None
    baseline_estimated: bool
    problems: list[str]

    @property
    def cpu_per_1k(self) -> float:
        """CPU seconds per 1,000 calls the simulator answered."""
        return 1000 * self.run.cpu_seconds / self.calls

    def line(self) -> str:
        s, r = self.scenario, self.run
        if self.baseline_seconds is None:
            baseline = f"{'-':>10} {'-':>8}"
        else:
            mark = "~" if self.baseline_estimated else ""
            speedup = self.baseline_seconds / r.wall_seconds
            baseline = f"{mark + f'{self.baseline_seconds:.1f}':>10} {f'{speedup:.1f}x':>8}"
        return (
            f"{s.name:<14} {s.accounts:>5} {self.users:>6} {self.calls:>6} {self.throttles:>4} | "
            f"{r.wall_seconds:>7.2f} {r.cpu_seconds:>6.2f} {self.cpu_per_1k:>6.2f} "
            f"{r.peak_rss_mb:>6.0f} | "
            f"{self.bound.seconds:>7.2f} {r.wall_seconds / self.bound.seconds:>5.2f} "
            f"{self.ordered_bound:>7.2f} {r.wall_seconds / self.ordered_bound:>5.2f} | "
            f"{baseline} | {'ok' if not self.problems else 'WRONG'}"
        )

    def details(self) -> list[str]:
        r = self.run
        lines = []
        if self.throttled:
            lines.append(f"throttled: {self.throttled}, {self.retried} requests were retries")
        lines.append(
            f"event loop late by p99 {1000 * r.loop_lag_p99:.0f} ms, max "
            f"{1000 * r.loop_lag_max:.0f} ms; garbage collector {r.gc_seconds:.2f} s, longest "
            f"pause {1000 * r.gc_max_pause:.0f} ms"
        )
        lines.append(f"accounts {r.timeline}")
        return lines


def run_scenario(
    s: BenchScenario,
    *,
    overrides: dict[str, Any],
    options: dict[str, Any],
    profile_dir: Path | None,
    py_spy_dir: Path | None,
    baseline_rate: float | None,
    shards: int = 1,
    timeline_dir: Path | None = None,
) -> tuple[Row, float | None]:
    truth = ground_truth(s.org)
    bound, ordered = bounds(s, truth)
    profile = str(profile_dir / f"{s.name}.txt") if profile_dir else None
    if timeline_dir:
        options = {**options, "timeline_out": str(timeline_dir / f"{s.name}.json")}
    spy = str(py_spy_dir / f"{s.name}.raw") if py_spy_dir else None
    with tempfile.TemporaryDirectory() as tmp:
        if s.hinted:
            hint = str(Path(tmp) / "findings.json")
            with running_sim(s.sim) as url:
                run_orgscan(url, s.config(overrides), {**options, "hints_out": hint})
            options = {**options, "hints": hint}
        # Timed on a fresh simulator: of a first run, the hint is all that is kept.
        with running_sim(s.sim) as url:
            run = run_orgscan(url, s.config(overrides, shards), dict(options), profile, spy, shards)
            stats = sim_stats(url)
    baseline_seconds: float | None = None
    estimated = False
    if s.run_baseline:
        with running_sim(s.sim) as url:
            baseline_seconds, active = run_baseline_process(url)
        if active != truth:
            raise RuntimeError("the baseline's answer differs from the ground truth")
        baseline_rate = baseline_calls(truth) / baseline_seconds
    elif baseline_rate:
        baseline_seconds, estimated = baseline_calls(truth) / baseline_rate, True
    row = Row(
        scenario=s,
        users=sum(map(len, truth.values())),
        calls=stats["total_calls"],
        throttles=stats["total_throttles"],
        retried=stats["retried_requests"],
        throttled=stats["throttles"],
        run=run,
        bound=bound,
        ordered_bound=ordered,
        baseline_seconds=baseline_seconds,
        baseline_estimated=estimated,
        problems=check(run, truth, last_use_truth(s.org), root_truth(s.org)),
    )
    return row, baseline_rate


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str]) -> dict[str, Any]:
    return {key: _value(value) for key, _, value in (item.partition("=") for item in items)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="diagnostics under each line: throttles, event loop lateness, "
        "garbage collection, when accounts were listed and finished",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scan config key, e.g. max_accounts_in_flight=32",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a ScanOptions field, or an ablation (wire=false, tune_gc=false), or "
        'report_polling={"first_delay":1,"max_delay":10,"factor":2}',
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write a pyinstrument profile of each orgscan run to DIR (pip install pyinstrument)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="sample each orgscan run with py-spy (pip install py-spy) into "
        "DIR/<scenario>.raw; summarise with python -m bench.profile FILE",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="N",
        help="run N orgscan processes side by side, one shard each (orgscan scan --shard K/N), "
        "each with 1/N of the STS/Organizations limit",
    )
    parser.add_argument(
        "--timeline",
        type=Path,
        metavar="DIR",
        help="write DIR/<scenario>.json: per account, when its role was asked for and assumed, "
        "when it finished, its users, IAM calls and throttles (seconds from the scan's start)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    names = args.scenarios or [name for name, s in SCENARIOS.items() if s.default]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    overrides, options = _pairs(args.set), _pairs(args.option)
    for directory in (args.profile, args.py_spy, args.timeline):
        if directory:
            directory.mkdir(parents=True, exist_ok=True)
    # The baseline's per-call time from `small` estimates it elsewhere: measure it first.
    order = sorted(names, key=lambda n: not SCENARIOS[n].run_baseline)
    started = time.perf_counter()
    print(
        f"orgscan benchmark on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; 30 ms a "
        f"call; credential reports take {REPORT_DELAY:g} s"
        + (f"; config {overrides}" if overrides else "")
        + (f"; options {options}" if options else "")
        + (f"; {args.shards} shards side by side" if args.shards > 1 else ""),
        flush=True,
    )
    print(HEADER, flush=True)
    rows: dict[str, Row] = {}
    baseline_rate: float | None = None
    for name in order:
        row, baseline_rate = run_scenario(
            SCENARIOS[name],
            overrides=overrides,
            options=options,
            profile_dir=args.profile,
            py_spy_dir=args.py_spy,
            baseline_rate=baseline_rate,
            shards=args.shards,
            timeline_dir=args.timeline,
        )
        rows[name] = row
        print(row.line(), flush=True)
        for line in row.details() if args.verbose else []:
            print(f"  {line}", flush=True)
        for problem in row.problems:
            print(f"  WRONG: {problem}", flush=True)
    print(
        "bound: no client finishes sooner; order: the same, roles assumed in orgscan's listing "
        "order; cpu/1k: CPU seconds per 1,000 calls; ~: estimated from small's baseline",
        flush=True,
    )
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    name: {
                        "wall_seconds": row.run.wall_seconds,
                        "cpu_seconds": row.run.cpu_seconds,
                        "cpu_per_1k_calls": row.cpu_per_1k,
                        "peak_rss_mb": row.run.peak_rss_mb,
                        "calls": row.calls,
                        "throttles": row.throttles,
                        "bound": row.bound.seconds,
                        "listing_order_bound": row.ordered_bound,
                        "baseline_seconds": row.baseline_seconds,
                        "baseline_estimated": row.baseline_estimated,
                        "problems": row.problems,
                        "details": row.details(),
                    }
                    for name, row in rows.items()
                },
                indent=2,
            )
        )
    return 1 if any(row.problems for row in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
