"""Every botocore and aiobotocore internal orgscan relies on, in one place.

The wire (orgscan/aws/wire.py) sends the hot calls itself but keeps botocore's meaning: its
query serializer, response parser, standard retry handler and quota, endpoint rules, proxy
settings and credential objects; the client factory shares one TLS context and parser. None of
these is public API, so they are imported here only, and `check()` (run by the test suite)
fails loudly when the installed botocore leaves the range they were checked against.
aioboto3 pins aiobotocore, which pins botocore: this range is aiobotocore's.
"""

from __future__ import annotations

from typing import Any

import aiobotocore
import botocore
from aiobotocore.credentials import AioCredentials
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.retries.standard import (
    AioRetryHandler,
    AioRetryPolicy,
    AioStandardRetryConditions,
)
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import ProxyConfiguration, create_urllib3_context, get_cert_path
from botocore.parsers import ResponseParserFactory
from botocore.retries.quota import RetryQuota
from botocore.retries.standard import (
    ExponentialBackoff,
    RetryEventAdapter,
    RetryHandler,
    RetryPolicy,
    RetryQuotaChecker,
    StandardRetryConditions,
    ThrottlingErrorDetector,
)
from botocore.serialize import create_serializer
from botocore.utils import get_environ_proxies, parse_timestamp

__all__ = [
    "AIOHTTPSession",
    "AioCredentials",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "EndpointConnectionError",
    "ExponentialBackoff",
    "HTTPClientError",
    "NoCredentialsError",
    "ProxyConfiguration",
    "ReadTimeoutError",
    "ResponseParserFactory",
    "RetryEventAdapter",
    "RetryHandler",
    "RetryPolicy",
    "RetryQuota",
    "RetryQuotaChecker",
    "SSLError",
    "StandardRetryConditions",
    "ThrottlingErrorDetector",
    "create_serializer",
    "create_urllib3_context",
    "get_cert_path",
    "get_environ_proxies",
    "parse_timestamp",
]

# The botocore releases these internals were read against (aiobotocore 2.25.1's pin).
BOTOCORE_RANGE = ((1, 40, 46), (1, 40, 62))  # [from, to)
AIOBOTOCORE_VERSION = "2.25.1"

# Internals used by attribute, beyond the imports above: (object, attribute names).
_ATTRIBUTES: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (AIOHTTPSession, ("_create_connector",)),
    (ResponseParserFactory, ("set_parser_defaults", "create_parser")),
    (RetryHandler, ("needs_retry",)),
    (RetryQuotaChecker, ("acquire_retry_quota", "release_retry_quota")),
    (ProxyConfiguration, ("proxy_url_for", "proxy_headers_for")),
)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def check() -> list[str]:
    """What no longer holds of the internals above: empty while the pins are kept."""
    problems = []
    low, high = BOTOCORE_RANGE
    if not low <= _version(botocore.__version__) < high:
        problems.append(f"botocore {botocore.__version__} is outside {low}..{high}")
    if aiobotocore.__version__ != AIOBOTOCORE_VERSION:
        problems.append(f"aiobotocore {aiobotocore.__version__} is not {AIOBOTOCORE_VERSION}")
    for owner, names in _ATTRIBUTES:
        problems += [
            f"{owner.__name__}.{name} is gone" for name in names if not hasattr(owner, name)
        ]
    return problems


def session_parser_factory(session: Any) -> Any:
    """The response parser factory of an aioboto3 session's botocore session."""
    return session._session.get_component("response_parser_factory")


def configured_ca_bundle(session: Any) -> Any:
    """The CA bundle from the AWS config (`ca_bundle`, AWS_CA_BUNDLE), if any."""
    return session._session.get_config_variable("ca_bundle")


async def default_credentials(session: Any) -> Any:
    """The caller's own credentials, from botocore's chain (refreshed by botocore)."""
    return await session._session.get_credentials()


async def resolve_endpoint(client: Any, operation: Any, context: dict[str, Any]) -> Any:
    """botocore's endpoint rules (partition, FIPS, AWS_ENDPOINT_URL...) for `operation`:
    (url, headers, properties), filling `context` with the signing settings."""
    return await client._resolve_endpoint_ruleset(operation, {}, context)


def use_retry_quota(client: Any, max_attempts: int, quota: Any) -> None:
    """aiobotocore's standard retry handler for `client`, asking `quota` (an object with
    RetryQuotaChecker's acquire/release methods) in place of the one quota aiobotocore gives
    each client. It replaces the handler aiobotocore registered under its unique id
    (aiobotocore.retries.standard.register_retry_handler); that handler's after-call release
    stays registered, on a quota nothing asks any more."""
    service = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{service}"
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    handler = AioRetryHandler(
        retry_policy=AioRetryPolicy(
            retry_checker=AioStandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=ExponentialBackoff(),
        ),
        retry_event_adapter=RetryEventAdapter(),
        retry_quota=quota,
    )
    client.meta.events.register(f"needs-retry.{service}", handler.needs_retry, unique_id=unique_id)
    client.meta.events.register(f"after-call.{service}", quota.release_retry_quota)
