"""The pipeline: organization → credentials → collection → evaluation, concurrently and bounded.

Accounts are fed to a fixed pool of workers as the OU walk lists them, so scanning starts at
once and the number of accounts in flight (connections, memory) never exceeds the cap.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from orgscan import __version__
from orgscan.accounts import AccountFilter, EntryOrder, Hints, Shard, config_warnings
from orgscan.aws.clients import ClientFactory, region_hint
from orgscan.aws.credentials import AccountCredentials
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.interfaces import IamReader
from orgscan.aws.management import management_session
from orgscan.aws.organizations import WalkOrder, walk_accounts
from orgscan.aws.ratelimit import CallCounter, Crowding, RateLimiter
from orgscan.collect.credential_report import ReportPolling, collect_from_report
from orgscan.collect.live import collect_live
from orgscan.collect.usage import Needs
from orgscan.collect.users import Collected
from orgscan.config import Config, ConfigError
from orgscan.evaluate import Judge
from orgscan.model import (
    INTERRUPTED,
    Account,
    AccountFailure,
    AccountResult,
    Limits,
    RunInfo,
    ScanError,
    ScanResult,
    ScanStatus,
    new_run_id,
    sweep_complete,
    utcnow,
)
from orgscan.progress import Progress

log = logging.getLogger(__name__)


class ScanAborted(Exception):
    """The scan could not start: no caller identity or no organization to walk."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """Knobs that are not configuration: paging and polling, which tests and the bench tune."""

    page_size: int | None = None
    report_polling: ReportPolling = field(default_factory=ReportPolling)


def workers_per_account(rate: float) -> int:
    # Enough concurrent calls to keep the account's rate limit busy at typical IAM latency.
    return max(4, min(64, math.ceil(rate)))


class _Scanner:
    def __init__(
        self,
        config: Config,
        factory: ClientFactory,
        credentials: AccountCredentials,
        options: ScanOptions,
        progress: Progress,
        recheck_arns: frozenset[str] = frozenset(),
    ) -> None:
        self.config = config
        self.factory = factory
        self.credentials = credentials
        self.options = options
        self.progress = progress
        self.recheck_arns = recheck_arns
        # What collection reads beyond the keys, for the rules of this run only.
        self.needs = Needs.of(config.rules)
        self.workers = workers_per_account(config.scan.account_rate_limit)
        # Where each account's adaptive rate starts: what the accounts before it found.
        self.crowding = Crowding()

    async def _collect(self, iam: IamReader, account_id: str) -> Collected:
        needs, polling = self.needs, self.options.report_polling
        if self.config.scan.strategy == "credential-report":
            return await collect_from_report(
                iam, account_id, self.workers, polling, needs, self.recheck_arns
            )
        return await collect_live(iam, account_id, self.workers, needs, polling)

    async def scan_account(
        self, account: Account, assumed: asyncio.Future[Any] | None = None
    ) -> AccountResult:
        """Scan one account; `assumed`, if given, is its session, asked for before it was
        listed."""
        scan = self.config.scan
        limiter = RateLimiter(
            scan.account_rate_limit, adaptive=scan.adaptive_rate, crowding=self.crowding
        )
        counter = CallCounter()
        result = AccountResult(account=account, scan_status=ScanStatus.FAILED)
        try:
            # A session that expires is renewed and the call retried (RefreshableCredentials),
            # so an account is never started again, however long its scan takes.
            credentials = await (assumed or self.credentials.get(account.id))
            async with self.factory.client("iam", limiter, counter, credentials) as iam:
                collected = await self._collect(iam, account.id)
        except AccountFailure as exc:
            result.error = exc.error
        except Exception as exc:  # one account must never stop the scan
            log.debug("account %s failed", account.id, exc_info=True)
            result.error = ScanError(code=error_code(exc), message=error_message(exc))
        else:
            result.users = sorted(collected.users, key=lambda u: u.arn)
            result.root_keys = collected.root_keys
            # Users that could not be read are in the evidence with their error, and so is a
            # root user whose keys could not be read; the account is then partial, which makes
            # the run incomplete.
            complete = all(user.complete for user in result.users) and (
                result.root_keys is None or result.root_keys.error is None
            )
            result.scan_status = ScanStatus.SCANNED if complete else ScanStatus.PARTIAL
            result.notes = collected.notes
            result.credential_report_generated_at = collected.report_generated_at
        result.api_calls = counter.calls
        result.throttles = limiter.throttles
        # Only a rate that adapted tells how crowded the account was.
        result.rate_at_end = round(float(limiter.target), 2) if limiter.adaptive else None
        if result.error:
            log.warning(
                "account %s failed: %s: %s", account.id, result.error.code, result.error.message
            )
        elif result.scan_status is ScanStatus.PARTIAL:
            log.warning(
                "account %s partly scanned: %d user(s) not fully read%s",
                account.id,
                sum(not user.complete for user in result.users),
                "; the root user's access keys unknown"
                if result.root_keys and result.root_keys.error
                else "",
            )
        return result


def _interrupted(account: Account, when: str) -> AccountResult:
    return AccountResult(
        account,
        ScanStatus.FAILED,
        error=ScanError(INTERRUPTED, f"the run was interrupted {when}"),
    )


class ResumeMismatch(Exception):
    """The previous run cannot be continued with this configuration or organization."""


def older_run(run_id: str, schema_version: str) -> ResumeMismatch:
    """A run written under an older findings.json schema was made by an older orgscan: its
    config digest covers settings whose meaning changed since (include_suspended, the default
    management_account), so no config file can match it, and "use the same config" would not
    help."""
    return ResumeMismatch(
        f"the previous run {run_id} was made by an older orgscan (findings.json schema "
        f"{schema_version}) and cannot be continued; scan anew with --output"
    )


def _narrowed_digest(config: Config, rules: list[str]) -> str | None:
    try:
        return config.with_rules(rules).digest()
    except ConfigError:
        return None


def _resumable(
    previous: ScanResult, config: Config, shard: Shard | None, retry_failed: bool = False
) -> dict[str, AccountResult]:
    """The previous run's finished accounts: scanned, or failed for a reason of their own.

    Skips are decided again from the current listing (an account may have been un-suspended
    since), and interrupted accounts are scanned again. With `retry_failed`, so are accounts
    that failed or were read only in part (a throttle or an outage may have passed since):
    only fully scanned accounts are kept.
    """
    if previous.run.config_digest != config.digest():
        rules = [r.id for r in previous.run.rules]
        if rules != [r.id for r in config.rules] and _narrowed_digest(config, rules) == (
            previous.run.config_digest
        ):
            raise ResumeMismatch(
                f"the previous run {previous.run.id} evaluated only the rules "
                f"{','.join(rules)}; resume it with --rules {','.join(rules)}"
            )
        raise ResumeMismatch(
            f"the previous run {previous.run.id} used a different configuration "
            f"({previous.run.config_digest}); resume it with the same config file"
        )
    if previous.run.shard != (str(shard) if shard else None):
        raise ResumeMismatch(
            f"the previous run {previous.run.id} scanned shard {previous.run.shard or 'none'}; "
            f"resume it with the same --shard (got {shard or 'none'})"
        )

    def kept(r: AccountResult) -> bool:
        if r.scan_status is ScanStatus.SKIPPED or r.interrupted:
            return False
        return r.scan_status is ScanStatus.SCANNED or not retry_failed

    return {r.account.id: r for r in previous.accounts if kept(r)}


async def scan(
    config: Config,
    *,
    progress: Progress | None = None,
    options: ScanOptions | None = None,
    stop: asyncio.Event | None = None,
    previous: ScanResult | None = None,
    shard: Shard | None = None,
    retry_failed: bool = False,
    recheck_arns: frozenset[str] = frozenset(),
    hints: Hints | None = None,
) -> ScanResult:
    """Scan the organization the ambient AWS credentials belong to.

    Setting `stop` ends the run early: no new account starts, accounts in flight are
    cancelled, and every account not finished is recorded as interrupted.
    `previous` continues an interrupted run: its finished accounts are kept as they were
    (its failed ones too, unless `retry_failed`). `recheck_arns` are users to read live even
    where a credential report is read: a baseline's findings, which a stale report must not
    show as resolved. `hints`, from an earlier sweep of the organization, order the accounts:
    those it took longest to scan are entered first.
    """
    options = options or ScanOptions()
    progress = progress or Progress()
    stop = stop or asyncio.Event()
    finished = _resumable(previous, config, shard, retry_failed) if previous else {}
    started = previous.run.started_at if previous else utcnow()
    results: list[AccountResult] = []
    run_errors: list[ScanError] = []
    async with management_session(config.scan) as management, progress:
        factory, org, sts = management.factory, management.organizations, management.sts
        try:
            identity, organization = await management.identify()
        except Exception as exc:
            raise ScanAborted(
                f"{error_code(exc)}: {error_message(exc)}{region_hint(factory, exc)}"
            ) from exc
        if previous and previous.run.organization_id != organization.id:
            raise ResumeMismatch(
                f"the previous run {previous.run.id} scanned organization "
                f"{previous.run.organization_id}, these credentials manage {organization.id}"
            )
        credentials = AccountCredentials(
            sts,
            identity,
            config.role,
            config.organization.management_account,
            organization.management_account_id,
        )
        scanner = _Scanner(config, factory, credentials, options, progress, recheck_arns)
        # Each account is judged as of the moment it was scanned: a resumed run may finish
        # accounts days after the original start, when a key has aged or an approval has lapsed.
        judge = Judge(config.rules, config.exceptions, identity.partition, started)
        account_filter = AccountFilter(
            config.organization, organization.management_account_id, shard
        )
        # Largest accounts first when an earlier sweep tells their sizes. Ids the filters skip by
        # id alone, and accounts a resumed run finished, are left to the walk. Roles are assumed
        # before the walk lists an account only where no OU filter may still skip it.
        expected = {
            account_id: seconds
            for account_id, seconds in (
                hints.expected_seconds(config.scan.account_rate_limit) if hints else {}
            ).items()
            if account_id not in finished and not account_filter.skips_id(account_id)
        }
        order = EntryOrder(expected, early=not account_filter.filters_ous)
        # The walk goes first to the OUs that hold them, so that the largest accounts are
        # listed (their IAM calls wait for it) within its first calls, not whenever it gets there.
        walk_order = WalkOrder.of(
            (hints.accounts[account_id].ou_ids, seconds)
            for account_id, seconds in expected.items()
            if hints
        )

        async def until_stopped(work: asyncio.Future[Any]) -> bool:
            """True when the work finished; False after cancelling it because `stop` was set."""
            stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            await asyncio.wait([work, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if work.done():
                return True
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            return False

        async def worker() -> None:
            while (entry := await order.next()) is not None:
                assumed = None
                if entry.early and not entry.listed.done():
                    assumed = asyncio.ensure_future(credentials.get(entry.account_id))
                account = await until_stopped(entry.listed) and entry.listed.result()
                if not account:
                    # Not in the organization (any more), skipped, or the run was stopped
                    # before the walk listed it: nothing to record as scanned.
                    if assumed is not None:
                        assumed.cancel()
                        await asyncio.gather(assumed, return_exceptions=True)
                    continue
                if stop.is_set():
                    result = _interrupted(account, "before this account was scanned")
                else:
                    began = utcnow()
                    task = asyncio.ensure_future(scanner.scan_account(account, assumed))
                    if await until_stopped(task):
                        result = task.result()
                        result.scanned_at = began
                        judge.judge(result)
                    else:
                        result = _interrupted(account, "while this account was scanned")
                results.append(result)
                progress.finished(result)

        async def list_accounts() -> None:
            async for account in walk_accounts(org, options.page_size, walk_order):
                reason = account_filter.skip_reason(account)
                if reason:
                    order.passed_over(account.id)
                    results.append(AccountResult(account, ScanStatus.SKIPPED, skip_reason=reason))
                elif account.id in finished:
                    order.passed_over(account.id)
                    results.append(finished[account.id])
                else:
                    order.listed(account)
                    progress.listed()

        workers = [asyncio.create_task(worker()) for _ in range(config.scan.max_accounts_in_flight)]
        try:
            listing = asyncio.ensure_future(list_accounts())
            if await until_stopped(listing):
                listing.result()
            else:
                run_errors.append(
                    ScanError(INTERRUPTED, "the run was interrupted while listing accounts")
                )
        except Exception as exc:
            # Accounts already listed are still scanned; the run says the listing broke off.
            log.error("listing the organization failed: %s", exc)
            run_errors.append(
                ScanError(error_code(exc), f"listing the organization failed: {error_message(exc)}")
            )
        finally:
            order.end()
            progress.listing_done()
        await asyncio.gather(*workers)

    results.sort(key=lambda r: r.account.id)
    run = RunInfo(
        id=new_run_id(),
        started_at=started,
        finished_at=utcnow(),
        tool_version=__version__,
        caller_arn=identity.arn,
        organization_id=organization.id,
        management_account_id=organization.management_account_id,
        partition=identity.partition,
        strategy=config.scan.strategy,
        role_name=config.role.name,
        config_digest=config.digest(),
        limits=Limits.of(config.scan),
        api_calls=management.calls.calls + sum(r.api_calls for r in results),
        errors=run_errors,
        warnings=config_warnings(config) + account_filter.unmatched() + credentials.warnings,
        resumed_from=previous.run.id if previous else None,
        shard=str(shard) if shard else None,
        rules=list(config.rules),
    )
    findings = judge.findings(results)
    run.complete = sweep_complete(results, run_errors)
    return ScanResult(
        run=run,
        accounts=results,
        findings=findings,
        exceptions=list(config.exceptions),
        controls=list(config.controls),
    )
