"""AWS clients with retries, rate limits and call counting applied in one place.

One client per service serves every account (`ClientFactory`); each account gets a
`BoundClient` view that signs with its credentials and charges its limiter and counter. The
rate limit is taken for every HTTP attempt, retries included (in botocore's `before-send`
event, or by the wire for the hot calls it sends): a retried call spends AWS's rate budget too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import platform
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

import aioboto3
import aiobotocore
import aiohttp
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentials
from aiobotocore.httpsession import AIOHTTPSession
from asyncio_throttle import Throttler
from botocore.exceptions import ClientError
from botocore.httpsession import create_urllib3_context, get_cert_path
from botocore.parsers import ResponseParserFactory
from botocore.utils import parse_timestamp

from orgscan.config import ScanConfig
from orgscan.model import AccountFailure
from orgscan.wire import WIRE_OPERATIONS, QueryWire, Retries, WireCredentials

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_REGION = "us-east-1"
# AWS's answers to a call signed with a session that has expired (query and JSON protocols).
EXPIRED_TOKEN = frozenset({"ExpiredToken", "ExpiredTokenException"})
# Sessions are renewed this long before they expire: botocore's refreshable credentials stop
# using theirs 10 minutes before (its "mandatory" refresh). A session shorter than twice this is
# renewed halfway through instead, so that a renewal is never due the moment it is made.
REFRESH_AHEAD = 600.0
# When a renewal ahead of time fails, the old session is used for now and renewal tried again
# this much later, until the old session has no more than this left.
REFRESH_RETRY = 30.0
# ExpiredToken answers one call may meet; each needs a session that worked since it was made.
MAX_RENEWALS = 3


def configured_region(session: aioboto3.Session) -> str | None:
    """The region the AWS CLI and SDKs would use: AWS_REGION, then botocore's own chain
    (AWS_DEFAULT_REGION, the profile). botocore 1.40 reads only AWS_DEFAULT_REGION, and a
    GovCloud or China caller with only AWS_REGION set would otherwise be sent to the `aws`
    partition's endpoints."""
    return os.environ.get("AWS_REGION") or session.region_name or None


class RateLimiter(Throttler):  # type: ignore[misc]
    """A token bucket like AWS's own (a burst of one second's calls, then the rate), in which
    each caller reserves its own slot and sleeps once, until exactly then.

    asyncio-throttle's `acquire` polls every 10 ms per waiter; waking all waiters whenever a
    slot frees is no better, since all but one go back to sleep. Here the bucket may run into
    debt: a caller takes a token, and if none was there it waits for its turn in the refill.
    Callers are served in arrival order, and nothing wakes without a slot. A cancelled caller's
    token stays spent, which errs on the safe side of the limit.

    Two things can still make calls reach AWS closer together than planned:
    - A busy event loop wakes sleepers late, and all the late ones at once. So a caller that
      wakes is also checked against a second bucket charged when calls are really sent; if
      late predecessors used its token, it waits again for the shortfall (rarely, and briefly).
    - Calls take different times to reach AWS. Holding back `JITTER` seconds' worth of the
      burst keeps the calls that arrive in any interval within what AWS admits, for
      differences up to `JITTER`.
    """

    JITTER = 0.2  # seconds
    REFILL = 0.995  # of the rate, against rounding at the bucket's edge

    def __init__(self, rate_per_second: float) -> None:
        # asyncio-throttle's terms, for anyone who reads them: `rate_limit` calls per `period`.
        calls = max(1, int(rate_per_second))
        super().__init__(rate_limit=calls, period=calls / rate_per_second)
        # AWS's bucket: `burst` calls, refilled at the rate. Ours holds JITTER seconds' worth
        # fewer. Where that would leave less than one call, ours refills more slowly instead,
        # so that two calls sent back to back still arrive a full 1/rate apart.
        burst = max(1.0, rate_per_second)
        self.capacity = max(1.0, burst - rate_per_second * self.JITTER)
        slowest = (burst + 1 - self.capacity) / (1 / rate_per_second + self.JITTER)
        self.rate = min(rate_per_second, slowest) * self.REFILL
        now = time.monotonic()
        self._planned, self._planned_at = self.capacity, now  # tokens, as of when
        self._sent, self._sent_at = self.capacity, now

    def reserve(self, now: float) -> float:
        """Plan a call at time `now` (monotonic seconds): the seconds until its slot."""
        tokens = min(self.capacity, self._planned + (now - self._planned_at) * self.rate) - 1.0
        self._planned, self._planned_at = tokens, now
        return max(0.0, -tokens / self.rate)

    def take(self, now: float) -> float:
        """Send a call at time `now` if the calls really sent leave a token: 0.0, the token
        taken. Otherwise the seconds until one is there (nothing taken)."""
        tokens = min(self.capacity, self._sent + (now - self._sent_at) * self.rate)
        if tokens >= 1.0:
            self._sent, self._sent_at = tokens - 1.0, now
            return 0.0
        self._sent, self._sent_at = tokens, now
        return (1.0 - tokens) / self.rate

    async def acquire(self) -> None:
        wait = self.reserve(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        while (wait := self.take(time.monotonic())) > 0:
            await asyncio.sleep(wait)


@dataclass(slots=True)
class CallCounter:
    calls: int = 0


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None  # as AssumeRole gives it; None: they do not expire

    def for_signing(self) -> AioCredentials:
        return AioCredentials(self.access_key_id, self.secret_access_key, self.session_token)

    def client_kwargs(self) -> dict[str, str | None]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


class SessionKeys:
    """One issue of an account's credentials, in the forms botocore and the wire sign with."""

    __slots__ = ("expires_at", "refresh_at", "renewable", "signing", "wire")

    def __init__(self, credentials: Credentials, now: float, refreshable: bool) -> None:
        self.signing = credentials.for_signing()
        self.wire = WireCredentials(
            credentials.access_key_id, credentials.secret_access_key, credentials.session_token
        )
        expiration = credentials.expiration
        self.expires_at = expiration.timestamp() if expiration else math.inf
        lifetime = self.expires_at - now
        self.refresh_at = (
            self.expires_at - min(REFRESH_AHEAD, lifetime / 2) if refreshable else math.inf
        )
        # Whether an ExpiredToken answer to these keys is worth a renewal. Keys from a renewal
        # earn it by working once: fresh keys that AWS refuses at once would be refused again.
        self.renewable = True


class RefreshableCredentials:
    """One account's session: renewed a little before it expires, as botocore renews its
    refreshable credentials, and at once when AWS answers ExpiredToken, so that the call can be
    retried (see `BoundClient`) rather than the account started again.

    `renew` obtains new credentials (AssumeRole again); without it the credentials are fixed.
    One renewal at a time: calls that find their keys already replaced just use the new ones.
    """

    def __init__(
        self,
        credentials: Credentials,
        renew: Callable[[], Awaitable[Credentials]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._renew = renew
        self.clock = clock
        self._lock = asyncio.Lock()
        self.keys = SessionKeys(credentials, clock(), renew is not None)
        self.renewals = 0

    async def _replace(self) -> SessionKeys:
        assert self._renew is not None
        credentials = await self._renew()
        self.renewals += 1
        self.keys = SessionKeys(credentials, self.clock(), refreshable=True)
        self.keys.renewable = False
        return self.keys

    async def current(self) -> SessionKeys:
        """The keys to sign with now, renewed first when their time has come."""
        keys = self.keys
        if self.clock() < keys.refresh_at:
            return keys
        async with self._lock:
            if self.keys is not keys:
                return self.keys
            try:
                return await self._replace()
            except Exception as exc:
                now = self.clock()
                if now + REFRESH_RETRY >= keys.expires_at:
                    raise
                log.warning(
                    "renewing a session failed (%s); using it for its last %.0f s",
                    exc,
                    keys.expires_at - now,
                )
                keys.refresh_at = now + REFRESH_RETRY
                return keys

    async def expired(self, keys: SessionKeys, error: ClientError) -> SessionKeys:
        """AWS answered ExpiredToken to a call signed with `keys`: the keys to retry it with."""
        async with self._lock:
            if self.keys is not keys:
                return self.keys  # another call renewed the session already
            if self._renew is None:
                raise error
            if not keys.renewable:
                raise AccountFailure(
                    error_code(error),
                    f"{error_message(error)} (the session had just been renewed)",
                )
            return await self._replace()

    async def call(self, send: Callable[[SessionKeys], Awaitable[T]]) -> T:
        """`send` signed with the current keys; after ExpiredToken, again with renewed ones."""
        keys = self.keys
        if self.clock() >= keys.refresh_at:
            keys = await self.current()
        renewals = 0
        while True:
            try:
                response = await send(keys)
            except ClientError as exc:
                if renewals == MAX_RENEWALS or error_code(exc) not in EXPIRED_TOKEN:
                    raise
                renewals += 1
                log.info("%s; renewing the session to retry the call", error_code(exc))
                keys = await self.expired(keys, exc)
            else:
                keys.renewable = True
                return response


@functools.cache
def _tls_context(ca_bundle: str | bool | None) -> ssl.SSLContext:
    """A context that verifies certificates and host names; `ca_bundle` is a CA file, else
    the system's (botocore's `get_cert_path`: a path, or True/None for the default)."""
    context: ssl.SSLContext = create_urllib3_context()
    # botocore's context leaves hostname checks to urllib3, which makes them itself; aiohttp
    # does not, so without this a certificate for any name would be accepted.
    context.check_hostname = True
    if isinstance(ca_bundle, str):
        context.load_verify_locations(ca_bundle, None, None)
    return context


class SharedTLSSession(AIOHTTPSession):  # type: ignore[misc]
    """Every connection verifies the server's certificate and host name, with one loaded CA
    bundle shared by all clients.

    aiobotocore builds a fresh SSL context and parses the CA bundle for every client, about
    50 ms of CPU that blocks the event loop; across hundreds of accounts that is real time.
    Worse, its context checks no host names, and behind a proxy (HTTPS_PROXY) it connects with
    `ssl=False` unless a proxy CA bundle is configured: any certificate would do. orgscan
    configures no client certificate and no proxy TLS settings, so one verifying context
    serves every connection, through a proxy's CONNECT tunnel as well.
    """

    def _create_connector(self, proxy_url: str | None) -> aiohttp.TCPConnector:
        connector: aiohttp.TCPConnector = aiohttp.TCPConnector(
            limit=self._max_pool_connections,
            ssl=_tls_context(get_cert_path(self._verify)),
            **self._connector_args,
        )
        return connector


def _timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, with the common ISO 8601 case done by the standard library.

    botocore parses every timestamp with dateutil, about 40 µs each; ListUsers and
    ListAccessKeys answer with one or two per item.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    return cast(datetime, parse_timestamp(value))


def _query_parser() -> Any:
    """botocore's (synchronous) query-protocol parser, with the fast timestamp parser."""
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=_timestamp)
    return factory.create_parser("query")


@functools.cache
def _user_agent() -> str:
    from orgscan import __version__

    return (
        f"orgscan/{__version__} aiobotocore/{aiobotocore.__version__} "
        f"botocore/{botocore.__version__} Python/{platform.python_version()}"
    )


class _Binding:
    """What distinguishes one account's calls on a shared client."""

    __slots__ = ("_retries", "counter", "limiter", "max_attempts", "session")

    def __init__(
        self,
        limiter: Throttler,
        counter: CallCounter,
        credentials: Credentials | RefreshableCredentials | None,
        max_attempts: int,
    ) -> None:
        self.limiter = limiter
        self.counter = counter
        self.session = (
            RefreshableCredentials(credentials)
            if isinstance(credentials, Credentials)
            else credentials
        )
        self.max_attempts = max_attempts
        self._retries: Retries | None = None

    @property
    def retries(self) -> Retries:
        if self._retries is None:
            self._retries = Retries(self.max_attempts)
        return self._retries


# The binding of the call in progress, set around each call by BoundClient.
_BINDING: ContextVar[_Binding | None] = ContextVar("orgscan_client_binding", default=None)


async def _before_send(**_: Any) -> None:
    # The rate limit is taken for every HTTP attempt, retries included: a retried call spends
    # AWS's rate budget too.
    binding = _BINDING.get()
    if binding is not None:
        binding.counter.calls += 1
        await binding.limiter.acquire()


def _before_sign(request: Any, **_: Any) -> None:
    # botocore signs with `request_credentials` from the request's signing context when given,
    # else with the client's own: one client serves every account.
    binding = _BINDING.get()
    if binding is None:
        # Fail closed: unbound, the shared client would sign with the caller's own keys and
        # read the management account's IAM as if it were the member account's.
        raise RuntimeError("an AWS call outside any account binding; refusing to sign it")
    if binding.session is not None:
        # The session's keys as they are now: a retry after a renewal signs with the new ones.
        request.context.setdefault("signing", {})["request_credentials"] = (
            binding.session.keys.signing
        )


def _bound(method: Callable[..., Awaitable[Any]], binding: _Binding) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        token = _BINDING.set(binding)
        try:
            if binding.session is None:
                return await method(*args, **kwargs)
            return await binding.session.call(lambda _: method(*args, **kwargs))
        finally:
            _BINDING.reset(token)

    return call


async def _bound_pages(pages: Any, binding: _Binding) -> AsyncIterator[Any]:
    iterator = pages.__aiter__()
    while True:
        token = _BINDING.set(binding)
        try:
            page = await iterator.__anext__()
        except StopAsyncIteration:
            return
        finally:
            _BINDING.reset(token)
        yield page


class BoundPaginator:
    def __init__(self, paginator: Any, binding: _Binding) -> None:
        self._paginator = paginator
        self._binding = binding

    def paginate(self, **kwargs: Any) -> AsyncIterator[Any]:
        return _bound_pages(self._paginator.paginate(**kwargs), self._binding)


def _wired(wire: QueryWire, operation: str, binding: _Binding) -> Callable[..., Any]:
    async def call(**params: Any) -> Any:
        session = binding.session
        if session is None:  # the caller's own credentials, which botocore's chain refreshes
            return await wire.call(
                operation, params, None, binding.limiter, binding.counter, binding.retries
            )

        def send(keys: SessionKeys) -> Awaitable[Any]:
            return wire.call(
                operation, params, keys.wire, binding.limiter, binding.counter, binding.retries
            )

        return await session.call(send)

    return call


class BoundClient:
    """One account's view of a client: every call made through it is signed with the account's
    credentials, counted in its counter and paced by its limiter.

    The scan's hot IAM calls (`wire.WIRE_OPERATIONS`) go over the wire directly when the
    factory has one for the service; every other call is botocore's. Anything that is not an
    API call or a paginator (`meta`, `exceptions`, ...) is the client's.
    """

    def __init__(
        self,
        client: Any,
        binding: _Binding,
        paginators: dict[str, Any],
        wire: QueryWire | None = None,
    ) -> None:
        self._client = client
        self._binding = binding
        self._paginators = paginators
        self._wire = wire
        self._operations = client.meta.method_to_api_mapping
        self._methods: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        operation = self._operations.get(name)
        if operation is None:
            return getattr(self._client, name)
        method = self._methods.get(name)
        if method is None:
            if self._wire is not None and operation in self._wire.operations:
                method = _wired(self._wire, operation, self._binding)
            else:
                method = _bound(getattr(self._client, name), self._binding)
            self._methods[name] = method
        return method

    def with_own_retries(self) -> BoundClient:
        """The same client, credentials, limiter and counter, with a retry budget of its own:
        an account's AssumeRole calls must not spend other accounts' retries."""
        binding = _Binding(
            self._binding.limiter,
            self._binding.counter,
            self._binding.session,
            self._binding.max_attempts,
        )
        return BoundClient(self._client, binding, self._paginators, self._wire)

    def get_paginator(self, operation: str) -> BoundPaginator:
        # botocore builds a paginator class, docstrings and all, on every get_paginator call.
        paginator = self._paginators.get(operation)
        if paginator is None:
            paginator = self._paginators[operation] = self._client.get_paginator(operation)
        return BoundPaginator(paginator, self._binding)


class ClientFactory:
    """One aioboto3 session for the run, and one client per service shared by every account.

    A client per account cost about 20 ms of CPU to build (a new client class with a method
    per operation, a copy of the event handlers, endpoint and retry set-up) and a connection
    pool of its own. Since only the credentials differ between accounts, `client()` hands out a
    `BoundClient`: the shared client, with the account's credentials, limiter and counter
    applied to each call. All accounts' calls then share one pool of kept-alive connections,
    and the hot IAM calls go over a `QueryWire` (see orgscan/wire.py) unless `wire` is False.

    Shared clients live while the factory is open (`async with factory:`); outside it, each
    `client()` builds and closes a client of its own, as before.
    """

    # Connections per shared client: enough for every account's calls in flight at once (their
    # rate limits times the latency), well under the process's file limit.
    SHARED_POOL = 512

    def __init__(self, scan: ScanConfig, *, wire: bool = True) -> None:
        self.session = aioboto3.Session()
        # The region picks the partition of every endpoint (IAM, Organizations, STS) and the
        # regional STS endpoint that every AssumeRole goes to.
        self.region_configured = configured_region(self.session) is not None
        self.region = configured_region(self.session) or DEFAULT_REGION
        self._scan = scan
        self._use_wire = wire
        self._session_parser().set_parser_defaults(timestamp_parser=_timestamp)
        self._stack: AsyncExitStack | None = None
        self._shared: dict[str, Any] = {}
        self._wires: dict[str, QueryWire | None] = {}
        self._paginators: dict[str, dict[str, Any]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    def _session_parser(self) -> Any:
        return self.session._session.get_component("response_parser_factory")

    def _config(self, pool: int) -> AioConfig:
        return AioConfig(
            # In this dict botocore's "max_attempts" counts retries; the total is what we mean.
            retries={"mode": "standard", "total_max_attempts": self._scan.max_attempts},
            max_pool_connections=pool,
            # A hanging endpoint must fail its call (then retry), never stall the account.
            connect_timeout=self._scan.call_timeout,
            read_timeout=self._scan.call_timeout,
            http_session_cls=SharedTLSSession,
            # Every call is built here from data we control; validating it costs CPU per call.
            parameter_validation=False,
            # botocore rebuilds its User-Agent twice per request (about 10% of a call's CPU);
            # a fixed one is built once, and names orgscan in CloudTrail's userAgent field.
            user_agent=_user_agent(),
        )

    @staticmethod
    def _hook(client: Any) -> Any:
        client.meta.events.register("before-send", _before_send)
        client.meta.events.register("before-sign", _before_sign)
        return client

    async def __aenter__(self) -> ClientFactory:
        self._stack = AsyncExitStack()
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        self._shared.clear()
        self._wires.clear()
        self._paginators.clear()
        self._http = None
        if stack is not None:
            await stack.aclose()

    async def _http_session(self) -> aiohttp.ClientSession:
        assert self._stack is not None
        if self._http is None:
            # As aiobotocore configures its own: the CA bundle botocore would use (AWS config,
            # then REQUESTS_CA_BUNDLE), loaded once and checking host names, through a proxy
            # too; no decompression; and no cookies. Proxies are the wire's, read once.
            verify = self.session._session.get_config_variable("ca_bundle") or os.environ.get(
                "REQUESTS_CA_BUNDLE", True
            )
            connector = aiohttp.TCPConnector(
                limit=self.SHARED_POOL,
                ssl=_tls_context(get_cert_path(verify)),
                keepalive_timeout=12,
            )
            self._http = await self._stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=connector,
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=self._scan.call_timeout, sock_read=self._scan.call_timeout
                    ),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                )
            )
        return self._http

    async def _shared_client(self, service: str) -> tuple[Any, QueryWire | None]:
        assert self._stack is not None
        async with self._lock:
            client = self._shared.get(service)
            if client is None:
                context = self.session.client(
                    service, region_name=self.region, config=self._config(self.SHARED_POOL)
                )
                client = self._shared[service] = self._hook(
                    await self._stack.enter_async_context(context)
                )
                self._paginators[service] = {}
                wire = None
                if self._use_wire and service in WIRE_OPERATIONS:
                    wire = await QueryWire.for_client(
                        client,
                        await self._http_session(),
                        _query_parser(),
                        _user_agent(),
                        self._scan.max_attempts,
                        await self.session._session.get_credentials(),
                    )
                self._wires[service] = wire
        return client, self._wires[service]

    async def endpoint_url(self, service: str) -> str:
        """The URL botocore's endpoint rules choose for `service` in this region (partition,
        AWS_ENDPOINT_URL_<SERVICE>...): what the STS region of an error message or a
        preflight means. Needs the factory open; nothing is sent."""
        client, _ = await self._shared_client(service)
        return str(client.meta.endpoint_url)

    @asynccontextmanager
    async def client(
        self,
        service: str,
        limiter: Throttler,
        counter: CallCounter,
        credentials: Credentials | RefreshableCredentials | None = None,
        pool: int = 10,
    ) -> AsyncIterator[Any]:
        """A client for `service` whose calls use `credentials` (None: the caller's own), count
        in `counter` and respect `limiter`. `pool` sizes the connections of a client of its
        own; a shared client has a pool for all accounts."""
        binding = _Binding(limiter, counter, credentials, self._scan.max_attempts)
        if self._stack is not None:
            shared, wire = await self._shared_client(service)
            yield BoundClient(shared, binding, self._paginators[service], wire)
            return
        async with self.session.client(
            service, region_name=self.region, config=self._config(pool)
        ) as client:
            yield BoundClient(self._hook(client), binding, {})


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
