"""A watch result as text: the CLI's report (`describe`) and the Lambda's one-line JSON log
(`summary`). No AWS calls here; the SNS alert is `alert.py`'s."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orgscan.model import AccessKey, iso
from orgscan.watch.result import WatchResult


def summary(result: WatchResult) -> dict[str, Any]:
    """One line of JSON-able facts about a result, for logs: no key material, no event body."""
    return {
        "verdict": str(result.verdict),
        "event": result.event.event_name,
        "event_id": result.event.event_id,
        "account_id": result.event.account_id,
        "user_name": result.event.user_name,
        "arn": result.user.arn if result.user else None,
        "fingerprint": result.fingerprint,
        "error": f"{result.error.code}: {result.error.message}" if result.error else None,
        "notes": list(result.notes),
    }


def _date(value: datetime | None) -> str:
    return iso(value) or "unknown"


def _key_line(key: AccessKey) -> str:
    created = f"created {_date(key.created_at)}"
    if key.last_used_error is not None:
        used = f"last use unknown ({key.last_used_error.code})"  # not "never used"
    elif key.last_used_at is None:
        used = "never used" if key.active else ""
    else:
        where = ", ".join(p for p in (key.last_used_service, key.last_used_region) if p)
        used = f"last used {_date(key.last_used_at)}" + (f" ({where})" if where else "")
    return ", ".join(p for p in (f"{key.id} {key.status}", created, used) if p)


def describe(result: WatchResult) -> str:
    """The result as the CLI prints it: the verdict first, then the evidence."""
    event, user = result.event, result.user
    lines: list[str] = []
    if user is None:
        subject = f"user {event.user_name}" if event.user_name else "the caller's own access key"
        lines.append(f"{result.verdict.upper():<10} {subject} in account {event.account_id}")
    else:
        active = [k.id or "?" for k in user.access_keys if k.active]
        count = f"{len(active)} active access key{'' if len(active) == 1 else 's'}"
        lines.append(f"{result.verdict.upper():<10} {user.arn} has {count}")
        lines.append(f"  account:     {user.account_id}")
        for index, key in enumerate(user.access_keys):
            lines.append(f"  {'keys:' if index == 0 else '':<12} {_key_line(key)}")
    if result.finding is not None:
        finding = result.finding
        lines.append(f"  rule:        {finding.rule_id} ({finding.severity})")
        lines.append(f"  fingerprint: {result.fingerprint}")
        exception = finding.exception or finding.expired_exception
        if exception is not None:
            state = "approved" if finding.exception else "EXPIRED"
            ticket = f", ticket {exception.ticket}" if exception.ticket else ""
            lines.append(
                f"  exception:   {state}: {exception.reason} (owner {exception.owner}, "
                f"expires {exception.expires.isoformat()}{ticket})"
            )
    if result.error is not None:
        lines.append(f"  error:       {result.error.code}: {result.error.message}")
    when = f" at {iso(event.event_time)}" if event.event_time else ""
    by = f" by {event.caller_arn}" if event.caller_arn else ""
    eid = f" {event.event_id}" if event.event_id else ""
    lines.append(f"  event:       {event.event_name}{eid} in {event.account_id}{when}{by}")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)
