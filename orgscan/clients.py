"""AWS clients with retries, rate limits and call counting applied in one place.

The rate limit is taken in botocore's `before-send` event, so it applies to every HTTP attempt,
retries included: a retried call spends AWS's rate budget too.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from asyncio_throttle import Throttler
from botocore.httpsession import create_urllib3_context, get_cert_path

from orgscan.config import ScanConfig

DEFAULT_REGION = "us-east-1"


class RateLimiter(Throttler):  # type: ignore[misc]
    """asyncio-throttle's sliding window, sleeping until a slot frees instead of polling.

    The stock `acquire` wakes every 10 ms per waiter; with hundreds of waiting accounts that
    polling alone costs real CPU on the event loop.
    """

    def __init__(self, rate_per_second: float) -> None:
        # A fractional rate becomes a whole number of calls per a longer window.
        calls = max(1, int(rate_per_second))
        super().__init__(rate_limit=calls, period=calls / rate_per_second)

    async def acquire(self) -> None:
        while True:
            self.flush()
            if len(self._task_logs) < self.rate_limit:
                break
            await asyncio.sleep(max(0.0, self._task_logs[0] + self.period - time.monotonic()))
        self._task_logs.append(time.monotonic())


@dataclass(slots=True)
class CallCounter:
    calls: int = 0


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def client_kwargs(self) -> dict[str, str | None]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


@functools.cache
def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    context: ssl.SSLContext = create_urllib3_context()
    if ca_bundle:
        context.load_verify_locations(ca_bundle, None, None)
    return context


class SharedTLSSession(AIOHTTPSession):  # type: ignore[misc]
    """Reuses one loaded CA bundle across clients.

    aiobotocore builds a fresh SSL context and parses the CA bundle for every client, about
    50 ms of CPU that blocks the event loop; across hundreds of accounts that is real time.
    """

    def _create_connector(self, proxy_url: str | None) -> aiohttp.TCPConnector:
        if proxy_url or self._cert_file or not self._verify:
            return cast(aiohttp.TCPConnector, super()._create_connector(proxy_url))
        connector: aiohttp.TCPConnector = aiohttp.TCPConnector(
            limit=self._max_pool_connections,
            ssl=_tls_context(get_cert_path(self._verify)),
            **self._connector_args,
        )
        return connector


class ClientFactory:
    """One aioboto3 session for the run; clients take explicit credentials per account.

    Sharing the session shares botocore's loaded service models, so a client per account costs
    no JSON parsing; credentials are per client, which is all that differs between accounts.
    """

    def __init__(self, scan: ScanConfig) -> None:
        self.session = aioboto3.Session()
        self.region = self.session.region_name or DEFAULT_REGION
        self._scan = scan

    def _config(self, pool: int) -> AioConfig:
        return AioConfig(
            # In this dict botocore's "max_attempts" counts retries; the total is what we mean.
            retries={"mode": "standard", "total_max_attempts": self._scan.max_attempts},
            max_pool_connections=pool,
            # A hanging endpoint must fail its call (then retry), never stall the account.
            connect_timeout=self._scan.call_timeout,
            read_timeout=self._scan.call_timeout,
            http_session_cls=SharedTLSSession,
        )

    @asynccontextmanager
    async def client(
        self,
        service: str,
        limiter: Throttler,
        counter: CallCounter,
        credentials: Credentials | None = None,
        pool: int = 10,
    ) -> AsyncIterator[Any]:
        kwargs = credentials.client_kwargs() if credentials else {}
        async with self.session.client(
            service, region_name=self.region, config=self._config(pool), **kwargs
        ) as client:

            async def before_send(**_: Any) -> None:
                counter.calls += 1
                await limiter.acquire()

            client.meta.events.register("before-send", before_send)
            yield client


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(exc) or type(exc).__name__
