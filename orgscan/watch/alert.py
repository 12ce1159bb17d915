"""What the watch publishes for a violation: a renderer turns a result into a message.

The SNS message is JSON that carries the sweep's SARIF identity for the user
(`partialFingerprints.primaryLocationLineHash`), so a dashboard that ingests both sees one alert
per user, not one per channel. Renderers are plain functions of a `WatchResult`: an ASFF or OCSF
renderer (issue 13) would be one more `Renderer` here, with a sink of its own where SNS is not
the destination (Security Hub takes ASFF through BatchImportFindings).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from orgscan import __version__
from orgscan.model import AccessKey, ApprovedException, iso, utcnow
from orgscan.watch.result import WatchResult

KIND = "orgscan-watch-alert"
VERSION = 1
SUBJECT_MAX = 100  # SNS: ASCII, no line breaks, at most 100 characters


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)  # SNS message attributes


Renderer = Callable[[WatchResult], Message]


def _key(key: AccessKey) -> dict[str, str | None]:
    return {
        "id": key.id,
        "status": key.status,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "last_used_service": key.last_used_service,
        "last_used_region": key.last_used_region,
        # Unknown, not "never": the read of its last use failed.
        "last_used_error": (
            f"{key.last_used_error.code}: {key.last_used_error.message}"
            if key.last_used_error
            else None
        ),
    }


def _exception(exception: ApprovedException | None) -> dict[str, str | None] | None:
    if exception is None:
        return None
    return {
        "reason": exception.reason,
        "owner": exception.owner,
        "expires": exception.expires.isoformat(),
        "ticket": exception.ticket,
    }


def render_json(result: WatchResult) -> Message:
    """The finding as JSON, with the sweep's fingerprint; for VIOLATION and EXCEPTED results."""
    finding, user, event = result.finding, result.user, result.event
    if finding is None or user is None or result.fingerprint is None:
        raise ValueError(f"nothing to alert on: the result is {result.verdict}")
    body = {
        "kind": KIND,
        "version": VERSION,
        "rule_id": finding.rule_id,
        "severity": finding.severity,
        "state": str(finding.state),
        "partialFingerprints": {"primaryLocationLineHash": result.fingerprint},
        "account_id": user.account_id,
        "user_name": user.user_name,
        "arn": user.arn,
        "active_key_count": user.active_key_count,
        "access_keys": [_key(k) for k in user.access_keys],
        "exception": _exception(finding.exception),
        "expired_exception": _exception(finding.expired_exception),
        "event": {
            "name": event.event_name,
            "id": event.event_id,
            "time": iso(event.event_time),
            "caller_arn": event.caller_arn,
            "access_key_id": event.access_key_id,
        },
        "notes": list(result.notes),
        "detected_at": iso(utcnow()),
        "tool_version": __version__,
    }
    subject = (
        f"orgscan: {user.user_name} in {user.account_id} has "
        f"{user.active_key_count} active access keys"
    )
    # IAM names are ASCII already; the guard keeps SNS's subject rules whatever comes in.
    subject = "".join(c if " " <= c <= "~" else "?" for c in subject)[:SUBJECT_MAX]
    return Message(
        subject=subject,
        body=json.dumps(body, indent=2, sort_keys=True),
        attributes={
            "rule_id": finding.rule_id,
            "account_id": user.account_id,
            "fingerprint": result.fingerprint,
            "state": str(finding.state),
        },
    )
