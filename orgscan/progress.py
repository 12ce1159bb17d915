"""A progress bar on stderr for long scans (rich), with log lines printed above it, never onto
it; nothing is drawn when stderr is not a terminal."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from orgscan.logs import print_through
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

    # The scan holds its progress in `async with`, so close() runs however the scan ends: a
    # bar left drawn after a second Ctrl-C would keep the terminal's cursor hidden.
    async def __aenter__(self) -> Progress:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TerminalProgress(Progress):
    """The bar, drawn by rich on `console`. While it is drawn, orgscan's log handler writes
    through the same console, which prints each line above the bar."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console
        # rich redraws from its own thread, ten times a second at most, whatever the call rate.
        self._bar = Bar(
            BarColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=console
        )
        self._task = self._bar.add_task("accounts", total=None, counts="")
        self._drawn = False

    def update(self) -> None:
        total = f"{self.total}+" if self.listing else str(self.total)
        self._bar.update(
            self._task,
            total=self.total or None,
            completed=self.done,
            counts=f"{self.done}/{total} accounts, {self.failed} failed, {self.partial} partial",
        )
        if not self._drawn:
            self._drawn = True
            print_through(self._console)
            self._bar.start()

    def close(self) -> None:
        if self._drawn:
            self._drawn = False
            self._bar.stop()
            print_through(None)


def progress_for(quiet: bool, console: Console | None = None) -> Progress:
    """A bar only when stderr is a real terminal: a file or a CI log gets no control codes,
    even where FORCE_COLOR makes rich treat it as one."""
    console = console or Console(stderr=True)
    if quiet or not console.file.isatty():
        return Progress()
    return TerminalProgress(console)
