"""The progress bar: log lines land above it, never glued onto it; nothing is drawn off a TTY."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from io import StringIO

import pytest
from rich.console import Console

from orgscan.demo.faults import Fault
from orgscan.demo.seed import AccountSpec, OrgSpec
from orgscan.logs import setup_logging
from orgscan.model import Account, AccountResult, ScanStatus
from orgscan.progress import Progress, TerminalProgress, progress_for
from orgscan.scanner import scan
from tests.conftest import config, seed

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def as_a_terminal_shows(written: str) -> list[str]:
    """Each line as it ends up on screen: a carriage return starts the line over."""
    return [ANSI.sub("", line.rsplit("\r", 1)[-1]).rstrip() for line in written.split("\n")]


@pytest.fixture
def orgscan_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging(False)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_a_warning_mid_scan_prints_above_the_bar_not_on_it(aws, orgscan_logging):
    seeded = seed(aws, OrgSpec(accounts=(AccountSpec("ok", "Root"), AccountSpec("denied", "Root"))))
    denied = seeded.account_ids["denied"]
    aws.inject([Fault(action="AssumeRole", account=denied, error="AccessDenied", message="no")])
    screen = StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100, color_system=None)

    await scan(config(), progress=TerminalProgress(terminal))

    shown = [line for line in as_a_terminal_shows(screen.getvalue()) if line]
    assert f"WARNING orgscan.scanner: account {denied} failed: AccessDenied: no" in shown
    assert not [line for line in shown if "WARNING" in line and "accounts" in line]
    assert "3/3 accounts, 1 failed, 0 partial" in shown[-1]
    # Once the bar is gone, log lines go back to plain stderr.
    drawn = screen.getvalue()
    logging.getLogger("orgscan.scanner").warning("after the scan")
    assert screen.getvalue() == drawn


def test_the_bar_counts_partial_accounts_apart_from_failed_ones():
    # A partial account is neither done-and-clean nor failed; the bar says how many there are.
    screen = StringIO()
    progress = TerminalProgress(Console(file=screen, force_terminal=True, width=100))
    accounts = [Account(f"11112222333{n}", "a", "a@example.com", "ACTIVE", "Root") for n in (1, 2)]
    for _ in accounts:
        progress.listed()
    progress.listing_done()
    progress.finished(AccountResult(accounts[0], ScanStatus.PARTIAL))
    progress.finished(AccountResult(accounts[1], ScanStatus.FAILED))
    progress.close()
    shown = [line for line in as_a_terminal_shows(screen.getvalue()) if line]
    assert "2/2 accounts, 1 failed, 1 partial" in shown[-1]


async def test_a_cancelled_scan_still_takes_its_bar_down(aws):
    """A second Ctrl-C cancels the scan; a rich bar left up would keep the cursor hidden."""
    seeded = seed(aws, OrgSpec(accounts=(AccountSpec("quick"), AccountSpec("slow"))))
    aws.inject([Fault(action="ListUsers", account=seeded.account_ids["slow"], delay=1.0)])
    first = asyncio.Event()

    class Watched(Progress):
        closed = False

        def finished(self, result: AccountResult) -> None:
            super().finished(result)
            first.set()

        def close(self) -> None:
            self.closed = True

    progress = Watched()
    running = asyncio.create_task(scan(config(), progress=progress))
    await first.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert progress.closed


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_or_quiet_nothing_is_drawn(monkeypatch):
    # rich would treat any stream as a terminal under FORCE_COLOR; a CI log must stay clean.
    monkeypatch.setenv("FORCE_COLOR", "1")
    account = Account("111122223333", "a", "a@example.com", "ACTIVE", "Root")
    for quiet, screen in ((False, StringIO()), (True, Terminal())):
        progress = progress_for(quiet, Console(file=screen))
        progress.listed()
        progress.finished(AccountResult(account, ScanStatus.FAILED))
        progress.close()
        assert type(progress) is Progress
        assert screen.getvalue() == ""
    assert isinstance(progress_for(False, Console(file=Terminal())), TerminalProgress)
