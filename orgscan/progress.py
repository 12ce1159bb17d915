"""A one-line progress bar on stderr for long scans; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from orgscan.model import AccountResult, ScanStatus


class Progress:
    """Counts accounts as they are listed and finished. The base class shows nothing."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0
        self.partial = 0
        self.listing = True

    def listed(self) -> None:
        self.total += 1
        self.update()

    def finished(self, result: AccountResult) -> None:
        self.done += 1
        self.failed += result.scan_status is ScanStatus.FAILED
        self.partial += result.scan_status is ScanStatus.PARTIAL
        self.update()

    def listing_done(self) -> None:
        self.listing = False
        self.update()

    def update(self) -> None:
        """Subclasses draw."""

    def close(self) -> None:
        """Subclasses clean up."""


class TerminalProgress(Progress):
    WIDTH = 30
    INTERVAL = 0.1  # redraw at most ten times a second; each account would be too many

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self._stream = stream
        self._drawn = 0.0

    def update(self) -> None:
        now = time.monotonic()
        if now - self._drawn < self.INTERVAL and self.done < self.total:
            return
        self._drawn = now
        share = self.done / self.total if self.total else 0.0
        bar = "#" * int(share * self.WIDTH)
        total = f"{self.total}+" if self.listing else str(self.total)
        self._stream.write(
            f"\r[{bar:<{self.WIDTH}}] {self.done}/{total} accounts, {self.failed} failed, "
            f"{self.partial} partial "
        )
        self._stream.flush()

    def close(self) -> None:
        self._drawn = 0.0
        self.update()
        self._stream.write("\n")
        self._stream.flush()


def progress_for(quiet: bool, stream: TextIO = sys.stderr) -> Progress:
    if quiet or not stream.isatty():
        return Progress()
    return TerminalProgress(stream)
