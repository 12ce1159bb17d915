"""A WSGI fault layer in front of moto's server, driven by scenarios declared as data.

It reads the action (the `Action=` form field for IAM/STS, `X-Amz-Target` for Organizations)
and the target account, and can answer an AWS error, delay, or substitute a credential report;
it can also let a request take effect in moto and then lose or replace its answer.
moto itself has no error or latency injection, and going through HTTP exercises the real
aiohttp and botocore retry paths.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MANAGEMENT_ACCOUNT = "123456789012"  # moto's default account: the caller's own credentials
DELEGATED_AS = "AKIAORGSCANDELEGATED"  # a key moto does not know: its default account's
# HTTP status AWS uses for each error code; anything else is a 400 client error.
STATUS = {
    "AccessDenied": 403,
    "ServiceFailure": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "ReportInProgress": 404,
    "ReportNotPresent": 410,
    "ExpiredToken": 403,
    "RegionDisabledException": 403,
    "NoSuchEntity": 404,  # IAM: a user or key deleted meanwhile
    # Security Hub: not enabled in the account and region (moto imports regardless).
    "InvalidAccessException": 401,
    "TooManyRequestsException": 429,
}
# Security Hub is REST-JSON: the action is the method and path.
SECURITYHUB_ACTIONS = {
    ("POST", "/findings/import"): "BatchImportFindings",
    ("POST", "/findings"): "GetFindings",
    ("PATCH", "/findings/batchupdate"): "BatchUpdateFindings",
}
# What AWS says when a session token has expired, and when a chained role asks for too long.
EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"
ROLE_CHAINING_MESSAGE = (
    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
    "chaining."
)
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
_ASSUMED_KEY = re.compile(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")
_ISSUED_SECRET = re.compile(rb"<(?:SecretAccessKey|SessionToken)>([^<]+)</")
_KEY_STATUS = re.compile(rb"<Status>[A-Za-z]+</Status>")
_ROLE_ACCOUNT = re.compile(r"^arn:[^:]+:iam::(\d{12}):")
S3_ACTIONS = {
    "PUT": "PutObject",
    "HEAD": "HeadObject",
    "GET": "GetObject",
    "DELETE": "DeleteObject",
}
# HeadObject/GetObject answer these "only if the requester has the s3:GetObjectRetention
# permission" (botocore's S3 model, HeadObjectOutput.ObjectLockMode/ObjectLockRetainUntilDate).
_RETENTION_HEADERS = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date")
JSON_11 = ("Content-Type", "application/x-amz-json-1.1")
# Organizations' answers that carry accounts, and the key each carries them under.
ACCOUNT_ANSWERS = {
    "ListAccounts": "Accounts",
    "ListAccountsForParent": "Accounts",
    "DescribeAccount": "Account",
}


# The calls whose answers say what a `Fault.key_history` or `Fault.root_keys` declares.
HISTORY_ACTIONS = frozenset(
    {"ListAccessKeys", "GetAccessKeyLastUsed", "GetCredentialReport", "GetAccountSummary"}
)
ROOT_ROW = "<root_account>"


@dataclass(frozen=True, slots=True)
class KeyHistory:
    """When an access key was created and last used, as AWS would answer: moto creates every
    key when it is seeded, never used (only a request signed with the key itself marks it),
    and has no way to set either date."""

    key_id: str
    created: datetime
    last_used: datetime | None = None  # None: never used
    service: str = "s3"
    region: str = "us-east-1"


@dataclass(frozen=True, slots=True)
class RootKey:
    """An access key of an account's root user. moto has no root user: its credential report
    has no `<root_account>` row, and its AccountAccessKeysPresent is always 0."""

    account: str
    created: datetime
    active: bool = True
    last_used: datetime | None = None
    service: str = "s3"
    region: str = "us-east-1"


def _answered(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """What `app` answers to the request, held back to be changed: status, headers, body."""
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> None:
        captured.update(status=status, headers=headers)

    body = b"".join(app(environ, capture))
    return captured["status"], captured["headers"], body


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
    # ...generated at this time (moto's own reports say 2015; AWS's are up to 4 hours old)
    report_generated_at: str = "2026-11-22T06:00:00Z"
    # Only calls about this IAM user (their UserName parameter): an SCP or a permission
    # boundary on one user's path denies calls about that user alone.
    user: str | None = None
    # Only calls signed with a session token (from AssumeRole) that has already been used this
    # many times: with error="ExpiredToken", every session stops working after N calls.
    session_calls: int | None = None
    # Only AssumeRole calls asking for more DurationSeconds than this: AWS's role-chaining cap.
    max_duration: int | None = None
    # GetCallerIdentity answers this ARN (e.g. an assumed role: SSO, CI OIDC) instead of moto's.
    caller_arn: str | None = None
    # Organizations' account answers (ACCOUNT_ANSWERS) in today's shape: `State` only, with
    # no `Status` (retired by AWS, still sent by moto), and these (account id, state) pairs
    # in place of moto's state. moto knows only ACTIVE and SUSPENDED.
    states: tuple[tuple[str, str], ...] | None = None
    # Organizations answers the account's calls as it answers a delegated administrator's: with
    # the organization's data (moto answers a member account as if it had no organization).
    delegated_admin: bool = False
    # The request reaches moto first and takes effect; only then come the delay and the error.
    # A change that went through but whose answer was lost (a timeout) or replaced (a throttle
    # from a retry layer in between): the client cannot tell it from one that never landed.
    land_first: bool = False
    # S3: only requests for an object whose key ends with this (e.g. "/manifest.json").
    object_key: str | None = None
    # KMS Sign with MessageType=DIGEST signs the 32 bytes given, as AWS does. moto 5.2.5 hashes
    # them again (it treats every message as RAW), so no standard verifier would accept its
    # signature; with this rule the layer signs with moto's own key, prehashed.
    kms_digest: bool = False
    # ListAccessKeys answers every key with this status, as a read that lags a change does:
    # IAM is eventually consistent, so a key just made Inactive can still read Active.
    stale_status: str | None = None
    # S3 requests are authorised as AWS authorises a principal granted only these IAM actions
    # (moto authorises nothing): a request needing another action is refused AccessDenied, and
    # HeadObject/GetObject answer no Object Lock headers without s3:GetObjectRetention.
    s3_grants: frozenset[str] | None = None
    # BatchImportFindings answers every finding of the request as failed with this ErrorCode
    # (and `message`), importing none: AWS reports some errors per finding, in FailedFindings
    # (InvalidAccess when Security Hub is not enabled, among them); moto imports regardless.
    failed_findings: str | None = None
    # What AWS holds that moto cannot: the keys' creation and last-use dates (by key id), and
    # the root users' access keys (by account). A rule with either declares state, not a
    # reaction: it matches no request, and every answer moto gives from then on (ListAccessKeys,
    # GetAccessKeyLastUsed, GetCredentialReport, GetAccountSummary) says it, whatever other
    # rule delays the request.
    key_history: tuple[KeyHistory, ...] = ()
    root_keys: tuple[RootKey, ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    account: str
    service: str
    user: str = ""  # the UserName parameter, if any
    key: str = ""  # the access key id that signed the request
    duration: int | None = None  # AssumeRole's DurationSeconds
    object_key: str = ""  # S3: the bucket/key path


class FaultInjector:
    def __init__(self, app: WSGIApp, seed: int = 7) -> None:
        self.app = app
        self.faults: list[Fault] = []
        self._key_history: dict[str, KeyHistory] = {}
        self._root_keys: list[RootKey] = []
        self.calls: dict[tuple[str, str], int] = {}
        self.injected: dict[str, int] = {}
        self._hits: dict[int, int] = {}
        self._key_accounts: dict[str, str] = {}
        self._key_uses: dict[str, int] = {}  # calls signed with each assumed-role key
        # Secrets and session tokens handed out (AssumeRole, CreateAccessKey), so tests can
        # prove none leak.
        self.issued_secrets: list[str] = []
        self.assumed_roles: list[str] = []  # every RoleArn asked for, in order
        # Actions signed with a key the layer never saw issued: the caller's own credentials.
        self.caller_calls: dict[str, int] = {}
        # Every BatchUpdateFindings request (account, parameters): moto does not model the call.
        self.finding_updates: list[tuple[str, dict[str, Any]]] = []
        self._random = random.Random(seed)  # noqa: S311 - reproducible fault draws, not crypto
        self._lock = threading.Lock()

    def reset(self, faults: Iterable[Fault] = ()) -> None:
        with self._lock:
            self.faults = list(faults)
            self._key_history = {k.key_id: k for f in self.faults for k in f.key_history}
            self._root_keys = [r for f in self.faults for r in f.root_keys]
            self.calls.clear()
            self.injected.clear()
            self.assumed_roles.clear()
            self.caller_calls.clear()
            self.finding_updates.clear()
            self._hits.clear()
            self._key_uses.clear()

    def _identify(self, environ: dict[str, Any], body: bytes) -> Request:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        match = _CREDENTIAL.search(authorization)
        key = match.group(1) if match else ""
        signer = self._key_accounts.get(key, MANAGEMENT_ACCOUNT) if match else ""
        service = authorization.split("/")[3] if authorization.count("/") >= 3 else ""
        if service == "s3":
            # S3 is REST: the action is the method on an object (the few this layer targets).
            method = environ.get("REQUEST_METHOD", "")
            action = S3_ACTIONS.get(method, method)
            if method == "GET" and "attributes" in environ.get("QUERY_STRING", ""):
                action = "GetObjectAttributes"
            return Request(action, signer, service, key=key, object_key=environ["PATH_INFO"])
        if service == "securityhub":
            route = (environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
            return Request(SECURITYHUB_ACTIONS.get(route, route[1]), signer, service, key=key)
        form = parse_qs(body.decode("utf-8", "replace")) if not target else {}
        action = target.rsplit(".", 1)[-1] if target else form.get("Action", [""])[0]
        if match and key not in self._key_accounts:
            with self._lock:
                self.caller_calls[action] = self.caller_calls.get(action, 0) + 1
        if target:
            return Request(action, signer, service, key=key)
        user = form.get("UserName", [""])[0]
        if action == "AssumeRole":
            with self._lock:
                self.assumed_roles.append(form.get("RoleArn", [""])[0])
            role = _ROLE_ACCOUNT.match(form.get("RoleArn", [""])[0])
            # AWS's default session is one hour.
            duration = int(form.get("DurationSeconds", ["3600"])[0])
            return Request(action, role.group(1) if role else "", service, user, key, duration)
        return Request(action, signer, service, user, key)

    def _choose(self, request: Request) -> Fault | None:
        with self._lock:
            self.calls[(request.action, request.account)] = (
                self.calls.get((request.action, request.account), 0) + 1
            )
            uses = None  # earlier calls with the same session token; None: not a session
            if request.key in self._key_accounts:
                uses = self._key_uses.get(request.key, 0)
                self._key_uses[request.key] = uses + 1
            for index, fault in enumerate(self.faults):
                if fault.action not in (None, request.action):
                    continue
                if fault.account not in (None, request.account):
                    continue
                if fault.user not in (None, request.user):
                    continue
                if fault.object_key is not None and not request.object_key.endswith(
                    fault.object_key
                ):
                    continue
                if fault.session_calls is not None and (uses is None or uses < fault.session_calls):
                    continue
                if fault.max_duration is not None and (
                    request.duration is None or request.duration <= fault.max_duration
                ):
                    continue
                if fault.states is not None and request.action not in ACCOUNT_ANSWERS:
                    continue
                if fault.delegated_admin and request.service != "organizations":
                    continue
                if fault.s3_grants is not None and request.service != "s3":
                    continue
                if fault.key_history or fault.root_keys:
                    continue  # state, applied to moto's answers (`_forward`)
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
        if fault and fault.delegated_admin:
            # moto reads the caller's account from the signing key: sign as the management
            # account's caller (an unknown key is moto's default account) and let it answer.
            environ["HTTP_AUTHORIZATION"] = _CREDENTIAL.sub(
                f"Credential={DELEGATED_AS}/", environ.get("HTTP_AUTHORIZATION", ""), count=1
            )
        if fault and fault.s3_grants is not None:
            return self._authorise_s3(fault.s3_grants, request, environ, body, start_response)
        if fault and fault.land_first:
            return self._after_landing(fault, request, environ, body, start_response)
        if fault:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.error:
                return self._error(fault, request, start_response)
            if fault.report is not None:
                return self._report(fault.report, fault.report_generated_at, start_response)
            if fault.caller_arn is not None and request.action == "GetCallerIdentity":
                return self._caller(fault.caller_arn, start_response)
            if fault.states is not None:
                return self._account_states(environ, start_response, request, dict(fault.states))
            if fault.kms_digest and request.action == "Sign":
                signed = _sign_digest(environ, body, request.account)
                if signed is not None:
                    return self._replace_body("200 OK", [JSON_11], signed, start_response)
            if fault.failed_findings and request.action == "BatchImportFindings":
                failed = [
                    {
                        "Id": f["Id"],
                        "ErrorCode": fault.failed_findings,
                        "ErrorMessage": fault.message,
                    }
                    for f in json.loads(body)["Findings"]
                ]
                answer = {"FailedCount": len(failed), "SuccessCount": 0, "FailedFindings": failed}
                return self._replace_body(
                    "200 OK", [JSON_11], json.dumps(answer).encode(), start_response
                )
            if fault.stale_status is not None and request.action == "ListAccessKeys":
                return self._stale(environ, start_response, fault.stale_status)
        return self._forward(request, environ, body, start_response)

    def _forward(
        self, request: Request, environ: dict[str, Any], body: bytes, start_response: StartResponse
    ) -> Iterable[bytes]:
        """moto's answer, made AWS's where moto differs: ListUsers pages, the credential report's
        root row and age, and what the `key_history`/`root_keys` rules declare."""
        if request.action in ("GetCredentialReport", "GetAccountSummary") or (
            self._key_history and request.action in HISTORY_ACTIONS
        ):
            return self._iam_history(request, environ, body, start_response)
        if request.action in ("AssumeRole", "CreateAccessKey"):
            # A new user key belongs to the account that created it, as a role's to the role's.
            return self._remember_keys(environ, start_response, request.account)
        if request.action == "ListUsers":
            return self._page_users(environ, start_response, parse_qs(body.decode()))
        if request.action == "BatchUpdateFindings":
            params = json.loads(body)
            with self._lock:
                self.finding_updates.append((request.account, params))
            answer = _update_findings(environ, params, request.account)
            return self._replace_body("200 OK", [JSON_11], answer, start_response)
        return self.app(environ, start_response)

    def _after_landing(
        self,
        fault: Fault,
        request: Request,
        environ: dict[str, Any],
        body: bytes,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        status, headers, answer = _answered(  # moto applies it
            lambda env, respond: self._forward(request, env, body, respond), environ
        )
        if fault.delay:
            time.sleep(fault.delay)
        if fault.error:
            return self._error(fault, request, start_response)
        start_response(status, headers)
        return [answer]

    def _authorise_s3(
        self,
        grants: frozenset[str],
        request: Request,
        environ: dict[str, Any],
        body: bytes,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        missing = s3_permissions(environ) - grants
        if missing:
            denied = Fault(error="AccessDenied", message=f"not authorized: {sorted(missing)}")
            return self._error(denied, request, start_response)
        status, headers, answer = _answered(
            lambda env, respond: self._forward(request, env, body, respond), environ
        )
        if "s3:GetObjectRetention" not in grants:
            headers = [h for h in headers if h[0].lower() not in _RETENTION_HEADERS]
        start_response(status, headers)
        return [answer]

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
        elif request.service == "securityhub":
            # REST-JSON: botocore reads the code from this header.
            body = json.dumps({"Code": fault.error, "Message": fault.message}).encode()
            start_response(
                f"{status} Error",
                [
                    ("Content-Type", "application/json"),
                    ("x-amzn-ErrorType", fault.error),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
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

    def _report(
        self, content: bytes, generated_at: str, start_response: StartResponse
    ) -> list[bytes]:
        body = (
            '<GetCredentialReportResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            "<GetCredentialReportResult>"
            f"<Content>{base64.b64encode(content).decode()}</Content>"
            "<ReportFormat>text/csv</ReportFormat>"
            f"<GeneratedTime>{generated_at}</GeneratedTime>"
            "</GetCredentialReportResult>"
            "<ResponseMetadata><RequestId>0</RequestId></ResponseMetadata>"
            "</GetCredentialReportResponse>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def _iam_history(
        self, request: Request, environ: dict[str, Any], body: bytes, start_response: StartResponse
    ) -> list[bytes]:
        status, headers, answer = _answered(self.app, environ)
        if not status.startswith("200"):
            start_response(status, headers)
            return [answer]
        keys = self._key_history
        roots = sorted(
            (r for r in self._root_keys if r.account == request.account), key=lambda r: r.created
        )
        ElementTree.register_namespace("", IAM_NS)
        root = ElementTree.fromstring(answer)  # noqa: S314 - moto's own answer on loopback
        result = root.find(f"{{{IAM_NS}}}{request.action}Result")
        assert result is not None
        if request.action == "ListAccessKeys":
            for member in result.iter(f"{{{IAM_NS}}}member"):
                found = keys.get(member.findtext(f"{{{IAM_NS}}}AccessKeyId", ""))
                created = member.find(f"{{{IAM_NS}}}CreateDate")
                if found is not None and created is not None:
                    created.text = _iso_z(found.created)
        elif request.action == "GetAccessKeyLastUsed":
            key_id = parse_qs(body.decode()).get("AccessKeyId", [""])[0]
            if key_id in keys:
                _set_last_used(result, keys[key_id])
        elif request.action == "GetAccountSummary":
            for entry in result.iter(f"{{{IAM_NS}}}entry"):
                if entry.findtext(f"{{{IAM_NS}}}key") == "AccountAccessKeysPresent":
                    value = entry.find(f"{{{IAM_NS}}}value")
                    assert value is not None
                    value.text = "1" if roots else "0"
        else:  # GetCredentialReport: a root row, the keys' dates, and a report hours old at most
            content = result.find(f"{{{IAM_NS}}}Content")
            generated = result.find(f"{{{IAM_NS}}}GeneratedTime")
            assert content is not None and content.text is not None and generated is not None
            report = base64.b64decode(content.text).decode()
            report = _aws_report(report, request.account, keys, roots[:2])
            content.text = base64.b64encode(report.encode()).decode()
            generated.text = _iso_z(datetime.now(UTC))
        return self._replace_body(status, headers, ElementTree.tostring(root), start_response)

    def _caller(self, arn: str, start_response: StartResponse) -> list[bytes]:
        account = arn.split(":")[4]
        body = (
            f'<GetCallerIdentityResponse xmlns="{STS_NS}"><GetCallerIdentityResult>'
            f"<Arn>{arn}</Arn><UserId>AROAORGSCANFAULTLAYER:{arn.rsplit('/', 1)[-1]}</UserId>"
            f"<Account>{account}</Account></GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>0</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _replace_body(
        status: str, headers: list[tuple[str, str]], body: bytes, start_response: StartResponse
    ) -> list[bytes]:
        kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*kept, ("Content-Length", str(len(body)))])
        return [body]

    def _stale(
        self, environ: dict[str, Any], start_response: StartResponse, status: str
    ) -> list[bytes]:
        line, headers, body = _answered(self.app, environ)
        if line.startswith("200"):
            body = _KEY_STATUS.sub(f"<Status>{status}</Status>".encode(), body)
        return self._replace_body(line, headers, body, start_response)

    def _account_states(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        request: Request,
        states: dict[str, str],
    ) -> list[bytes]:
        status, headers, body = _answered(self.app, environ)
        if not status.startswith("200"):
            start_response(status, headers)
            return [body]
        data = json.loads(body)
        found = data.get(ACCOUNT_ANSWERS[request.action])
        for account in found if isinstance(found, list) else [found] if found else []:
            legacy = account.pop("Status", None)
            account["State"] = states.get(account["Id"], account.get("State") or legacy)
        return self._replace_body(status, headers, json.dumps(data).encode(), start_response)

    def _page_users(
        self, environ: dict[str, Any], start_response: StartResponse, form: dict[str, list[str]]
    ) -> Iterable[bytes]:
        """Page ListUsers as AWS does (MaxItems up to 1000, Marker); moto returns everything."""
        status, headers, body = _answered(self.app, environ)
        if not status.startswith("200"):
            start_response(status, headers)
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
        return self._replace_body(status, headers, ElementTree.tostring(root), start_response)

    def _remember_keys(
        self, environ: dict[str, Any], start_response: StartResponse, account: str
    ) -> Iterable[bytes]:
        # Learn which account each assumed-role or new user key belongs to, to target faults.
        body = b"".join(self.app(environ, start_response))
        with self._lock:
            for key in _ASSUMED_KEY.findall(body):
                self._key_accounts[key.decode()] = account
            self.issued_secrets.extend(s.decode() for s in _ISSUED_SECRET.findall(body))
        return [body]


def _iso_z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_csv(when: datetime | None) -> str:
    # The credential report's dates: ISO 8601 with an offset, to the second; N/A for none.
    return "N/A" if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _set_last_used(result: ElementTree.Element, key: KeyHistory) -> None:
    used = result.find(f"{{{IAM_NS}}}AccessKeyLastUsed")
    assert used is not None
    used.clear()
    if key.last_used is not None:
        ElementTree.SubElement(used, f"{{{IAM_NS}}}LastUsedDate").text = _iso_z(key.last_used)
    for tag, value in (("ServiceName", key.service), ("Region", key.region)):
        ElementTree.SubElement(used, f"{{{IAM_NS}}}{tag}").text = (
            value if key.last_used is not None else "N/A"
        )


def _slot_cells(key: KeyHistory | RootKey, active: bool) -> list[str]:
    """A key slot's five cells as AWS writes them: active, last_rotated (its CreateDate),
    last used date, region and service (N/A when never used)."""
    used = key.last_used is not None
    return [
        "true" if active else "false",
        _iso_csv(key.created),
        _iso_csv(key.last_used),
        key.region if used else "N/A",
        key.service if used else "N/A",
    ]


def _aws_report(
    report: str, account: str, keys: dict[str, KeyHistory], roots: list[RootKey]
) -> str:
    """moto's credential report as AWS writes it: the root user's row first, and each key
    slot with the key's declared dates (moto orders a user's slots as its keys)."""
    from moto.iam.models import iam_backends

    rows = list(csv.reader(io.StringIO(report)))
    header = rows[0]
    index = {column: position for position, column in enumerate(header)}
    slot = [index[f"access_key_{n}_active"] for n in (1, 2)]
    # moto's header is AWS's 22 columns, in AWS's order.
    root = [ROOT_ROW, f"arn:aws:iam::{account}:root", "2019-01-01T00:00:00+00:00"]
    root += ["not_supported", "no_information", "not_supported", "not_supported", "true"]
    for n in (0, 1):
        root += (
            _slot_cells(roots[n], roots[n].active) if n < len(roots) else ["false"] + ["N/A"] * 4
        )
    root += ["false", "N/A", "false", "N/A"]
    for row in rows[1:]:
        partition = row[index["arn"]].split(":")[1]
        user = iam_backends[account][partition].users.get(row[index["user"]])
        for n, moto_key in enumerate(user.access_keys[:2] if user else []):
            if moto_key.access_key_id in keys:
                declared = keys[moto_key.access_key_id]
                row[slot[n] : slot[n] + 5] = _slot_cells(declared, moto_key.status == "Active")
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, root, *rows[1:]])
    return text.getvalue()


def s3_permissions(environ: dict[str, Any]) -> set[str]:
    """The IAM actions AWS requires for a (path-style) S3 request, for the few orgscan sends:
    the Service Authorization Reference's "Actions defined by Amazon S3"; a request for one
    version (`versionId`) needs the *Version action, an Object Lock header its own action."""
    method = environ.get("REQUEST_METHOD", "")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    on_object = "/" in environ.get("PATH_INFO", "").strip("/")
    version = "Version" if "versionId" in query else ""
    if not on_object:
        if "object-lock" in query:
            return {"s3:GetBucketObjectLockConfiguration"}
        if method == "GET":
            return {"s3:ListBucketVersions" if "versions" in query else "s3:ListBucket"}
        return {f"s3:{method}Bucket"}  # nothing orgscan sends: never granted
    if method in ("GET", "HEAD"):
        return {f"s3:GetObject{version}"}
    if method == "DELETE":
        return {f"s3:DeleteObject{version}"}
    needed = {"s3:PutObject"}
    if environ.get("HTTP_X_AMZ_OBJECT_LOCK_MODE"):
        needed.add("s3:PutObjectRetention")
    return needed


def _update_findings(environ: dict[str, Any], params: dict[str, Any], account: str) -> bytes:
    """BatchUpdateFindings as AWS answers it (moto has no such call): Workflow and Note set on
    the findings moto holds, FindingNotFound for the others."""
    from moto.securityhub.models import securityhub_backends

    region = environ.get("HTTP_AUTHORIZATION", "").split("/")[2]
    held = {f.id: f for f in securityhub_backends[account][region].findings}
    processed, unprocessed = [], []
    for ident in params["FindingIdentifiers"]:
        finding = held.get(ident["Id"])
        if finding is None or finding.data.get("ProductArn") != ident["ProductArn"]:
            unprocessed.append(
                {
                    "FindingIdentifier": ident,
                    "ErrorCode": "FindingNotFound",
                    "ErrorMessage": "Finding Not Found",
                }
            )
            continue
        for member in ("Workflow", "Note"):
            if member in params:
                finding.data[member] = dict(params[member])
        processed.append(ident)
    return json.dumps({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed}).encode()


def _sign_digest(environ: dict[str, Any], body: bytes, account: str) -> bytes | None:
    """KMS Sign over a DIGEST message as AWS answers it, with moto's key; None for RAW."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from moto.kms.models import kms_backends

    params = json.loads(body)
    if params.get("MessageType") != "DIGEST":
        return None
    region = environ.get("HTTP_AUTHORIZATION", "").split("/")[2]
    key = kms_backends[account][region].describe_key(params["KeyId"])
    signature = key.private_key.private_key.sign(
        base64.b64decode(params["Message"]), ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    )
    answer = {
        "KeyId": key.arn,
        "Signature": base64.b64encode(signature).decode(),
        "SigningAlgorithm": params["SigningAlgorithm"],
    }
    return json.dumps(answer).encode()
