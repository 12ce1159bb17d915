"""The pipeline: organization → credentials → collection → evaluation, concurrently and bounded.

Accounts are fed to a fixed pool of workers as the OU walk lists them, so scanning starts at
once and the number of accounts in flight (connections, memory) never exceeds the cap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from orgscan import __version__
from orgscan.clients import CallCounter, ClientFactory, RateLimiter, error_code, error_message
from orgscan.collect.credential_report import ReportPolling, collect_from_report
from orgscan.collect.live import Collected, collect_live
from orgscan.config import Config
from orgscan.evaluate import evaluate
from orgscan.model import (
    Account,
    AccountFailure,
    AccountResult,
    Limits,
    RunInfo,
    ScanError,
    ScanResult,
    ScanStatus,
    utcnow,
)
from orgscan.organizations import AccountFilter, describe_organization, walk_accounts
from orgscan.progress import Progress
from orgscan.sessions import AccountCredentials, caller_identity

log = logging.getLogger(__name__)

# A token that expires mid-account is re-assumed once; a second expiry is a real failure.
EXPIRED_TOKEN = frozenset({"ExpiredToken", "ExpiredTokenException"})


class ScanAborted(Exception):
    """The scan could not start: no caller identity or no organization to walk."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """Knobs that are not configuration: paging and polling, which tests and the bench tune."""

    page_size: int | None = None
    report_polling: ReportPolling = field(default_factory=ReportPolling)


def new_run_id() -> str:
    return f"{utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


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
    ) -> None:
        self.config = config
        self.factory = factory
        self.credentials = credentials
        self.options = options
        self.progress = progress
        self.workers = workers_per_account(config.scan.account_rate_limit)

    async def _collect(self, iam: Any, account_id: str) -> Collected:
        if self.config.scan.strategy == "credential-report":
            return await collect_from_report(
                iam, account_id, self.workers, self.options.report_polling
            )
        return await collect_live(iam, account_id, self.workers)

    async def scan_account(self, account: Account) -> AccountResult:
        limiter = RateLimiter(self.config.scan.account_rate_limit)
        counter = CallCounter()
        result = AccountResult(account=account, scan_status=ScanStatus.FAILED)
        for attempt in (1, 2):
            try:
                credentials = await self.credentials.get(account.id)
                async with self.factory.client(
                    "iam", limiter, counter, credentials, pool=self.workers
                ) as iam:
                    collected = await self._collect(iam, account.id)
            except AccountFailure as exc:
                result.error = exc.error
            except Exception as exc:  # one account must never stop the scan
                code = error_code(exc)
                if code in EXPIRED_TOKEN and attempt == 1:
                    log.info("account %s: %s, assuming the role again", account.id, code)
                    continue
                log.debug("account %s failed", account.id, exc_info=True)
                result.error = ScanError(code=code, message=error_message(exc))
            else:
                result.scan_status = ScanStatus.SCANNED
                result.users = sorted(collected.users, key=lambda u: u.arn)
                result.notes = collected.notes
                result.credential_report_generated_at = collected.report_generated_at
            break
        result.api_calls = counter.calls
        if result.error:
            log.warning(
                "account %s failed: %s: %s", account.id, result.error.code, result.error.message
            )
        return result


async def scan(
    config: Config,
    *,
    progress: Progress | None = None,
    options: ScanOptions | None = None,
    run_id: str | None = None,
) -> ScanResult:
    """Scan the organization the ambient AWS credentials belong to."""
    options = options or ScanOptions()
    progress = progress or Progress()
    started = utcnow()
    factory = ClientFactory(config.scan)
    management = RateLimiter(config.scan.management_rate_limit)
    management_calls = CallCounter()
    results: list[AccountResult] = []
    run_errors: list[ScanError] = []
    async with (
        factory.client("organizations", management, management_calls) as org,
        factory.client("sts", management, management_calls) as sts,
    ):
        try:
            identity = await caller_identity(sts)
            organization = await describe_organization(org)
        except Exception as exc:
            raise ScanAborted(f"{error_code(exc)}: {error_message(exc)}") from exc
        scanner = _Scanner(
            config,
            factory,
            AccountCredentials(sts, identity, config, organization.management_account_id),
            options,
            progress,
        )
        account_filter = AccountFilter(config.organization, organization.management_account_id)
        queue: asyncio.Queue[Account | None] = asyncio.Queue()

        async def worker() -> None:
            while (account := await queue.get()) is not None:
                result = await scanner.scan_account(account)
                results.append(result)
                progress.finished(result)

        workers = [asyncio.create_task(worker()) for _ in range(config.scan.max_accounts_in_flight)]
        try:
            async for account in walk_accounts(org, options.page_size):
                reason = account_filter.skip_reason(account)
                if reason:
                    results.append(AccountResult(account, ScanStatus.SKIPPED, skip_reason=reason))
                else:
                    queue.put_nowait(account)
                    progress.listed()
        except Exception as exc:
            # Accounts already listed are still scanned; the run says the listing broke off.
            log.error("listing the organization failed: %s", exc)
            run_errors.append(
                ScanError(error_code(exc), f"listing the organization failed: {error_message(exc)}")
            )
        finally:
            for _ in workers:
                queue.put_nowait(None)
            progress.listing_done()
        await asyncio.gather(*workers)
        progress.close()

    results.sort(key=lambda r: r.account.id)
    users = [user for result in results for user in result.users]
    finished = utcnow()
    run = RunInfo(
        id=run_id or new_run_id(),
        started_at=started,
        finished_at=finished,
        tool_version=__version__,
        caller_arn=identity.arn,
        organization_id=organization.id,
        management_account_id=organization.management_account_id,
        partition=identity.partition,
        strategy=config.scan.strategy,
        role_name=config.role.name,
        config_digest=config.digest(),
        limits=Limits(
            max_accounts_in_flight=config.scan.max_accounts_in_flight,
            management_rate_limit=config.scan.management_rate_limit,
            account_rate_limit=config.scan.account_rate_limit,
            max_attempts=config.scan.max_attempts,
        ),
        complete=not run_errors and all(r.scan_status is not ScanStatus.FAILED for r in results),
        api_calls=management_calls.calls + sum(r.api_calls for r in results),
        errors=run_errors,
        warnings=account_filter.unmatched(),
    )
    return ScanResult(
        run=run,
        accounts=results,
        findings=evaluate(users, config.exceptions, started.date()),
        exceptions=list(config.exceptions),
        controls=list(config.controls),
    )
