"""The text a run prints when it ends: the scan's summary, a delta, a package's sweep status.

Read only from the result, like every other rendering; the CLI echoes it.
"""

from __future__ import annotations

from pathlib import Path

from orgscan.model import Change, Delta, FindingState, ScanResult, ScanStatus


def scan_summary(result: ScanResult, files: list[Path]) -> str:
    accounts = len(result.accounts)
    scanned = len(result.accounts_with(ScanStatus.SCANNED))
    partial = result.accounts_with(ScanStatus.PARTIAL)
    failed = result.accounts_with(ScanStatus.FAILED)
    skipped = len(result.accounts_with(ScanStatus.SKIPPED))
    unreadable = sum(1 for user in result.users if user.error)
    lines = [
        f"accounts: {scanned} scanned, {len(partial)} partial, {len(failed)} failed, "
        f"{skipped} skipped (of {accounts})",
        f"users:    {len(result.users)}"
        + (f" ({unreadable} could not be read)" if unreadable else ""),
        f"findings: {len(result.findings_in(FindingState.OPEN))} open, "
        f"{len(result.findings_in(FindingState.EXCEPTED))} excepted "
        f"(users with more than one active access key)",
    ]
    lines += [
        f"failed:   {r.account.id} ({r.account.name}): {r.error.code}" for r in failed if r.error
    ]
    lines += [
        f"partial:  {r.account.id} ({r.account.name}): "
        + (
            f"{len(r.unreadable_users)} user(s) could not be read ("
            + ", ".join(sorted({u.error.code for u in r.unreadable_users if u.error}))
            + ")"
            if r.unreadable_users
            else "the last use of some keys is unknown"
        )
        for r in partial
    ]
    lines += [f"error:    {e.code}: {e.message}" for e in result.run.errors]
    lines += [f"warning:  {w}" for w in result.run.warnings]
    status = (
        "complete" if result.run.complete else "INCOMPLETE: not every account was fully scanned"
    )
    lines.append(f"scan:     {status}")
    if result.delta:
        lines.append(delta_text(result.delta, result))
    lines += [f"wrote:    {path}" for path in files]
    return "\n".join(lines)


def delta_text(delta: Delta, current: ScanResult) -> str:
    names = {a.account.id: a.account.name for a in current.accounts}
    counts = ", ".join(f"{len(delta.of(c))} {c}" for c in Change)
    lines = [f"since run {delta.baseline_run_id}: {counts}"]
    lines += [
        f"  {c.change:<10} {c.account_id} ({names.get(c.account_id, '?')}) {c.arn}"
        + (f"\n             {c.reason}" if c.reason else "")
        for c in delta.findings
        if c.change is not Change.UNCHANGED
    ]
    for label, ids in (
        ("accounts added", delta.accounts_added),
        ("accounts removed", delta.accounts_removed),
        ("coverage lost", delta.coverage_lost),
        ("coverage gained", delta.coverage_gained),
    ):
        if ids:
            lines.append(f"{label}: {', '.join(ids)}")
    return "\n".join(lines)


def sweep_text(evidence: ScanResult | None) -> str:
    """Whether the sweep was complete, as findings.json's own accounts show."""
    if evidence is None:
        return "UNKNOWN: findings.json cannot be read"
    counts = (
        f"{len(evidence.accounts_with(ScanStatus.SCANNED))} scanned, "
        f"{len(evidence.accounts_with(ScanStatus.SKIPPED))} skipped, "
        f"of {len(evidence.accounts)} accounts"
    )
    if evidence.run.complete:
        return f"complete ({counts})"
    seen = (ScanStatus.SCANNED, ScanStatus.SKIPPED)
    missing = [a for a in evidence.accounts if a.scan_status not in seen]
    why = [f"{a.account.id}: {a.scan_status}" for a in missing[:5]]
    if len(missing) > 5:
        why.append(f"and {len(missing) - 5} more")
    why += [f"{e.code}: {e.message}" for e in evidence.run.errors]
    if evidence.run.interrupted:
        why.append(f"interrupted by {evidence.run.interrupted}")
    return f"INCOMPLETE ({counts}; " + "; ".join(why) + ")"
