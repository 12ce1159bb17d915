"""The command line. Thin: parse options, run the pipeline, map the outcome to an exit code."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import NoCredentialsError, NoRegionError

from orgscan import __version__
from orgscan.config import STRATEGIES, Config, ConfigError, load_config
from orgscan.logs import setup_logging
from orgscan.model import FindingState, ScanResult, ScanStatus
from orgscan.outdir import OutputError, prepare_output, previous_run_path
from orgscan.progress import Progress, progress_for
from orgscan.reports import json as findings_json
from orgscan.reports.manifest import verify_package
from orgscan.reports.writer import write_reports
from orgscan.scanner import ResumeMismatch, ScanAborted, scan

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find IAM users with more than one active access key across an AWS Organization "
    "(CIS AWS Foundations Benchmark 1.13) and write audit-grade evidence.",
)
log = logging.getLogger("orgscan")


class ExitCode(IntEnum):
    CLEAN = 0
    FINDINGS = 1
    USAGE = 2
    INCOMPLETE = 3
    INTERRUPTED = 130


HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class FailOn(StrEnum):
    OPEN = "open"
    NEVER = "never"


OutputOption = Annotated[
    Path, typer.Option("--output", "-o", help="Directory for the evidence package.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
VerboseOption = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Debug logging on stderr, credentials redacted."),
]


class SarifSuppressed(StrEnum):
    INCLUDE = "include"
    OMIT = "omit"


SarifOption = Annotated[
    SarifSuppressed,
    typer.Option(
        "--sarif-suppressed",
        help="'include': excepted findings carry SARIF suppressions; 'omit': leave them out "
        "(GitHub code scanning ignores suppressions).",
    ),
]
FailOnOption = Annotated[
    FailOn,
    typer.Option(help="'open': exit 1 when open findings exist; 'never': findings never fail."),
]


def _fail(message: str, code: ExitCode) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def exit_code(result: ScanResult, fail_on: FailOn) -> ExitCode:
    """Incomplete beats findings: a partial sweep must never read as a finished one."""
    if not result.run.complete:
        return ExitCode.INCOMPLETE
    if fail_on is FailOn.OPEN and result.findings_in(FindingState.OPEN):
        return ExitCode.FINDINGS
    return ExitCode.CLEAN


def _summary(result: ScanResult, files: list[Path]) -> str:
    accounts = len(result.accounts)
    scanned = len(result.accounts_with(ScanStatus.SCANNED))
    failed = result.accounts_with(ScanStatus.FAILED)
    skipped = len(result.accounts_with(ScanStatus.SKIPPED))
    lines = [
        f"accounts: {scanned} scanned, {len(failed)} failed, {skipped} skipped (of {accounts})",
        f"users:    {len(result.users)}",
        f"findings: {len(result.findings_in(FindingState.OPEN))} open, "
        f"{len(result.findings_in(FindingState.EXCEPTED))} excepted "
        f"(users with more than one active access key)",
    ]
    lines += [
        f"failed:   {r.account.id} ({r.account.name}): {r.error.code}" for r in failed if r.error
    ]
    lines += [f"error:    {e.code}: {e.message}" for e in result.run.errors]
    lines += [f"warning:  {w}" for w in result.run.warnings]
    status = "complete" if result.run.complete else "INCOMPLETE: not every account was scanned"
    lines.append(f"scan:     {status}")
    lines += [f"wrote:    {path}" for path in files]
    return "\n".join(lines)


def _finish(
    result: ScanResult,
    output: Path,
    fail_on: FailOn,
    sarif: SarifSuppressed,
    signum: int | None = None,
) -> None:
    files = write_reports(result, output, sarif_suppressed=sarif.value)
    typer.echo(_summary(result, files))
    if signum is not None:
        # The shell convention for "killed by signal N", after the partial package is written.
        raise typer.Exit(128 + signum)
    raise typer.Exit(int(exit_code(result, fail_on)))


def _load(config_path: Path) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None


async def _scan_until_signalled(
    settings: Config, progress: Progress, previous: ScanResult | None
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
        result = await scan(settings, progress=progress, stop=stop, previous=previous)
    finally:
        for signum in HANDLED_SIGNALS:
            loop.remove_signal_handler(signum)
    if received:
        result.run.interrupted = signal.Signals(received[0]).name
        result.run.complete = False
    return result, received[0] if received else None


@app.command("scan")
def scan_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Directory for the evidence package (default: --resume DIR)."
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="Override scan.strategy: 'live' or 'credential-report'."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the interrupted run in this directory; scans only the "
            "accounts it did not finish."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an older run's package in --output.")
    ] = False,
    fail_on: FailOnOption = FailOn.OPEN,
    sarif: SarifOption = SarifSuppressed.INCLUDE,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Scan the organization that the current AWS credentials manage."""
    setup_logging(verbose)
    settings = _load(config)
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise _fail(
                f"--strategy: expected 'live' or 'credential-report', got {strategy!r}",
                ExitCode.USAGE,
            )
        settings = dataclasses.replace(
            settings, scan=dataclasses.replace(settings.scan, strategy=strategy)
        )
    target = output or resume
    if target is None:
        raise _fail("--output is required (or --resume DIR to continue a run)", ExitCode.USAGE)
    previous = None
    try:
        if resume is not None:
            previous = findings_json.read(previous_run_path(resume))
        prepare_output(target, force=force, resuming=target == resume)
    except (OutputError, findings_json.EvidenceError) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    try:
        result, signum = asyncio.run(_scan_until_signalled(settings, progress_for(quiet), previous))
    except NoCredentialsError:
        raise _fail(
            "no AWS credentials found; set AWS_PROFILE, AWS_ACCESS_KEY_ID or use SSO",
            ExitCode.USAGE,
        ) from None
    except NoRegionError:
        raise _fail("no AWS region configured; set AWS_REGION", ExitCode.USAGE) from None
    except ResumeMismatch as exc:
        raise _fail(f"--resume: {exc}", ExitCode.USAGE) from None
    except ScanAborted as exc:
        raise _fail(f"the scan could not start: {exc}", ExitCode.INCOMPLETE) from None
    except KeyboardInterrupt:
        raise _fail(
            "aborted by a second signal; nothing was written", ExitCode.INTERRUPTED
        ) from None
    _finish(result, target, fail_on, sarif, signum)


@app.command("validate-config")
def validate_config(
    config: Annotated[Path, typer.Argument(help="YAML configuration file.")],
) -> None:
    """Check a configuration file without scanning anything."""
    settings = _load(config)
    typer.echo(
        f"{config}: valid ({settings.scan.strategy} strategy, role {settings.role.name}, "
        f"{len(settings.exceptions)} exception(s))"
    )


@app.command()
def demo(
    output: OutputOption = Path("demo-report"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an older run's package in --output.")
    ] = False,
    fail_on: FailOnOption = FailOn.OPEN,
    sarif: SarifOption = SarifSuppressed.INCLUDE,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the real pipeline against an embedded demo organization (moto, never real AWS)."""
    setup_logging(verbose)
    try:
        prepare_output(output, force=force)
    except OutputError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    try:
        from orgscan.demo.run import run_demo
    except ImportError as exc:
        raise _fail(
            f"the demo needs moto's server ({exc.name} is missing): pip install 'orgscan[demo]'",
            ExitCode.USAGE,
        ) from None
    result = asyncio.run(run_demo(progress_for(quiet)))
    _finish(result, output, fail_on, sarif)


@app.command()
def report(
    findings: Annotated[Path, typer.Argument(help="A findings.json written by a scan.")],
    output: OutputOption,
    sarif: SarifOption = SarifSuppressed.INCLUDE,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an older run's package in --output.")
    ] = False,
    fail_on: FailOnOption = FailOn.OPEN,
) -> None:
    """Rebuild every report from findings.json alone; exits as the scan did."""
    setup_logging(False)
    try:
        result = findings_json.read(findings)
        prepare_output(output, force=force)
    except (findings_json.EvidenceError, OutputError) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    _finish(result, output, fail_on, sarif)


@app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="An evidence package directory.")],
) -> None:
    """Check every file of a package against its manifest.json; exit 1 on any mismatch."""
    problems = verify_package(directory)
    for problem in problems:
        typer.echo(f"MISMATCH {problem}", err=True)
    if problems:
        typer.echo(f"{directory}: NOT verified ({len(problems)} problem(s))")
        raise typer.Exit(1)
    typer.echo(f"{directory}: verified; every file matches manifest.json")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"orgscan {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """orgscan: CIS AWS 1.13 across an AWS Organization."""


def main() -> None:
    app()
