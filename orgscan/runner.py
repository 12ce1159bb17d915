"""The process around a run: signals, the collector's settings, the package's delivery (signed,
uploaded) and the exit code it ends with.

The CLI's commands call these; `scan()` and remediation know nothing of signals or processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from orgscan.accounts import Hints, Shard
from orgscan.attestation import LocalSigner, Signer
from orgscan.config import Config, ScanConfig
from orgscan.model import FindingState, ScanResult
from orgscan.progress import Progress
from orgscan.publish import PublishError, Retention, S3Location, Upload, download, publish
from orgscan.remediation.apply import Journal, Outcome, Stop
from orgscan.scanner import scan
from orgscan.signing import SigningError, load_public_key

log = logging.getLogger("orgscan")


class ExitCode(IntEnum):
    CLEAN = 0
    FINDINGS = 1
    USAGE = 2
    INCOMPLETE = 3
    INTERRUPTED = 130


class FailOn(StrEnum):
    OPEN = "open"
    NEVER = "never"


HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_code(result: ScanResult, fail_on: FailOn) -> ExitCode:
    """Incomplete beats findings: a partial sweep must never read as a finished one."""
    if not result.run.complete:
        return ExitCode.INCOMPLETE
    if fail_on is FailOn.OPEN and result.findings_in(FindingState.OPEN):
        return ExitCode.FINDINGS
    return ExitCode.CLEAN


def journal_exit_code(journal: Journal) -> int:
    """A signal's shell code after an interruption; 3 while any change failed or is pending
    (a pending change has an unknown result: as much in need of attention as a failure);
    1 when keys were skipped; else 0."""
    if journal.interrupted:
        return 128 + signal.Signals[journal.interrupted]
    if journal.count(Outcome.FAILED) or journal.count(Outcome.PENDING):
        return ExitCode.INCOMPLETE
    return ExitCode.FINDINGS if journal.count(Outcome.SKIPPED) else ExitCode.CLEAN


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happens to a package once written: signed, uploaded. Checked before any scan.
    `scan` is the transport (timeouts, attempts, rates) for KMS and S3: the config's scan
    section when a config is given."""

    signer: Signer | None = None
    target: S3Location | None = None
    retention: Retention | None = None
    scan: ScanConfig = field(default_factory=ScanConfig)


def signer(ref: str, scan: ScanConfig, option: str = "--sign") -> Signer:
    """A local or KMS signer for `ref`; a KMS key is checked (GetPublicKey) before use."""
    from orgscan.aws.kms import KmsSigner, is_kms_ref, parse_ref

    if not is_kms_ref(ref):
        return LocalSigner.load(Path(ref))
    kms = KmsSigner(parse_ref(ref, option), scan)
    asyncio.run(kms.public_key())
    return kms


def delivery(
    sign: str | None,
    upload: str | None,
    retain_until: str | None,
    retain_days: int | None,
    retain_mode: str | None,
    scan: ScanConfig,
    now: datetime,
) -> Delivery:
    """The delivery the options ask for; PublishError or SigningError names a bad option."""
    target = S3Location.parse(upload, "--upload") if upload else None
    retention = Retention.from_options(retain_until, retain_days, retain_mode, now)
    if retention is not None and target is None:
        raise PublishError("--retain-until/--retain-days: only with --upload")
    return Delivery(signer(sign, scan) if sign else None, target, retention, scan)


def upload(output: Path, delivery: Delivery) -> Upload | None:
    """Upload the written package when asked (None when not)."""
    if delivery.target is None:
        return None
    return asyncio.run(publish(output, delivery.target, delivery.retention, delivery.scan))


def public_key(ref: str, scan: ScanConfig) -> EllipticCurvePublicKey:
    """The public key `verify --key` names: a PEM file, or a KMS key (GetPublicKey)."""
    from orgscan.aws.kms import KmsSigner, is_kms_ref, parse_ref

    if is_kms_ref(ref):
        return asyncio.run(KmsSigner(parse_ref(ref, "--key"), scan).public_key())
    try:
        data = Path(ref).read_bytes()
    except OSError as exc:
        raise SigningError(f"--key {ref}: cannot read: {exc.strerror or exc}") from None
    return load_public_key(data, f"--key {ref}")


def fetch(location: S3Location, directory: Path, scan: ScanConfig) -> tuple[list[str], list[str]]:
    """The package at `location` into `directory` (see `publish.download`)."""
    return asyncio.run(download(location, directory, scan))


# Python's cyclic collector runs a young collection every 700 new container objects and, now
# and then, a full one over every object in the process. A scan allocates a few hundred objects
# per call; the full collections over botocore's loaded models and the growing results took a
# third of the scan's CPU, in pauses of up to half a second that delayed rate-limited calls
# into throttles.
YOUNG_COLLECTION = 20_000
# How often the objects that survived so far (mostly results) are frozen, in seconds.
FREEZE_EVERY = 2.0


@contextlib.asynccontextmanager
async def frozen_gc() -> AsyncIterator[None]:
    """The cyclic collector tuned for one long run in this process. What exists at the start
    (modules, service models) and, every FREEZE_EVERY seconds, what has survived since (mostly
    results) is frozen, so a full collection only ever looks at recent objects; young
    collections run less often.

    Frozen objects are still freed by reference counting; only garbage cycles among them wait
    for the end of the run, when everything is unfrozen and the settings are restored.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], YOUNG_COLLECTION), *threshold[1:])

    async def freeze_survivors() -> None:
        while True:
            await asyncio.sleep(FREEZE_EVERY)
            gc.freeze()

    freezer = asyncio.create_task(freeze_survivors())
    try:
        yield
    finally:
        freezer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await freezer
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def scan_until_signalled(
    settings: Config,
    progress: Progress,
    previous: ScanResult | None,
    shard: Shard | None = None,
    *,
    retry_failed: bool = False,
    recheck_arns: frozenset[str] = frozenset(),
    hints: Hints | None = None,
) -> tuple[ScanResult, int | None]:
    """Run the scan; SIGINT/SIGTERM stop it gracefully, and a second signal aborts at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()
        for handled in HANDLED_SIGNALS:
            loop.remove_signal_handler(handled)
        log.warning(
            "%s: stopping; writing what is finished (signal again to abort without output)",
            signal.Signals(signum).name,
        )

    for signum in HANDLED_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with frozen_gc():
            result = await scan(
                settings,
                progress=progress,
                stop=stop,
                previous=previous,
                shard=shard,
                retry_failed=retry_failed,
                recheck_arns=recheck_arns,
                hints=hints,
            )
    finally:
        for signum in HANDLED_SIGNALS:
            loop.remove_signal_handler(signum)
    if received:
        result.run.interrupted = signal.Signals(received[0]).name
        result.run.complete = False
    return result, received[0] if received else None


async def remediate_until_signalled(
    run: Callable[[Stop], Coroutine[Any, Any, Journal]],
) -> Journal:
    """The first SIGINT/SIGTERM stops starting keys and lets the changes in flight finish and
    be re-read; a second aborts those, which then stay pending in the journal."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stop = Stop()

    def on_signal(signum: int) -> None:
        if stop.signal is None:
            stop.signal = signal.Signals(signum).name
            log.warning(
                "%s: starting no more keys; finishing the changes in flight "
                "(signal again to abort them; they then stay pending in the journal)",
                stop.signal,
            )
        elif task is not None:
            task.cancel()

    for signum in HANDLED_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run(stop)
    finally:
        for signum in HANDLED_SIGNALS:
            loop.remove_signal_handler(signum)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (the demo's --serve)."""
    stopped = threading.Event()
    for handled in HANDLED_SIGNALS:
        signal.signal(handled, lambda *_: stopped.set())
    # A timed wait: Python runs signal handlers only between bytecodes of the main thread.
    while not stopped.wait(0.5):
        pass
