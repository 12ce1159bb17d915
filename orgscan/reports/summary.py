"""The text the CLI prints: the scan's summary, a delta, a package's sweep status and
verification, an upload, a remediation journal's outcome and the rollback's dialogue.

Read only from the result or from plain data the CLI passes, like every other rendering (this
package never imports remediation or the AWS wing); the CLI echoes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from orgscan.model import Change, Delta, FindingChange, FindingState, ScanResult, ScanStatus
from orgscan.reports.manifest import PackageCheck


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
        f"{len(result.findings_in(FindingState.EXCEPTED))} excepted",
    ]
    width = max((len(rule.rule_id) for rule in result.summary.rules), default=0)
    lines += [
        f"  {rule.rule_id + ':':<{width + 1}} {rule.findings_open} open, "
        f"{rule.findings_excepted} excepted"
        + (
            f"; could not judge {rule.accounts_incomplete} account(s) fully"
            if rule.accounts_incomplete
            else ""
        )
        for rule in result.summary.rules
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
    """The delta's counts, then per rule (this run's rules in report order, then any only the
    baseline had), then each finding that changed, with its rule and resource."""
    names = {a.account.id: a.account.name for a in current.accounts}

    def counts(changes: Sequence[FindingChange]) -> str:
        return ", ".join(f"{sum(1 for f in changes if f.change is c)} {c}" for c in Change)

    lines = [f"since run {delta.baseline_run_id}: {counts(delta.findings)}"]
    rules = [rule.id for rule in current.run.rules]
    rules += sorted({f.rule_id for f in delta.findings} - set(rules))
    width = max(map(len, rules), default=0)
    for rule_id in rules:
        own = [f for f in delta.findings if f.rule_id == rule_id]
        lines.append(f"  {rule_id + ':':<{width + 1}} {counts(own)}")
    lines += [
        f"  {c.change:<10} {c.account_id} ({names.get(c.account_id, '?')}) {c.rule_id} {c.arn}"
        + (f" key {c.resource_id}" if c.resource_id != c.arn else "")
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


def verify_text(check: PackageCheck, key_checked: bool, shown: str) -> tuple[list[str], list[str]]:
    """`orgscan verify`'s lines: (to stderr, the mismatches; to stdout, the rest)."""
    errors = [f"MISMATCH {problem}" for problem in check.problems]
    lines = [f"note:    {note}" for note in check.notes]
    lines.append(f"sweep:   {sweep_text(check.evidence)}")
    lines += [f"signed:  {line}" for line in check.signed]
    if not key_checked:
        lines.append("signed:  not checked (pass --key PUBLIC.pem or --key awskms:///...)")
    if check.problems:
        lines.append(f"{shown}: NOT verified ({len(check.problems)} problem(s))")
        return errors, lines
    rendered = "" if check.notes else " and every report re-renders from findings.json"
    signed = "; the attestation's signature and every signed file hold" if key_checked else ""
    lines.append(f"{shown}: verified; every file matches manifest.json{rendered}{signed}")
    return errors, lines


class StoredObject(Protocol):
    """An uploaded object as S3 reports it (publish's `Stored`), as far as the text reads it."""

    @property
    def key(self) -> str: ...
    @property
    def lock_mode(self) -> str | None: ...
    @property
    def retain_until(self) -> datetime | None: ...


def upload_text(
    location: str,
    bucket: str,
    stored: Sequence[StoredObject],
    kept: Sequence[StoredObject],
    problems: Sequence[str],
) -> tuple[list[str], list[str]]:
    """An upload's lines: (to stdout, then to stderr); incomplete when there are problems."""

    def lock(item: StoredObject) -> str:
        return f", {item.lock_mode} until {item.retain_until}" if item.lock_mode else ""

    lines = [f"uploaded: {bucket}/{s.key} (sha256 verified{lock(s)})" for s in stored]
    lines += [f"kept:     {bucket}/{s.key} (already there{lock(s)})" for s in kept]
    errors = [f"error:    upload: {problem}" for problem in problems]
    if problems:
        errors.append(f"upload:   INCOMPLETE: {location} is not a whole package")
    else:
        lines.append(f"upload:   {location}: every file written and read back")
    return lines, errors


def journal_text(
    path: Path,
    counts: Mapping[str, int],
    others: Sequence[tuple[str, str, str, str | None]],
    interrupted: str | None,
) -> str:
    """A remediation run's outcome. `counts`: per outcome, in the order shown (a zero
    "pending" is left out); `others`: (outcome, arn, key id, reason) of each entry that did
    not end as asked; `interrupted`: the signal's name, if one stopped it."""
    shown = ", ".join(f"{n} {o}" for o, n in counts.items() if o != "pending" or n)
    lines = [f"{shown}; journal: {path}"]
    lines += [f"  {o:<8} {arn} {key}: {reason}" for o, arn, key, reason in others]
    if interrupted:
        lines.append(
            f"interrupted by {interrupted}: no key was started after it; every change "
            "sent was finished and re-read, or is listed as pending"
        )
    return "\n".join(lines)


# The rollback's dialogue.


def unfinished_warning(journal: Path) -> str:
    return (
        f"{journal} has no end line: its apply crashed, or is still running, and "
        "a rollback alongside a running apply races it"
    )


UNFINISHED_QUESTION = "Roll back this unfinished apply?"
PENDING_KEPT = "  pending keys stay as they are (--include-pending re-activates them)"


def nothing_to_undo(journal: Path) -> str:
    return f"{journal}: it records no change to undo; nothing to do"


def undo_lines(deactivated: int, pending: Sequence[tuple[str, str, str | None]]) -> list[str]:
    """What a rollback would undo; `pending`: (arn, key id, reason) of each pending change."""
    lines = [f"  {deactivated} key(s) deactivated by this apply"]
    lines += [f"  pending  {arn} {key}: {reason}" for arn, key, reason in pending]
    return lines


def reactivate_question(deactivated: int) -> str:
    return f"Re-activate the {deactivated} key(s) it deactivated?"


def pending_question(pending: int) -> str:
    return (
        f"Also re-activate the {pending} pending key(s) above where they "
        "are Inactive? orgscan sent their change but never saw it confirmed, so it "
        "cannot show that it made them Inactive (someone may have, by hand)"
    )
