"""moto's threaded server on 127.0.0.1, behind the fault layer, with AWS isolated away.

moto's in-process `mock_aws` does not work with aiobotocore (aiobotocore#1320), so the demo and
the tests use the real HTTP server.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Iterable
from typing import Any

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from orgscan.demo.faults import Fault, FaultInjector


class _QuietHandler(MotoRequestHandler):  # type: ignore[misc]
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Per-request access lines would bury the scan's own output."""


class MotoServer:
    def __init__(self) -> None:
        self.faults = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            "127.0.0.1", 0, self.faults, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> MotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    def inject(self, faults: Iterable[Fault]) -> None:
        self.faults.reset(faults)

    def reset(self) -> None:
        """Forget every account, user and fault, as a fresh server would."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
            pass
        self.faults.reset()


def isolate_from_aws(endpoint: str) -> None:
    """Point every AWS client of this process at `endpoint` with fake credentials.

    Every AWS_* variable goes first: a service-specific endpoint or a profile left in the
    environment could otherwise send a call to real AWS.
    """
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="AKIAORGSCANDEMO00000",
        AWS_SECRET_ACCESS_KEY="orgscan-demo-fake-secret",  # noqa: S106 - fake, moto only
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL=endpoint,
    )
