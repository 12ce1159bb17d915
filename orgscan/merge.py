"""`orgscan merge`: shard outputs → one consistent package, as if one run had scanned them all.

Each account is taken from the shard that owns it (the same stable hash the scan used), so an
account listed by several shards is never counted twice, and a missing shard makes the merged
run incomplete rather than silently smaller. Completeness is derived from the accounts chosen,
never taken from a shard's stored flag, and shards taken too far apart are refused: a merged
package must not present weeks-old evidence as one sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from orgscan.accounts import Shard
from orgscan.model import (
    AccountResult,
    Finding,
    RunInfo,
    ScanError,
    ScanResult,
    ScanStatus,
    evidence_complete,
    iso,
    new_run_id,
)

# Shards further apart than this are not one sweep; `orgscan merge --window` changes it.
DEFAULT_WINDOW = timedelta(days=7)


class MergeError(Exception):
    """The inputs are not shards of one sweep."""


def _within(results: Sequence[ScanResult], window: timedelta) -> None:
    """From the first shard's start to the last shard's end must fit in `window`."""
    first = min(results, key=lambda r: r.run.started_at)
    last = max(results, key=lambda r: r.run.finished_at or r.run.started_at)
    end = last.run.finished_at or last.run.started_at
    spread = end - first.run.started_at
    if spread > window:
        raise MergeError(
            f"the shards are {_days(spread)} apart (shard {first.run.shard} started "
            f"{iso(first.run.started_at)}, shard {last.run.shard} finished {iso(end)}), more "
            f"than one sweep's window of {_days(window)}; rescan the older shards, or pass "
            "--window DAYS if evidence that far apart is acceptable"
        )


def _days(span: timedelta) -> str:
    return f"{round(span.total_seconds() / 86400, 2):g} days"


def _shards(results: Sequence[ScanResult]) -> list[Shard]:
    shards = []
    for result in results:
        if result.run.shard is None:
            raise MergeError(f"run {result.run.id} is not a shard (it was scanned without --shard)")
        shards.append(Shard.parse(result.run.shard))
    if len({s.count for s in shards}) != 1:
        raise MergeError(
            f"the shards split the organization differently: {sorted(map(str, shards))}"
        )
    if len({s.index for s in shards}) != len(shards):
        raise MergeError(f"a shard is given twice: {sorted(map(str, shards))}")
    for field, label in (("organization_id", "organizations"), ("config_digest", "configs")):
        values = {getattr(r.run, field) for r in results}
        if len(values) != 1:
            raise MergeError(f"the shards come from different {label}: {', '.join(sorted(values))}")
    return shards


def _pick(
    candidates: list[AccountResult], owner: AccountResult | None, owner_present: bool, count: int
) -> AccountResult:
    """The owning shard's record, else one that really scanned the account.

    Another shard's "belongs to shard K" skip is never final: if the owner never listed the
    account (it joined the organization between the shard runs), nobody scanned it.
    """
    if owner is not None:
        return owner
    scanned = [c for c in candidates if c.scan_status is not ScanStatus.SKIPPED]
    if scanned:
        return scanned[0]
    account = candidates[0].account
    if owner_present:
        return AccountResult(
            account,
            ScanStatus.FAILED,
            error=ScanError(
                "NotScannedByOwningShard",
                f"shard {Shard.owner(account.id, count)}/{count} owns this account but did not "
                "list it; it joined the organization between the shard runs",
            ),
        )
    return candidates[0]


def merge(results: Sequence[ScanResult], window: timedelta = DEFAULT_WINDOW) -> ScanResult:
    if not results:
        raise MergeError("nothing to merge")
    shards = _shards(results)
    _within(results, window)
    count = shards[0].count
    by_index = dict(zip((s.index for s in shards), results, strict=True))
    listed: dict[str, list[AccountResult]] = {}
    for result in results:
        for account in result.accounts:
            listed.setdefault(account.account.id, []).append(account)
    accounts, findings = [], []
    for account_id, candidates in sorted(listed.items()):
        owner_run = by_index.get(Shard.owner(account_id, count))
        owned = (
            next((a for a in owner_run.accounts if a.account.id == account_id), None)
            if owner_run
            else None
        )
        chosen = _pick(candidates, owned, owner_run is not None, count)
        accounts.append(chosen)
        source = next((r for r in results if chosen in r.accounts), None)
        if source:
            findings += [f for f in source.findings if f.account_id == account_id]
    missing = sorted(set(range(1, count + 1)) - set(by_index))
    errors = [ScanError("ShardMissing", f"shard {i}/{count} was not merged") for i in missing]
    errors += [
        ScanError(e.code, f"shard {r.run.shard}: {e.message}")
        for r in results
        for e in r.run.errors
    ]
    first = results[0].run
    run = RunInfo(
        id=new_run_id(),
        started_at=min(r.run.started_at for r in results),
        finished_at=max((r.run.finished_at for r in results if r.run.finished_at), default=None),
        tool_version=first.tool_version,
        caller_arn=first.caller_arn,
        organization_id=first.organization_id,
        management_account_id=first.management_account_id,
        partition=first.partition,
        strategy=first.strategy,
        role_name=first.role_name,
        config_digest=first.config_digest,
        limits=first.limits,
        api_calls=sum(r.run.api_calls for r in results),
        errors=errors,
        warnings=sorted({w for r in results for w in r.run.warnings}),
        interrupted=next((r.run.interrupted for r in results if r.run.interrupted), None),
        rules=first.rules,  # the same in every shard: the config digests matched
    )
    merged = ScanResult(
        run=run,
        accounts=accounts,
        findings=sorted(findings, key=_finding_order),
        exceptions=results[0].exceptions,
        controls=results[0].controls,
    )
    merged.run.complete = evidence_complete(merged)
    return merged


def _finding_order(finding: Finding) -> str:
    # By account alone: the sort is stable, so each account keeps its shard's order (rule by
    # rule, as evaluation wrote them).
    return finding.account_id
