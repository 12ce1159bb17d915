"""The command line. Thin: parse options, run the pipeline, map the outcome to an exit code."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shlex
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from orgscan import __version__, runner, securityhub_publish
from orgscan import evidence as codec
from orgscan.accounts import Hints, Shard
from orgscan.attestation import attest, generate_key
from orgscan.aws.errors import error_code, error_message
from orgscan.config import STRATEGIES, Config, ConfigError, ScanConfig, load_config
from orgscan.delta import BaselineMismatch, compare
from orgscan.formats import DEFAULT_FORMATS, FORMATS, parse_formats
from orgscan.fs import OutputError, prepare_output, previous_run_path
from orgscan.logs import setup_logging
from orgscan.merge import DEFAULT_WINDOW, MergeError, merge
from orgscan.model import ScanResult
from orgscan.preflight import preflight as run_preflight
from orgscan.progress import progress_for
from orgscan.publish import PublishError, S3Location
from orgscan.remediation.apply import (
    Journal,
    Outcome,
    RemediationError,
    Stop,
    apply_plan,
    read_journal,
    rollback,
    to_undo,
)
from orgscan.remediation.plan import PlanError, build_plan, load_evidence
from orgscan.remediation.plan import check as check_plan
from orgscan.remediation.plan import read as read_plan
from orgscan.remediation.plan import write as write_plan
from orgscan.reports.manifest import check_package
from orgscan.reports.summary import (
    PENDING_KEPT,
    UNFINISHED_QUESTION,
    delta_text,
    journal_text,
    nothing_to_undo,
    pending_question,
    reactivate_question,
    scan_summary,
    undo_lines,
    unfinished_warning,
    upload_text,
    verify_text,
)
from orgscan.reports.writer import listed_formats, package_files, write_reports
from orgscan.rules import rule_ids
from orgscan.runner import (
    Delivery,
    ExitCode,
    FailOn,
    exit_code,
    journal_exit_code,
    remediate_until_signalled,
    scan_until_signalled,
    wait_for_signal,
)
from orgscan.scanner import ResumeMismatch, ScanAborted, older_run
from orgscan.signing import SigningError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Find IAM users with more than one active access key across an AWS Organization "
    "(CIS AWS Foundations Benchmark 1.13) and write audit-grade evidence.",
)
log = logging.getLogger("orgscan")


_NO_SETUP: dict[type[Exception], str] = {
    NoCredentialsError: "no AWS credentials found; set AWS_PROFILE, AWS_ACCESS_KEY_ID or use SSO",
    NoRegionError: "no AWS region configured; set AWS_REGION",
}


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
FormatsOption = Annotated[
    str | None,
    typer.Option(
        "--formats",
        help="Comma-separated files to write beside findings.json and manifest.json: "
        + ", ".join(FORMATS)
        + f", or 'all' (default: {','.join(DEFAULT_FORMATS)}).",
    ),
]


def _formats(option: str | None, default: tuple[str, ...] = DEFAULT_FORMATS) -> tuple[str, ...]:
    if option is None:
        return default
    try:
        return parse_formats(option.split(","))
    except ValueError as exc:
        raise _fail(f"--formats: {exc}", ExitCode.USAGE) from None


SignOption = Annotated[
    str | None,
    typer.Option(
        "--sign",
        help="Sign the package (attestation.intoto.jsonl): a PEM EC P-256 private key file, "
        "or a KMS key as awskms:///arn:aws:kms:... or awskms:///alias/NAME.",
    ),
]
UploadOption = Annotated[
    str | None,
    typer.Option(
        "--upload",
        help="Also upload the package to s3://BUCKET/PREFIX/, checksums read back; the "
        "attestation, then the manifest, last.",
    ),
]
RetainUntilOption = Annotated[
    str | None,
    typer.Option("--retain-until", help="With --upload: Object Lock retention until this date."),
]
RetainDaysOption = Annotated[
    int | None,
    typer.Option("--retain-days", help="With --upload: Object Lock retention for N days."),
]
RetainModeOption = Annotated[
    str | None,
    typer.Option(
        "--retain-mode",
        help="COMPLIANCE (no one can shorten it) or GOVERNANCE; required with a retention.",
    ),
]


# Written only: neither signed nor uploaded.
NO_DELIVERY = Delivery()


def _delivery(
    sign: str | None,
    upload: str | None,
    retain_until: str | None = None,
    retain_days: int | None = None,
    retain_mode: str | None = None,
    settings: Config | None = None,
) -> Delivery:
    scan = settings.scan if settings else ScanConfig()
    try:
        return runner.delivery(
            sign, upload, retain_until, retain_days, retain_mode, scan, datetime.now(UTC)
        )
    except (PublishError, SigningError) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None


def _upload(output: Path, delivery: Delivery) -> bool:
    """Upload the written package when asked; False when the upload is incomplete."""
    try:
        done = runner.upload(output, delivery)
    except PublishError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None
    if done is None:
        return True
    lines, errors = upload_text(
        str(done.location), done.location.bucket, done.stored, done.kept, done.problems
    )
    _echo(lines)
    _echo(errors, err=True)
    return not errors


def _echo(lines: Sequence[str], err: bool = False) -> None:
    for line in lines:
        typer.echo(line, err=err)


TransportConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration file: its scan section (call_timeout, max_attempts, rates) "
        "for the calls to S3 and KMS.",
    ),
]
FailOnOption = Annotated[
    FailOn,
    typer.Option(help="'open': exit 1 when open findings exist; 'never': findings never fail."),
]


def _fail(message: str, code: ExitCode) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def _write(
    result: ScanResult,
    output: Path,
    sarif: SarifSuppressed,
    delivery: Delivery = NO_DELIVERY,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
) -> bool:
    """Write (and sign) the package, then upload it; False when it is not all delivered."""
    signer = delivery.signer
    try:
        files = write_reports(
            result,
            output,
            sarif_suppressed=sarif.value,
            formats=formats,
            sign=(lambda contents: asyncio.run(attest(contents, signer))) if signer else None,
        )
    except SigningError as exc:
        typer.echo(scan_summary(result, []))
        typer.echo(f"error: the package in {output} is written but NOT signed: {exc}", err=True)
        return False
    typer.echo(scan_summary(result, files))
    return _upload(output, delivery)


def _finish(
    result: ScanResult,
    output: Path,
    fail_on: FailOn,
    sarif: SarifSuppressed,
    signum: int | None = None,
    delivery: Delivery = NO_DELIVERY,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
) -> None:
    delivered = _write(result, output, sarif, delivery, formats)
    if signum is not None:
        # The shell convention for "killed by signal N", after the partial package is written.
        raise typer.Exit(128 + signum)
    # An unsigned or half-uploaded package is not the evidence asked for: incomplete.
    raise typer.Exit(int(exit_code(result, fail_on) if delivered else ExitCode.INCOMPLETE))


def _load(config_path: Path) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None


RulesOption = Annotated[
    str | None,
    typer.Option(
        "--rules",
        help="Evaluate only these rules (comma-separated ids, each enabled in the config's "
        "rules: section): " + ", ".join(rule_ids()) + ".",
    ),
]


def _narrowed(settings: Config, rules: str | None) -> Config:
    if rules is None:
        return settings
    try:
        return settings.with_rules(part.strip() for part in rules.split(",") if part.strip())
    except ConfigError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None


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
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="With --resume: scan again the accounts that failed (or were read only in "
            "part), e.g. after a throttle or an outage; scanned accounts are kept.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an older run's package in --output.")
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(help="A previous scan's findings.json: report what is new and resolved."),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="Scan only shard K of N (e.g. 2/4), for CI matrices; see 'merge'."),
    ] = None,
    rules: RulesOption = None,
    hints: Annotated[
        Path | None,
        typer.Option(
            help="An earlier scan's findings.json: enter the accounts that took longest then "
            "first (--baseline and --resume runs serve as hints too)."
        ),
    ] = None,
    fail_on: FailOnOption = FailOn.OPEN,
    sarif: SarifOption = SarifSuppressed.INCLUDE,
    formats: FormatsOption = None,
    sign: SignOption = None,
    upload: UploadOption = None,
    retain_until: RetainUntilOption = None,
    retain_days: RetainDaysOption = None,
    retain_mode: RetainModeOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Scan the organization that the current AWS credentials manage."""
    setup_logging(verbose)
    settings = _narrowed(_load(config), rules)
    written = _formats(formats, settings.output.formats)
    delivery = _delivery(sign, upload, retain_until, retain_days, retain_mode, settings)
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
        part = Shard.parse(shard) if shard else None
    except ValueError as exc:
        raise _fail(f"--shard: {exc}", ExitCode.USAGE) from None
    log.debug("config %s (%s), strategy %s", config, settings.digest(), settings.scan.strategy)
    target = output or resume
    if target is None:
        raise _fail("--output is required (or --resume DIR to continue a run)", ExitCode.USAGE)
    if retry_failed and resume is None:
        raise _fail(
            "--retry-failed needs --resume DIR: the run whose failures to retry", ExitCode.USAGE
        )
    previous = earlier = sizes = None
    try:
        if baseline is not None:
            earlier = _read_previous(baseline, "--baseline")
        if hints is not None:
            sizes = _read_previous(hints, "--hints")
        if resume is not None:
            path = previous_run_path(resume, codec.FILENAME)
            stored = codec.load(path)
            previous = codec.parse(stored, path)
            # A 1.0 run's config digest predates settings whose meaning changed since.
            if stored.get("schema_version") == "1.0":
                raise older_run(previous.run.id, str(stored.get("schema_version")))
        prepare_output(target, package_files(), force=force, resuming=target == resume)
        # Each account's size as the latest sweep at hand tells it best: --hints, then the run
        # resumed, then the baseline. Of --hints nothing else is kept.
        known = Hints.of(*(r for r in (sizes, previous, earlier) if r is not None))
        sizes = None
    except (OutputError, codec.EvidenceError) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    except ResumeMismatch as exc:
        raise _fail(f"--resume: {exc}", ExitCode.USAGE) from None
    try:
        result, signum = asyncio.run(
            scan_until_signalled(
                settings,
                progress_for(quiet),
                previous,
                part,
                retry_failed=retry_failed,
                # A credential report older than the baseline cannot show its findings
                # resolved: read those users live.
                recheck_arns=frozenset(f.arn for f in earlier.findings) if earlier else frozenset(),
                hints=known if known.accounts else None,
            )
        )
    except (NoCredentialsError, NoRegionError) as exc:
        raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None
    except ResumeMismatch as exc:
        raise _fail(f"--resume: {exc}", ExitCode.USAGE) from None
    except ScanAborted as exc:
        if isinstance(exc.__cause__, NoCredentialsError | NoRegionError):
            raise _fail(_NO_SETUP[type(exc.__cause__)], ExitCode.USAGE) from None
        raise _fail(f"the scan could not start: {exc}", ExitCode.INCOMPLETE) from None
    except KeyboardInterrupt:
        raise _fail(
            "aborted by a second signal; nothing was written", ExitCode.INTERRUPTED
        ) from None
    for account in result.accounts:
        log.debug(
            "account %s (%s): %s, %s users, %d IAM calls%s",
            account.account.id,
            account.account.ou_path,
            account.scan_status,
            account.user_count,
            account.api_calls,
            f", {account.error.code}" if account.error else "",
        )
    if earlier is not None:
        try:
            result.delta = compare(earlier, result)
        except BaselineMismatch as exc:
            # The scan itself is sound evidence; only the comparison is meaningless.
            result.run.warnings.append(f"--baseline ignored: {exc}")
    _finish(result, target, fail_on, sarif, signum, delivery, written)


def _read_previous(path: Path, option: str) -> ScanResult:
    """An earlier package's findings.json, named by `option`: the one reader of them."""
    try:
        return codec.read(path)
    except codec.EvidenceError as exc:
        raise _fail(f"{option}: {exc}", ExitCode.USAGE) from None


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier findings.json.")],
    new: Annotated[Path, typer.Argument(help="The later findings.json.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the delta as JSON.")] = False,
) -> None:
    """Compare two scans: findings new, still open, resolved, and coverage changes."""
    earlier, later = _read_previous(old, "--baseline"), _read_previous(new, "--baseline")
    try:
        delta = compare(earlier, later)
    except BaselineMismatch as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    if as_json:
        later.delta = delta
        typer.echo(json.dumps(codec.document(later)["delta"], indent=2))
    else:
        typer.echo(delta_text(delta, later))


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
def preflight(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
    sample: Annotated[
        int | None,
        typer.Option(min=1, help="Check only N of the accounts to scan, spread over the org."),
    ] = None,
    remediation: Annotated[
        bool,
        typer.Option("--remediation", help="Also check that remediation.role_name can be assumed."),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Check, without scanning, what a scan would meet: caller, Organizations access, STS
    region, and the audit role in every account. Exit 0 only when a scan would be complete."""
    setup_logging(verbose)
    settings = _load(config)
    try:
        found = asyncio.run(run_preflight(settings, size=sample, remediation=remediation))
    except (NoCredentialsError, NoRegionError) as exc:
        raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None
    for line in found.lines():
        typer.echo(line)
    raise typer.Exit(int(ExitCode.CLEAN if found.complete else ExitCode.INCOMPLETE))


@app.command()
def demo(
    output: OutputOption = Path("demo-report"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an older run's package in --output.")
    ] = False,
    fail_on: FailOnOption = FailOn.OPEN,
    sarif: SarifOption = SarifSuppressed.INCLUDE,
    formats: FormatsOption = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Keep the demo organization running after the scan (until Ctrl-C), so other "
            "commands such as 'remediate' can be tried against it from another shell.",
        ),
    ] = False,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign",
            help="Generate a local P-256 key beside --output (DIR-signing-key.pem, mode 0600, "
            "and DIR-signing-key.pub.pem) and sign the package with it.",
        ),
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the real pipeline against an embedded demo organization (moto, never real AWS)."""
    setup_logging(verbose)
    written = _formats(formats)
    try:
        prepare_output(output, package_files(), force=force)
    except OutputError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    delivery = NO_DELIVERY
    # Files beside the package are named after its directory: resolved, as `--output .` has
    # no name of its own.
    beside = output.resolve()
    if sign:
        # Beside the package, never inside it: the private key must not travel with it.
        private = beside.with_name(beside.name + "-signing-key.pem")
        public = beside.with_name(beside.name + "-signing-key.pub.pem")
        delivery = Delivery(signer=generate_key(private, public))
        typer.echo(f"signing key: {private} (private, 0600); verify with --key {public}")
    try:
        from orgscan.demo.run import demo_organization, run_demo
    except ImportError as exc:
        raise _fail(
            f"the demo needs moto's server ({exc.name} is missing): pip install 'orgscan[demo]'",
            ExitCode.USAGE,
        ) from None
    with demo_organization() as organization:
        result = asyncio.run(run_demo(organization, progress_for(quiet)))
        if not _write(result, output, sarif, delivery, written):
            raise typer.Exit(int(ExitCode.INCOMPLETE))
        if serve:
            config_path = beside.with_name(beside.name + "-config.yaml")
            config_path.write_text(yaml.safe_dump(organization.settings, sort_keys=False))
            exports = " ".join(
                f"{k}={shlex.quote(v)}" for k, v in organization.environment().items()
            )
            typer.echo(
                f"\nThe demo organization is serving at {organization.server.url} until Ctrl-C."
                f"\nIn another shell:\n  export {exports}"
                f"\n  orgscan remediate plan {output}/findings.json --output plan.json"
                f"\n  orgscan remediate apply plan.json --config {config_path} --yes"
                "\n  orgscan remediate rollback remediation-journal.jsonl "
                f"--config {config_path} --yes"
            )
            wait_for_signal()
            typer.echo("the demo organization stopped.")
    raise typer.Exit(int(exit_code(result, fail_on)))


@app.command()
def report(
    findings: Annotated[Path, typer.Argument(help="A findings.json written by a scan.")],
    output: OutputOption,
    sarif: SarifOption = SarifSuppressed.INCLUDE,
    formats: Annotated[
        str | None,
        typer.Option(
            "--formats",
            help="Comma-separated formats to write (see 'scan --formats'); default: those the "
            "manifest.json beside findings.json lists, else " + ",".join(DEFAULT_FORMATS) + ".",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an older run's package in --output.")
    ] = False,
    fail_on: FailOnOption = FailOn.OPEN,
    sign: SignOption = None,
    upload: UploadOption = None,
    retain_until: RetainUntilOption = None,
    retain_days: RetainDaysOption = None,
    retain_mode: RetainModeOption = None,
    config: TransportConfigOption = None,
) -> None:
    """Rebuild every report from findings.json alone; exits as the evidence says (3 when its
    accounts show an incomplete sweep, whatever its `complete` flag claims)."""
    setup_logging(False)
    settings = _load(config) if config else None
    delivery = _delivery(sign, upload, retain_until, retain_days, retain_mode, settings)
    written = _formats(formats, listed_formats(findings.parent))
    try:
        data = codec.load(findings)
        result = codec.parse(data, findings)
        prepare_output(output, package_files(), force=force)
    except (codec.EvidenceError, OutputError) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    contradiction = codec.stored_complete_contradiction(data, result)
    if contradiction:
        typer.echo(f"warning: {findings}: {contradiction}; the rebuilt package says so", err=True)
    _finish(result, output, fail_on, sarif, delivery=delivery, formats=written)


@app.command("merge")
def merge_command(
    directories: Annotated[list[Path], typer.Argument(help="Shard output directories.")],
    output: OutputOption,
    sarif: SarifOption = SarifSuppressed.INCLUDE,
    formats: FormatsOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an older run's package in --output.")
    ] = False,
    fail_on: FailOnOption = FailOn.OPEN,
    window: Annotated[
        float,
        typer.Option(
            min=0,
            help="Days from the first shard's start to the last shard's end beyond which the "
            "shards are not one sweep and the merge is refused.",
        ),
    ] = DEFAULT_WINDOW.days,
    sign: SignOption = None,
    upload: UploadOption = None,
    retain_until: RetainUntilOption = None,
    retain_days: RetainDaysOption = None,
    retain_mode: RetainModeOption = None,
    config: TransportConfigOption = None,
) -> None:
    """Combine the packages of 'scan --shard K/N' into one package: one SARIF run, one manifest."""
    setup_logging(False)
    settings = _load(config) if config else None
    delivery = _delivery(sign, upload, retain_until, retain_days, retain_mode, settings)
    written = _formats(formats)
    try:
        shards = [codec.read(d / codec.FILENAME) for d in directories]
        merged = merge(shards, timedelta(days=window))
        prepare_output(output, package_files(), force=force)
    except (codec.EvidenceError, MergeError, OutputError) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    _finish(merged, output, fail_on, sarif, delivery=delivery, formats=written)


@app.command()
def verify(
    target: Annotated[
        str, typer.Argument(help="An evidence package directory, or s3://BUCKET/PREFIX/.")
    ],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Check the signed attestation with this public key: a PEM file, or "
            "awskms:///... (fetched with kms:GetPublicKey).",
        ),
    ] = None,
    config: TransportConfigOption = None,
) -> None:
    """Check a package: every file against manifest.json, every field the manifest repeats
    against findings.json, findings.json against itself, and every report re-rendered from
    findings.json byte for byte; with --key, the signature, every signed file and the signed
    statement against findings.json. Always says whether the sweep was complete; exit 1 on any
    mismatch."""
    scan = _load(config).scan if config else ScanConfig()
    public = _public_key(key, scan) if key else None
    if not target.startswith("s3://"):
        _verify(Path(target), public, target)
        return
    try:
        location = S3Location.parse(target, "TARGET")
    except PublishError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    with tempfile.TemporaryDirectory(prefix="orgscan-verify-") as temporary:
        try:
            names, history = runner.fetch(location, Path(temporary), scan)
        except PublishError as exc:
            raise _fail(str(exc), ExitCode.INCOMPLETE) from None
        except (NoCredentialsError, NoRegionError) as exc:
            raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None
        typer.echo(f"fetched: {len(names)} object(s) from {location}")
        _verify(Path(temporary), public, target, history)


def _public_key(ref: str, scan: ScanConfig) -> EllipticCurvePublicKey:
    try:
        return runner.public_key(ref, scan)
    except SigningError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None


def _verify(
    directory: Path, key: EllipticCurvePublicKey | None, shown: str, history: Sequence[str] = ()
) -> None:
    check = check_package(directory, key)
    check.problems[:0] = history  # S3: keys replaced or hidden since the upload
    errors, lines = verify_text(check, key is not None, shown)
    _echo(errors, err=True)
    _echo(lines)
    if check.problems:
        raise typer.Exit(1)


@app.command("publish")
def publish_command(
    directory: Annotated[Path, typer.Argument(help="An evidence package directory.")],
    target: Annotated[str, typer.Argument(help="s3://BUCKET/PREFIX/")],
    retain_until: RetainUntilOption = None,
    retain_days: RetainDaysOption = None,
    retain_mode: RetainModeOption = None,
    config: TransportConfigOption = None,
) -> None:
    """Upload a written package to S3 (checksums read back; the attestation, then the manifest,
    last). Run again, it completes an interrupted upload. Exit 3 when the upload is incomplete."""
    setup_logging(False)
    settings = _load(config) if config else None
    delivery = _delivery(None, target, retain_until, retain_days, retain_mode, settings)
    if not _upload(directory, delivery):
        raise typer.Exit(int(ExitCode.INCOMPLETE))


@app.command()
def watch(
    event: Annotated[
        Path, typer.Option("--event", "-e", help="One CloudTrail event as EventBridge delivers it.")
    ],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
    verbose: VerboseOption = False,
) -> None:
    """Check the user of one CreateAccessKey/UpdateAccessKey event live, as the Lambda does.

    Exit 1: a violation (the user and its active keys are printed); 0: compliant, excepted,
    or nothing to check; 3: the account could not be read; 2: the event is not understood.
    """
    # Imported here: the watch is not needed by any other command.
    from orgscan.watch.events import EventError, load_event
    from orgscan.watch.handler import check
    from orgscan.watch.render import describe
    from orgscan.watch.result import Verdict

    setup_logging(verbose)
    settings = _load(config)
    try:
        key_event = load_event(event)
    except EventError as exc:
        raise _fail(f"{event}: the event is not understood: {exc}", ExitCode.USAGE) from None
    try:
        result = asyncio.run(check(key_event, settings))
    except (NoCredentialsError, NoRegionError) as exc:
        raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None
    typer.echo(describe(result))
    codes = {Verdict.VIOLATION: ExitCode.FINDINGS, Verdict.UNREADABLE: ExitCode.INCOMPLETE}
    raise typer.Exit(int(codes.get(result.verdict, ExitCode.CLEAN)))


@app.command("publish-securityhub")
def publish_securityhub(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="A package holding findings.asff.json.")
    ],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
    verbose: VerboseOption = False,
) -> None:
    """Import findings.asff.json into Security Hub CSPM, in each finding's own account, through
    the role securityhub.role_name (off by default). Exits 0 when every finding was imported,
    3 when any failed or was skipped."""
    setup_logging(verbose)
    settings = _load(config)
    try:
        done = asyncio.run(securityhub_publish.publish(settings, directory))
    except securityhub_publish.PublishError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    for warning in done.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for account in done.accounts:
        typer.echo(
            f"{account.account_id}: {account.imported} imported, {account.failed} failed, "
            f"{account.skipped} skipped ({done.region})"
        )
        for error in account.errors:
            typer.echo(f"  {error}")
    raise typer.Exit(int(ExitCode.CLEAN if done.complete else ExitCode.INCOMPLETE))


remediate = typer.Typer(
    no_args_is_help=True,
    help="Deactivate (never delete) the extra active keys: plan, apply with consent, roll back.",
)
app.add_typer(remediate, name="remediate")
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C outside the run itself (at the question, say) changed nothing: exit 130 saying so,
    whatever typer would make of it (typer 0.12 exits 1, which reads as "keys skipped")."""
    try:
        yield
    except (KeyboardInterrupt, typer.Abort):
        raise _fail("interrupted; nothing was changed", ExitCode.INTERRUPTED) from None


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        raise _fail("no terminal to confirm on; pass --yes to proceed", ExitCode.USAGE)
    return typer.confirm(question, default=False)


def _confirm(question: str, yes: bool) -> None:
    if not yes and not _ask(question):
        raise _fail("nothing changed", ExitCode.USAGE)


def _new_journal(path: Path) -> None:
    # Checked here to refuse before the question; the run itself creates the journal with
    # O_EXCL, which is what keeps two runs from ever sharing one.
    if path.exists():
        raise _fail(
            f"{path} already exists and records earlier changes; move it away or pass "
            "--journal with a new file",
            ExitCode.USAGE,
        )


def _remediate(
    run: Callable[[Stop], Coroutine[Any, Any, Journal]], path: Path, done: Outcome
) -> None:
    """Run apply or rollback into a new journal at `path`, then report and exit on it."""
    try:
        journal = asyncio.run(remediate_until_signalled(run))
    except RemediationError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise _fail(_NO_SETUP[type(exc)], ExitCode.USAGE) from None
    except (ClientError, BotoCoreError) as exc:
        # Organizations or STS refused before any key was touched; no journal is left.
        raise _fail(
            f"could not start: {error_code(exc)}: {error_message(exc)}; nothing was changed",
            ExitCode.INCOMPLETE,
        ) from None
    _journal_exit(journal, done, path)


def _journal_exit(journal: Journal, done: Outcome, path: Path) -> None:
    shown = (done, Outcome.SKIPPED, Outcome.FAILED, Outcome.PENDING)
    others = [
        (str(e.outcome), e.arn, e.access_key_id, e.reason)
        for e in journal.entries
        if e.outcome is not done
    ]
    counts = {str(o): journal.count(o) for o in shown}
    typer.echo(journal_text(path, counts, others, journal.interrupted))
    raise typer.Exit(journal_exit_code(journal))


@remediate.command("plan")
def remediate_plan(
    findings: Annotated[Path, typer.Argument(help="A findings.json written by a scan.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The plan file to write.")],
    rules: Annotated[
        str | None,
        typer.Option(
            "--rules",
            help="Comma-separated rule ids to plan for (default: every rule the scan evaluated).",
        ),
    ] = None,
) -> None:
    """Per open finding: the keys to deactivate (one-active-key, unused), or the steps for a
    person (rotation, root keys; as comments in plan.sh). Changes nothing."""
    wanted = [r.strip() for r in rules.split(",") if r.strip()] if rules is not None else None
    if wanted is not None and not wanted:
        raise _fail("--rules: name at least one rule", ExitCode.USAGE)
    try:
        plan = build_plan(*load_evidence(findings), rules=wanted)
    except PlanError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    paths = write_plan(plan, output)
    keys = sum(plan.per_account().values())
    typer.echo(
        f"plan: deactivate {keys} key(s) of {len(plan.actions)} user(s) in "
        f"{len(plan.per_account())} account(s); nothing is deleted"
    )
    for rule_id, count in plan.per_rule().items():
        typer.echo(f"  {rule_id}: {count} key(s) to deactivate")
    for rule in plan.rules:
        if manual := sum(1 for action in plan.manual if action.rule_id == rule.id):
            typer.echo(f"  {rule.id}: {manual} finding(s) for a person; steps in plan.sh, not run")
    for line in plan.not_planned:
        typer.echo(f"not planned: {line}")
    typer.echo("wrote: " + ", ".join(str(p) for p in paths))


@remediate.command("apply")
def remediate_apply(
    plan_path: Annotated[Path, typer.Argument(metavar="PLAN", help="A plan from 'plan'.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
    findings: Annotated[
        Path | None,
        typer.Option(
            help="The findings.json the plan was made from (default: the path the plan "
            "records); it must be byte for byte the same file."
        ),
    ] = None,
    journal: Annotated[
        Path | None, typer.Option(help="Journal file (default: beside the plan).")
    ] = None,
    yes: YesOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Deactivate the planned keys, re-checking each live first; writes a journal."""
    setup_logging(verbose)
    with _interruptible():
        settings = _load(config)
        try:
            plan = read_plan(plan_path)
            check_plan(plan, findings or Path(plan.evidence.path))
        except PlanError as exc:
            raise _fail(str(exc), ExitCode.USAGE) from None
        path = journal or plan_path.with_name("remediation-journal.jsonl")
        _new_journal(path)
        per_account = plan.per_account()
        for account_id, count in sorted(per_account.items()):
            typer.echo(f"  {account_id}: {count} key(s) to deactivate")
        _confirm(
            f"Deactivate {sum(per_account.values())} key(s) in {len(per_account)} account(s) "
            f"with role {settings.remediation.role_name}?",
            yes,
        )
    _remediate(lambda stop: apply_plan(plan, settings, path, stop), path, Outcome.DEACTIVATED)


@remediate.command("rollback")
def remediate_rollback(
    journal_path: Annotated[Path, typer.Argument(metavar="JOURNAL", help="An apply journal.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file.")],
    account: Annotated[
        list[str] | None,
        typer.Option(help="Undo only this account's changes (repeatable; with --key, either)."),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(help="Undo only this key's change (repeatable; with --account, either)."),
    ] = None,
    include_pending: Annotated[
        bool,
        typer.Option(
            help="Also re-activate keys the apply left pending (sent, never confirmed) that are "
            "Inactive now; orgscan cannot show it made them Inactive."
        ),
    ] = False,
    journal: Annotated[
        Path | None, typer.Option(help="Rollback journal file (default: beside JOURNAL).")
    ] = None,
    unfinished: Annotated[
        bool,
        typer.Option(
            "--unfinished",
            help="Roll back an apply whose journal has no end line (it crashed, or is still "
            "running) without being asked; needed with --yes.",
        ),
    ] = False,
    yes: YesOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Re-activate the keys an apply journal deactivated, or only those of --account/--key."""
    setup_logging(verbose)
    with _interruptible():
        settings = _load(config)
        try:
            applied = read_journal(journal_path)
            if applied.action != "apply":
                raise RemediationError(
                    f"{journal_path} is a {applied.action} journal, not an apply journal"
                )
            undo = to_undo(applied, account or (), key or ())
        except RemediationError as exc:
            raise _fail(str(exc), ExitCode.USAGE) from None
        if applied.torn:
            typer.echo(f"warning: {applied.torn}", err=True)
        if applied.finished_at is None and not unfinished:
            # Its apply crashed, or is running now: a rollback alongside it would race it.
            warning = unfinished_warning(journal_path)
            if yes:
                raise _fail(f"{warning}; pass --unfinished to roll it back", ExitCode.USAGE)
            typer.echo(f"warning: {warning}", err=True)
            _confirm(UNFINISHED_QUESTION, yes)
        if not (undo.deactivated or undo.pending):
            typer.echo(nothing_to_undo(journal_path))
            raise typer.Exit(int(ExitCode.CLEAN))
        path = journal or journal_path.with_name("rollback-journal.jsonl")
        _new_journal(path)
        pending = [(e.arn, e.access_key_id, e.reason) for e in undo.pending]
        _echo(undo_lines(len(undo.deactivated), pending))
        if undo.deactivated:
            _confirm(reactivate_question(len(undo.deactivated)), yes)
        if undo.pending and not include_pending:
            if yes:
                typer.echo(PENDING_KEPT)
            else:
                include_pending = _ask(pending_question(len(undo.pending)))
    _remediate(
        lambda stop: rollback(
            applied,
            undo,
            settings,
            path,
            stop,
            applied_path=journal_path,
            include_pending=include_pending,
        ),
        path,
        Outcome.REACTIVATED,
    )


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
    try:
        app()
    except Exception as exc:
        # A bug must never exit 0 or 1, which CI reads as "clean" or "findings".
        log.critical("internal error, please report it: %s", exc, exc_info=True)
        raise SystemExit(int(ExitCode.INCOMPLETE)) from None
