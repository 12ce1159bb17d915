"""TLS for every connection to AWS: certificates and host names verified, one CA bundle loaded."""

from __future__ import annotations

import functools
import ssl

import aiohttp

from orgscan.aws.botocore_adapter import AIOHTTPSession, create_urllib3_context, get_cert_path


@functools.cache
def tls_context(ca_bundle: str | bool | None) -> ssl.SSLContext:
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
            ssl=tls_context(get_cert_path(self._verify)),
            **self._connector_args,
        )
        return connector
