"""What the watch concludes about one key event: the verdict and its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orgscan.model import Finding, ScanError, UserKeys
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, fingerprint
from orgscan.watch.events import KeyEvent


class Verdict(StrEnum):
    VIOLATION = "violation"  # an open finding: more than one active key, no valid exception
    EXCEPTED = "excepted"  # the rule fails, but an approved exception covers the user
    COMPLIANT = "compliant"
    GONE = "gone"  # the user no longer exists: nothing to evaluate, not an error
    IGNORED = "ignored"  # the event cannot have added an active key of an IAM user
    UNREADABLE = "unreadable"  # the account, or the user's keys, could not be read


@dataclass(frozen=True, slots=True)
class WatchResult:
    event: KeyEvent
    verdict: Verdict
    user: UserKeys | None = None  # the user's keys as read live
    finding: Finding | None = None  # for VIOLATION and EXCEPTED
    notes: tuple[str, ...] = ()
    error: ScanError | None = None  # for UNREADABLE

    @property
    def fingerprint(self) -> str | None:
        """The sweep's SARIF partialFingerprints.primaryLocationLineHash for this user."""
        return fingerprint(MULTIPLE_ACTIVE_KEYS, self.user.arn) if self.user else None
