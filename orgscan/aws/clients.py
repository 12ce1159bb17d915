"""The one send path to AWS: shared clients and the wire, with rate limits, retries and call
counting applied in one place, for the scan, remediation, preflight and the watch alike.

One client per service serves every account (`ClientFactory`, open for the run inside
`async with`); each account gets a `BoundClient` that signs with its credentials and charges its
limiter and counter. The rate limit is taken for every HTTP attempt, retries included (in
botocore's `before-send` event, or by the wire for the hot calls it sends): a retried call
spends AWS's rate budget too. Each account has its own retry quota, on both paths.
"""

from __future__ import annotations

import asyncio
import functools
import os
import platform
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, cast

import aioboto3
import aiobotocore
import aiohttp
import botocore
from aiobotocore.config import AioConfig

from orgscan.aws import botocore_adapter as internals
from orgscan.aws.credentials import Credentials, RefreshableCredentials, SessionKeys
from orgscan.aws.errors import error_code
from orgscan.aws.interfaces import Answer
from orgscan.aws.ratelimit import CallCounter, Limiter
from orgscan.aws.tls import SharedTLSSession, tls_context
from orgscan.aws.wire import THROTTLES, WIRE_OPERATIONS, QueryWire, Retries
from orgscan.config import ScanConfig

DEFAULT_REGION = "us-east-1"


def configured_region(session: aioboto3.Session) -> str | None:
    """The region the AWS CLI and SDKs would use: AWS_REGION, then botocore's own chain
    (AWS_DEFAULT_REGION, the profile). botocore 1.40 reads only AWS_DEFAULT_REGION, and a
    GovCloud or China caller with only AWS_REGION set would otherwise be sent to the `aws`
    partition's endpoints."""
    return os.environ.get("AWS_REGION") or session.region_name or None


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
    return cast(datetime, internals.parse_timestamp(value))


def _query_parser() -> Any:
    """botocore's (synchronous) query-protocol parser, with the fast timestamp parser."""
    factory = internals.ResponseParserFactory()
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
        limiter: Limiter,
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
# When the attempt in progress was sent: both hooks run in the calling task's context.
_SENT_AT: ContextVar[float | None] = ContextVar("orgscan_sent_at", default=None)


async def _before_send(**_: Any) -> None:
    # The rate limit is taken for every HTTP attempt, retries included: a retried call spends
    # AWS's rate budget too.
    binding = _BINDING.get()
    if binding is not None:
        binding.counter.calls += 1
        _SENT_AT.set(await binding.limiter.acquire())


def _after_attempt(**kwargs: Any) -> None:
    # botocore's needs-retry event, after every attempt: the account's rate adapts to what AWS
    # answered, as on the wire. Returns None, so botocore's own retry decision stands.
    binding = _BINDING.get()
    if binding is None or kwargs.get("caught_exception") is not None:
        return
    if THROTTLES.is_throttling_error(**kwargs):
        binding.limiter.throttled(_SENT_AT.get())
    elif kwargs["response"][0].status_code < 300:
        binding.limiter.succeeded()


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


class _AccountRetryQuota:
    """botocore's retry quota, asked of the account whose call is in progress.

    aiobotocore gives each client one quota (500, 5 a retry), and one client serves every
    account: a hundred throttled calls anywhere would stop every account's retries, key changes
    included. Each account has its own, the one its wire calls spend (`_Binding.retries`)."""

    @staticmethod
    def acquire_retry_quota(context: Any) -> bool:
        binding = _BINDING.get()
        # Unbound calls are refused before they are sent (`_before_sign`); never retried.
        return binding is not None and bool(binding.retries.quota.acquire_retry_quota(context))

    @staticmethod
    def release_retry_quota(context: Any, http_response: Any, **kwargs: Any) -> None:
        binding = _BINDING.get()
        if binding is not None:
            binding.retries.quota.release_retry_quota(context, http_response, **kwargs)


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
    """One account's view of a shared client: every call made through it is signed with the
    account's credentials, counted in its counter and paced by its limiter.

    It has the typed methods of the seams in `orgscan.aws.interfaces` and nothing else. The
    scan's hot calls (`wire.WIRE_OPERATIONS`) go over the wire when the factory has one for the
    service; every other call is the shared botocore client's.
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
        self._methods: dict[str, Callable[..., Awaitable[Answer]]] = {}

    def _send(self, operation: str, name: str) -> Callable[..., Awaitable[Answer]]:
        method = self._methods.get(operation)
        if method is None:
            if self._wire is not None and operation in self._wire.operations:
                method = _wired(self._wire, operation, self._binding)
            else:
                method = _bound(getattr(self._client, name), self._binding)
            self._methods[operation] = method
        return method

    # IAM (IamReader, IamWriter)
    def list_users(self, **params: Any) -> Awaitable[Answer]:
        return self._send("ListUsers", "list_users")(**params)

    def list_access_keys(self, **params: Any) -> Awaitable[Answer]:
        return self._send("ListAccessKeys", "list_access_keys")(**params)

    def get_access_key_last_used(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GetAccessKeyLastUsed", "get_access_key_last_used")(**params)

    def generate_credential_report(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GenerateCredentialReport", "generate_credential_report")(**params)

    def get_credential_report(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GetCredentialReport", "get_credential_report")(**params)

    def get_account_summary(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GetAccountSummary", "get_account_summary")(**params)

    def update_access_key(self, **params: Any) -> Awaitable[Answer]:
        return self._send("UpdateAccessKey", "update_access_key")(**params)

    def on_attempt(self, operation: str, handler: Callable[..., None]) -> None:
        # On the shared client, once: the handler itself tells whose attempt it was.
        service = self._client.meta.service_model.service_id.hyphenize()
        self._client.meta.events.register(
            f"response-received.{service}.{operation}",
            handler,
            unique_id=f"orgscan-{operation}-{id(handler)}",
        )

    # Organizations (OrganizationsReader)
    def describe_organization(self, **params: Any) -> Awaitable[Answer]:
        return self._send("DescribeOrganization", "describe_organization")(**params)

    def get_paginator(self, operation: str) -> BoundPaginator:
        # botocore builds a paginator class, docstrings and all, on every get_paginator call.
        paginator = self._paginators.get(operation)
        if paginator is None:
            paginator = self._paginators[operation] = self._client.get_paginator(operation)
        return BoundPaginator(paginator, self._binding)

    # STS (StsClient)
    def get_caller_identity(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GetCallerIdentity", "get_caller_identity")(**params)

    def assume_role(self, **params: Any) -> Awaitable[Answer]:
        return self._send("AssumeRole", "assume_role")(**params)

    @property
    def region_name(self) -> str:
        return str(self._client.meta.region_name)

    @property
    def endpoint_url(self) -> str:
        return str(self._client.meta.endpoint_url)

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

    # SNS (SnsPublisher)
    def publish(self, **params: Any) -> Awaitable[Answer]:
        return self._send("Publish", "publish")(**params)

    # Security Hub (SecurityHubImporter)
    def batch_import_findings(self, **params: Any) -> Awaitable[Answer]:
        return self._send("BatchImportFindings", "batch_import_findings")(**params)

    def batch_update_findings(self, **params: Any) -> Awaitable[Answer]:
        return self._send("BatchUpdateFindings", "batch_update_findings")(**params)

    # KMS (KmsSigner)
    def get_public_key(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GetPublicKey", "get_public_key")(**params)

    def sign(self, **params: Any) -> Awaitable[Answer]:
        return self._send("Sign", "sign")(**params)

    # S3 (S3Store)
    def get_object_lock_configuration(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GetObjectLockConfiguration", "get_object_lock_configuration")(**params)

    def head_object(self, **params: Any) -> Awaitable[Answer]:
        return self._send("HeadObject", "head_object")(**params)

    def put_object(self, **params: Any) -> Awaitable[Answer]:
        return self._send("PutObject", "put_object")(**params)

    def get_object(self, **params: Any) -> Awaitable[Answer]:
        return self._send("GetObject", "get_object")(**params)


class ClientFactory:
    """One aioboto3 session for the run, and one client per service shared by every account.

    A client per account cost about 20 ms of CPU to build (a new client class with a method
    per operation, a copy of the event handlers, endpoint and retry set-up) and a connection
    pool of its own. Since only the credentials differ between accounts, `client()` hands out a
    `BoundClient`: the shared client, with the account's credentials, limiter and counter
    applied to each call. All accounts' calls then share one pool of kept-alive connections,
    and the hot IAM calls go over a `QueryWire` (see orgscan/aws/wire.py).

    Built once per run from the scan section of the config; clients live while the factory is
    open (`async with factory:`), and a closed factory hands out none.
    """

    # Connections per shared client: enough for every account's calls in flight at once (their
    # rate limits times the latency), well under the process's file limit.
    SHARED_POOL = 512

    def __init__(self, scan: ScanConfig) -> None:
        self.session = aioboto3.Session()
        # The region picks the partition of every endpoint (IAM, Organizations, STS) and the
        # regional STS endpoint that every AssumeRole goes to.
        self.region_configured = configured_region(self.session) is not None
        self.region = configured_region(self.session) or DEFAULT_REGION
        self._scan = scan
        internals.session_parser_factory(self.session).set_parser_defaults(
            timestamp_parser=_timestamp
        )
        self._stack: AsyncExitStack | None = None
        self._shared: dict[str, Any] = {}
        self._wires: dict[str, QueryWire | None] = {}
        self._paginators: dict[str, dict[str, Any]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    def _config(self) -> AioConfig:
        return AioConfig(
            # In this dict botocore's "max_attempts" counts retries; the total is what we mean.
            retries={"mode": "standard", "total_max_attempts": self._scan.max_attempts},
            max_pool_connections=self.SHARED_POOL,
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

    def _hook(self, client: Any) -> Any:
        client.meta.events.register("before-send", _before_send)
        client.meta.events.register("before-sign", _before_sign)
        internals.use_retry_quota(client, self._scan.max_attempts, _AccountRetryQuota())
        client.meta.events.register("needs-retry", _after_attempt)
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
            verify = internals.configured_ca_bundle(self.session) or os.environ.get(
                "REQUESTS_CA_BUNDLE", True
            )
            connector = aiohttp.TCPConnector(
                limit=self.SHARED_POOL,
                ssl=tls_context(internals.get_cert_path(verify)),
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
                    service, region_name=self.region, config=self._config()
                )
                client = self._shared[service] = self._hook(
                    await self._stack.enter_async_context(context)
                )
                self._paginators[service] = {}
                self._wires[service] = await self._wire_for(service, client)
        return client, self._wires[service]

    async def _wire_for(self, service: str, client: Any) -> QueryWire | None:
        """The wire for the service's hot calls, None where botocore sends them all."""
        if service not in WIRE_OPERATIONS:
            return None
        return await QueryWire.for_client(
            client,
            await self._http_session(),
            _query_parser(),
            _user_agent(),
            self._scan.max_attempts,
            await internals.default_credentials(self.session),
        )

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
        limiter: Limiter,
        counter: CallCounter,
        credentials: Credentials | RefreshableCredentials | None = None,
    ) -> AsyncIterator[BoundClient]:
        """A client for `service` whose calls use `credentials` (None: the caller's own), count
        in `counter` and respect `limiter`, on the shared client of the open factory."""
        if self._stack is None:
            raise RuntimeError("ClientFactory is not open: use it inside `async with factory:`")
        binding = _Binding(limiter, counter, credentials, self._scan.max_attempts)
        shared, wire = await self._shared_client(service)
        yield BoundClient(shared, binding, self._paginators[service], wire)


def region_hint(factory: ClientFactory, exc: BaseException) -> str:
    """GovCloud and China credentials are unknown to the `aws` partition's endpoints, where a
    caller without any configured region is sent."""
    if factory.region_configured or error_code(exc) != "InvalidClientTokenId":
        return ""
    return (
        f"; no AWS region is configured, so orgscan used {factory.region} (partition aws): for "
        "GovCloud or China credentials set AWS_REGION, e.g. us-gov-west-1 or cn-north-1"
    )
