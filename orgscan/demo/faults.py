"""A WSGI fault layer in front of moto's server, driven by scenarios declared as data.

It reads the action (the `Action=` form field for IAM/STS, `X-Amz-Target` for Organizations)
and the target account, and can answer an AWS error, delay, or substitute a credential report.
moto itself has no error or latency injection, and going through HTTP exercises the real
aiohttp and botocore retry paths.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MANAGEMENT_ACCOUNT = "123456789012"  # moto's default account: the caller's own credentials
# HTTP status AWS uses for each error code; anything else is a 400 client error.
STATUS = {
    "AccessDenied": 403,
    "ServiceFailure": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "ReportInProgress": 404,
    "ReportNotPresent": 410,
    "NoSuchEntity": 404,  # IAM: a user or key deleted meanwhile
}
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
_ASSUMED_KEY = re.compile(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")
_ISSUED_SECRET = re.compile(rb"<(?:SecretAccessKey|SessionToken)>([^<]+)</")
_ROLE_ACCOUNT = re.compile(r"^arn:[^:]+:iam::(\d{12}):")


@dataclass(frozen=True, slots=True)
class Fault:
    """One rule. The first rule that matches a request decides what happens to it.

    action/account: None matches any. For AssumeRole the account is the role's account;
    otherwise it is the account whose credentials signed the request.
    """

    action: str | None = None
    account: str | None = None
    error: str | None = None
    message: str = "injected by the orgscan fault layer"
    share: float = 1.0  # probability that a matching call is hit
    first: int | None = None  # only the first N matching calls are hit
    delay: float = 0.0  # seconds before answering (or before the error)
    report: bytes | None = None  # GetCredentialReport answers this content instead


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    account: str
    service: str


class FaultInjector:
    def __init__(self, app: WSGIApp, seed: int = 7) -> None:
        self.app = app
        self.faults: list[Fault] = []
        self.calls: dict[tuple[str, str], int] = {}
        self.injected: dict[str, int] = {}
        self._hits: dict[int, int] = {}
        self._key_accounts: dict[str, str] = {}
        # Secrets and session tokens handed out by AssumeRole, so tests can prove none leak.
        self.issued_secrets: list[str] = []
        self.assumed_roles: list[str] = []  # every RoleArn asked for, in order
        self._random = random.Random(seed)  # noqa: S311 - reproducible fault draws, not crypto
        self._lock = threading.Lock()

    def reset(self, faults: Iterable[Fault] = ()) -> None:
        with self._lock:
            self.faults = list(faults)
            self.calls.clear()
            self.injected.clear()
            self.assumed_roles.clear()
            self._hits.clear()

    def _identify(self, environ: dict[str, Any], body: bytes) -> Request:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        match = _CREDENTIAL.search(authorization)
        signer = self._key_accounts.get(match.group(1), MANAGEMENT_ACCOUNT) if match else ""
        service = authorization.split("/")[3] if authorization.count("/") >= 3 else ""
        if target:
            return Request(target.rsplit(".", 1)[-1], signer, service)
        form = parse_qs(body.decode("utf-8", "replace"))
        action = form.get("Action", [""])[0]
        if action == "AssumeRole":
            with self._lock:
                self.assumed_roles.append(form.get("RoleArn", [""])[0])
            role = _ROLE_ACCOUNT.match(form.get("RoleArn", [""])[0])
            return Request(action, role.group(1) if role else "", service)
        return Request(action, signer, service)

    def _choose(self, request: Request) -> Fault | None:
        with self._lock:
            self.calls[(request.action, request.account)] = (
                self.calls.get((request.action, request.account), 0) + 1
            )
            for index, fault in enumerate(self.faults):
                if fault.action not in (None, request.action):
                    continue
                if fault.account not in (None, request.account):
                    continue
                seen = self._hits.get(index, 0)
                self._hits[index] = seen + 1
                if fault.first is not None and seen >= fault.first:
                    continue
                if fault.share < 1.0 and self._random.random() >= fault.share:
                    continue
                return fault
        return None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api/"):
            return self.app(environ, start_response)  # moto's own controls are never faulted
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        request = self._identify(environ, body)
        fault = self._choose(request)
        if fault:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.error:
                return self._error(fault, request, start_response)
            if fault.report is not None:
                return self._report(fault.report, start_response)
        if request.action == "AssumeRole":
            return self._remember_keys(environ, start_response, request.account)
        if request.action == "ListUsers":
            return self._page_users(environ, start_response, parse_qs(body.decode()))
        return self.app(environ, start_response)

    def _count(self, code: str) -> None:
        with self._lock:
            self.injected[code] = self.injected.get(code, 0) + 1

    def _error(self, fault: Fault, request: Request, start_response: StartResponse) -> list[bytes]:
        assert fault.error
        self._count(fault.error)
        status = STATUS.get(fault.error, 400)
        if request.service == "organizations":
            code = "TooManyRequestsException" if fault.error == "Throttling" else fault.error
            body = json.dumps({"__type": code, "Message": fault.message}).encode()
            content_type = "application/x-amz-json-1.1"
        else:
            body = (
                "<ErrorResponse><Error><Type>Sender</Type>"
                f"<Code>{fault.error}</Code><Message>{fault.message}</Message></Error>"
                "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ).encode()
            content_type = "text/xml"
        start_response(
            f"{status} Error",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _report(self, content: bytes, start_response: StartResponse) -> list[bytes]:
        body = (
            '<GetCredentialReportResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            "<GetCredentialReportResult>"
            f"<Content>{base64.b64encode(content).decode()}</Content>"
            "<ReportFormat>text/csv</ReportFormat>"
            "<GeneratedTime>2026-11-22T06:00:00Z</GeneratedTime>"
            "</GetCredentialReportResult>"
            "<ResponseMetadata><RequestId>0</RequestId></ResponseMetadata>"
            "</GetCredentialReportResponse>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def _page_users(
        self, environ: dict[str, Any], start_response: StartResponse, form: dict[str, list[str]]
    ) -> Iterable[bytes]:
        """Page ListUsers as AWS does (MaxItems up to 1000, Marker); moto returns everything."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> None:
            captured.update(status=status, headers=headers)

        body = b"".join(self.app(environ, capture))
        if not captured["status"].startswith("200"):
            start_response(captured["status"], captured["headers"])
            return [body]
        ElementTree.register_namespace("", IAM_NS)
        root = ElementTree.fromstring(body)  # noqa: S314 - moto's own answer on loopback
        users = root.find(f"{{{IAM_NS}}}ListUsersResult/{{{IAM_NS}}}Users")
        assert users is not None
        members = list(users)
        start = int(form.get("Marker", ["0"])[0])
        size = min(int(form.get("MaxItems", ["100"])[0]), 1000)
        for member in members[:start] + members[start + size :]:
            users.remove(member)
        result = root.find(f"{{{IAM_NS}}}ListUsersResult")
        assert result is not None
        truncated = start + size < len(members)
        for tag in ("IsTruncated", "Marker"):
            old = result.find(f"{{{IAM_NS}}}{tag}")
            if old is not None:
                result.remove(old)
        ElementTree.SubElement(result, f"{{{IAM_NS}}}IsTruncated").text = str(truncated).lower()
        if truncated:
            ElementTree.SubElement(result, f"{{{IAM_NS}}}Marker").text = str(start + size)
        paged = ElementTree.tostring(root)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(paged)))])
        return [paged]

    def _remember_keys(
        self, environ: dict[str, Any], start_response: StartResponse, account: str
    ) -> Iterable[bytes]:
        # Learn which account each assumed-role key belongs to, to target later faults.
        body = b"".join(self.app(environ, start_response))
        with self._lock:
            for key in _ASSUMED_KEY.findall(body):
                self._key_accounts[key.decode()] = account
            self.issued_secrets.extend(s.decode() for s in _ISSUED_SECRET.findall(body))
        return [body]
