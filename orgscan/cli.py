"""The command line. Thin: parse options, run the pipeline, map the outcome to an exit code."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import NoCredentialsError, NoRegionError

from orgscan import __version__
from orgscan.config import STRATEGIES, Config, ConfigError, load_config
from orgscan.model import FindingState, ScanResult, ScanStatus
from orgscan.progress import progress_for
from orgscan.reports.writer import write_reports
from orgscan.scanner import ScanAborted, scan

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


class FailOn(StrEnum):
    OPEN = "open"
    NEVER = "never"


OutputOption = Annotated[
    Path, typer.Option("--output", "-o", help="Directory for the evidence package.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging on stderr.")]
FailOnOption = Annotated[
    FailOn,
    typer.Option(help="'open': exit 1 when open findings exist; 'never': findings never fail."),
]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Only our own logger goes to debug: botocore's debug output carries signed headers.
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)


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


def _finish(result: ScanResult, output: Path, fail_on: FailOn) -> None:
    files = write_reports(result, output)
    typer.echo(_summary(result, files))
    raise typer.Exit(int(exit_code(result, fail_on)))


def _load(config_path: Path) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None


@app.command("scan")
def scan_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
    output: OutputOption,
    strategy: Annotated[
        str | None,
        typer.Option(help="Override scan.strategy: 'live' or 'credential-report'."),
    ] = None,
    fail_on: FailOnOption = FailOn.OPEN,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Scan the organization that the current AWS credentials manage."""
    _setup_logging(verbose)
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
    try:
        result = asyncio.run(scan(settings, progress=progress_for(quiet)))
    except NoCredentialsError:
        raise _fail(
            "no AWS credentials found; set AWS_PROFILE, AWS_ACCESS_KEY_ID or use SSO",
            ExitCode.USAGE,
        ) from None
    except NoRegionError:
        raise _fail("no AWS region configured; set AWS_REGION", ExitCode.USAGE) from None
    except ScanAborted as exc:
        raise _fail(f"the scan could not start: {exc}", ExitCode.INCOMPLETE) from None
    _finish(result, output, fail_on)


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
    fail_on: FailOnOption = FailOn.OPEN,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the real pipeline against an embedded demo organization (moto, never real AWS)."""
    _setup_logging(verbose)
    try:
        from orgscan.demo.run import run_demo
    except ImportError as exc:
        raise _fail(
            f"the demo needs moto's server ({exc.name} is missing): pip install 'orgscan[demo]'",
            ExitCode.USAGE,
        ) from None
    result = asyncio.run(run_demo(progress_for(quiet)))
    _finish(result, output, fail_on)


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
