"""The evidence codec's cost: `python -m bench.codec` from the repository root.

Encodes and decodes (as `evidence.read` does, from the file's bytes) the findings.json of a
25,000-user organization (50 accounts of 500 users, one in ten with two active keys), and
prints the best of five runs of each, with the file's size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from orgscan import evidence
from orgscan.evaluate import evaluate
from orgscan.model import (
    AccessKey,
    Account,
    AccountResult,
    Limits,
    RuleSettings,
    RunInfo,
    ScanResult,
    ScanStatus,
    UserKeys,
)
from orgscan.rules import MULTIPLE_ACTIVE_KEYS

ACCOUNTS, USERS = 50, 500
T = datetime(2025, 1, 1, tzinfo=UTC)


def _keys(account: int, user: int) -> tuple[AccessKey, ...]:
    return tuple(
        AccessKey(
            f"AKIA{account:04d}{user:06d}{k:06d}",
            "Active",
            T + timedelta(days=k),
            T + timedelta(days=9) if k else None,
            "s3" if k else None,
            "us-east-1" if k else None,
        )
        for k in range(2 if user % 10 == 0 else 1)
    )


def result() -> ScanResult:
    accounts = []
    for a in range(ACCOUNTS):
        aid = f"{100000000000 + a}"
        users = [
            UserKeys(aid, f"u{u}", f"arn:aws:iam::{aid}:user/u{u}", "/", _keys(a, u))
            for u in range(USERS)
        ]
        account = Account(aid, f"acct{a}", "e@example.com", "ACTIVE", "Root/P", ("r-1",))
        accounts.append(
            AccountResult(account, ScanStatus.SCANNED, users=users, scanned_at=T, api_calls=501)
        )
    run = RunInfo(
        "20250101T000000Z-00000000",
        T,
        T,
        "0.1.0",
        "arn:aws:sts::100000000000:assumed-role/Auditor/a",
        "o-abcdefghij",
        "100000000000",
        "aws",
        "live",
        "OrgScanAudit",
        "sha256:" + "0" * 64,
        Limits(8, 20.0, 10.0, 8, 30.0),
        rules=[RuleSettings(MULTIPLE_ACTIVE_KEYS)],
    )
    return ScanResult(run, accounts, evaluate(accounts, run.rules, [], "aws", T))


def best(call: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    scan = result()
    data = evidence.encode(scan)
    print(f"{len(scan.users)} users, {len(scan.findings)} findings, {len(data):,} bytes")
    print(f"encode {best(lambda: evidence.encode(scan)):.3f} s")
    print(f"decode {best(lambda: evidence.decode(json.loads(data), 'bench', data)):.3f} s")


if __name__ == "__main__":
    main()
