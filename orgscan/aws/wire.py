"""The scan's hot IAM calls, sent without botocore's per-call pipeline.

A scan makes one ListAccessKeys per user: tens of thousands of calls in a large organization.
Through aiobotocore each costs about 0.8 ms of CPU (events, endpoint rules, request objects,
signing, aiohttp, parsing), which on a small machine makes the client, not AWS's rate limits,
the bound. The query protocol itself needs little: a form body, a SigV4 signature, one POST
and an XML parse. `QueryWire` does exactly that, for the read-only IAM operations in
`WIRE_OPERATIONS` (and the AssumeRole into each account), at about a quarter of the cost.

Everything that carries meaning is still botocore's: the service model and its query
serializer, the response parser (so results and errors are the same dicts and the same
exception classes), the endpoint URL and signing region botocore's endpoint rules resolve, the
credential chain, and standard retry mode's conditions, backoff and retry quota. Only the
mechanics of sending are ours. The signature is checked against botocore's own signer in the
tests, since neither moto nor the benchmark's simulator verifies signatures.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import random
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from orgscan.aws.botocore_adapter import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ExponentialBackoff,
    HTTPClientError,
    NoCredentialsError,
    ProxyConfiguration,
    ReadTimeoutError,
    RetryEventAdapter,
    RetryHandler,
    RetryPolicy,
    RetryQuota,
    RetryQuotaChecker,
    SSLError,
    StandardRetryConditions,
    ThrottlingErrorDetector,
    create_serializer,
    get_environ_proxies,
    resolve_endpoint,
)

# The calls a scan makes per user or per account, by service (botocore's service name):
# read-only IAM calls, and the AssumeRole into each account. Every other call is botocore's.
WIRE_OPERATIONS: dict[str, frozenset[str]] = {
    "iam": frozenset(
        {
            "ListUsers",
            "ListAccessKeys",
            "GetAccessKeyLastUsed",
            "GenerateCredentialReport",
            "GetCredentialReport",
        }
    ),
    "sts": frozenset({"AssumeRole"}),
}
ALGORITHM = "AWS4-HMAC-SHA256"
# What botocore never signs (botocore.auth.SIGNED_HEADERS_BLACKLIST); none of them is sent here
# before signing, so every header that is signed is every header built below.
FORM = "application/x-www-form-urlencoded; charset=utf-8"
# Which answers are throttles: the test botocore's adaptive retry mode uses.
THROTTLES = ThrottlingErrorDetector(RetryEventAdapter())


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    host: str  # the Host header, as botocore signs it
    region: str  # the signing region
    service: str  # the signing name
    proxy: str | None = None  # from the environment, as botocore reads it
    proxy_headers: Mapping[str, str] | None = None


def host_header(url: str) -> str:
    """The Host value botocore signs: lowercase host, the port unless it is the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def encode_form(form: Mapping[str, Any]) -> bytes:
    """A serialized query request's body, as botocore's AWSRequest encodes a dict body."""
    return urlencode(list(form.items()), doseq=True).encode()


@functools.lru_cache(maxsize=4096)
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    endpoint: Endpoint,
    body: bytes,
    amz_date: str,
    access_key: str,
    secret_key: str,
    token: str | None,
) -> dict[str, str]:
    """The headers of a SigV4-signed form POST to the endpoint's root, Authorization included.

    `amz_date` is `YYYYMMDDTHHMMSSZ` in UTC. The result equals what botocore's SigV4Auth gives
    for the same request (the tests compare them).
    """
    headers = {"content-type": FORM, "host": endpoint.host, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        (
            "POST",
            "/",
            "",
            *(f"{name}:{' '.join(headers[name].split())}" for name in names),
            "",
            signed,
            hashlib.sha256(body).hexdigest(),
        )
    )
    day = amz_date[:8]
    scope = f"{day}/{endpoint.region}/{endpoint.service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _signing_key(secret_key, day, endpoint.region, endpoint.service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    return headers


class _Clock:
    """`x-amz-date` for now, formatted once a second rather than once a call."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._text


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What botocore's retry checks read from a response."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class Retries:
    """botocore's standard retry mode: its conditions, backoff and retry quota. botocore keeps a
    quota per client; here each account has its own, the unit that is throttled and fails."""

    __slots__ = ("handler", "quota")

    def __init__(self, max_attempts: int) -> None:
        self.quota = RetryQuotaChecker(RetryQuota())
        self.handler = RetryHandler(
            retry_policy=RetryPolicy(
                retry_checker=StandardRetryConditions(max_attempts=max_attempts),
                retry_backoff=ExponentialBackoff(),
            ),
            retry_event_adapter=RetryEventAdapter(),
            retry_quota=self.quota,
        )


def _botocore_error(exc: BaseException, url: str) -> Exception:
    """aiohttp's exception as the botocore one aiobotocore raises, which retry checks know."""
    error: Exception
    if isinstance(exc, aiohttp.ClientSSLError):
        error = SSLError(endpoint_url=url, error=exc)
    elif isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.http_exceptions.BadStatusLine,
    ):
        error = ConnectionClosedError(endpoint_url=url, error=exc)
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        if str(exc).lower().startswith("connect"):
            error = ConnectTimeoutError(endpoint_url=url, error=exc)
        else:
            error = ReadTimeoutError(endpoint_url=url, error=exc)
    elif isinstance(
        exc, aiohttp.ClientConnectorError | aiohttp.ClientConnectionError | socket.gaierror
    ):
        error = EndpointConnectionError(endpoint_url=url, error=exc)
    elif isinstance(exc, TimeoutError):
        error = ReadTimeoutError(endpoint_url=url, error=exc)
    else:
        error = HTTPClientError(error=exc)
    return error


class WireCredentials:
    """The access key, secret and token to sign with."""

    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str, token: str | None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token


class QueryWire:
    """Sends the `WIRE_OPERATIONS` of one query-protocol service, for any account."""

    def __init__(
        self,
        client: Any,
        endpoint: Endpoint,
        http: aiohttp.ClientSession,
        parser: Any,
        user_agent: str,
        max_attempts: int,
        default_credentials: Any,
    ) -> None:
        self._client = client
        self._model = client.meta.service_model
        self._endpoint = endpoint
        self._url = endpoint.url
        self._http = http
        self._parser = parser
        self._serializer = create_serializer("query", include_validation=False)
        self._user_agent = user_agent
        self._max_attempts = max_attempts
        self._default_credentials = default_credentials
        self._clock = _Clock()
        self._models: dict[str, Any] = {}
        self.operations = WIRE_OPERATIONS[self._model.service_name]

    @classmethod
    async def for_client(
        cls,
        client: Any,
        http: aiohttp.ClientSession,
        parser: Any,
        user_agent: str,
        max_attempts: int,
        default_credentials: Any,
    ) -> QueryWire | None:
        """A wire for the client's service, or None where botocore must send the calls itself
        (another protocol, an endpoint with a path or extra headers, another signature)."""
        model = client.meta.service_model
        names = sorted(WIRE_OPERATIONS.get(model.service_name, set()) & set(model.operation_names))
        if not names or model.protocol != "query" or model.signature_version != "v4":
            return None
        operation = model.operation_model(names[0])
        context: dict[str, Any] = {}
        try:
            # The endpoint rules (partition, FIPS, AWS_ENDPOINT_URL...) as botocore applies them.
            url, headers, _ = await resolve_endpoint(client, operation, context)
        except Exception:
            return None
        signing = context.get("signing", {})
        if headers or context.get("auth_type", "v4") != "v4" or urlsplit(url).path not in ("", "/"):
            return None
        # botocore reads HTTP(S)_PROXY and NO_PROXY once per endpoint; aiohttp's trust_env
        # would read them (and ~/.netrc) in a thread on every request.
        proxies = ProxyConfiguration(get_environ_proxies(url))
        proxy = proxies.proxy_url_for(url)
        endpoint = Endpoint(
            url=url.rstrip("/") + "/",
            host=host_header(url),
            region=signing.get("region", client.meta.region_name),
            service=signing.get("signing_name", model.signing_name),
            proxy=proxy,
            proxy_headers=proxies.proxy_headers_for(proxy) if proxy else None,
        )
        return cls(client, endpoint, http, parser, user_agent, max_attempts, default_credentials)

    def _operation(self, name: str) -> Any:
        operation = self._models.get(name)
        if operation is None:
            operation = self._models[name] = self._model.operation_model(name)
        return operation

    def body(self, operation: Any, params: dict[str, Any]) -> bytes:
        return encode_form(self._serializer.serialize_to_request(params, operation)["body"])

    async def _credentials(self, credentials: WireCredentials | None) -> WireCredentials:
        if credentials is not None:
            return credentials
        if self._default_credentials is None:
            raise NoCredentialsError()
        frozen = await self._default_credentials.get_frozen_credentials()
        return WireCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def call(
        self,
        name: str,
        params: dict[str, Any],
        credentials: WireCredentials | None,
        limiter: Any,
        counter: Any,
        retries: Retries,
    ) -> dict[str, Any]:
        operation = self._operation(name)
        body = self.body(operation, params)
        context: dict[str, Any] = {}
        # A telemetry id, not a secret: botocore's uuid4 reads the OS's random source each call.
        invocation = str(uuid.UUID(int=random.getrandbits(128), version=4))
        attempt = 0
        while True:
            attempt += 1
            # As the before-send hook does for botocore's calls: every attempt is counted and
            # spends the account's rate budget.
            counter.calls += 1
            sent = await limiter.acquire()
            keys = await self._credentials(credentials)
            headers = sign(
                self._endpoint,
                body,
                self._clock.now(),
                keys.access_key,
                keys.secret_key,
                keys.token,
            )
            headers["user-agent"] = self._user_agent
            headers["accept-encoding"] = "identity"
            headers["amz-sdk-invocation-id"] = invocation
            headers["amz-sdk-request"] = f"attempt={attempt}; max={self._max_attempts}"
            response: tuple[HttpResponse, dict[str, Any]] | None = None
            caught: Exception | None = None
            try:
                async with self._http.post(
                    self._url,
                    data=body,
                    headers=headers,
                    proxy=self._endpoint.proxy,
                    proxy_headers=self._endpoint.proxy_headers,
                ) as answer:
                    content = await answer.read()
                    status = answer.status
                    received = answer.headers  # case-insensitive, as botocore's parser needs
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                caught = _botocore_error(exc, self._url)
            else:
                http = HttpResponse(status, received, content)
                parsed = self._parser.parse(
                    {"status_code": status, "headers": received, "body": content},
                    operation.output_shape,
                )
                if status < 300:
                    retries.quota.release_retry_quota(context, http)
                    limiter.succeeded()
                    return dict(parsed)
                response = (http, parsed)
                if THROTTLES.is_throttling_error(
                    response=response,
                    attempts=attempt,
                    operation=operation,
                    caught_exception=None,
                    request_dict={"context": context},
                ):
                    limiter.throttled(sent)
            delay = retries.handler.needs_retry(
                response=response,
                attempts=attempt,
                operation=operation,
                caught_exception=caught,
                request_dict={"context": context},
            )
            if delay is not None:
                await asyncio.sleep(delay)
                continue
            if caught is not None:
                raise caught
            assert response is not None
            parsed = response[1]
            code = parsed.get("Error", {}).get("Code")
            raise self._client.exceptions.from_code(code)(parsed, name)
