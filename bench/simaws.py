"""A simulated AWS Organization for the benchmark, served from memory over the real wire protocols.

Unmodified botocore/aiobotocore clients talk to it when `AWS_ENDPOINT_URL` points at it
(`sim_env(url)` gives the whole environment). It serves exactly what a scan needs:

- Organizations (JSON 1.1, `X-Amz-Target`): DescribeOrganization, ListRoots,
  ListOrganizationalUnitsForParent, ListAccountsForParent, ListAccounts.
- STS (query protocol, XML): GetCallerIdentity, AssumeRole.
- IAM (query protocol, XML): ListUsers, ListAccessKeys, GetAccessKeyLastUsed,
  GenerateCredentialReport, GetCredentialReport (with the `<root_account>` row first, as AWS
  writes it), GetAccountSummary (its `AccountAccessKeysPresent`).

Callers are told apart by the access key id in the SigV4 `Authorization` header: AssumeRole hands
out `ASIA` + account id + 4 random characters, so every later call routes to that account; any
other key id is the management account's own user. Signatures are not checked.

Every call is admitted or throttled when it arrives, then answered after a fixed latency. Token
buckets hold `rate` tokens and refill at `rate` per second: one per account for IAM, one shared by
STS and Organizations. A bucket exists only once its account is called and refills lazily, so idle
accounts cost nothing. Credential reports persist for the life of the server, like AWS's 4-hour
cache: start a new server for a cold run.

`GET /_stats` gives calls, throttles and other errors per `service:Operation`, requests that were
retries (botocore's `amz-sdk-request: attempt=N` header), the peak of requests in flight and the
server's CPU seconds; `POST /_reset_stats` zeroes the counters.

The organization is generated from `OrgParams`, deterministically for a seed; users are generated
per account on first use, and so are the root user's keys (a share of accounts have one).
`ground_truth(params)`, `last_use_truth(params)` and `root_truth(params)` give the answers a
scanner must find.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import multiprocessing
import os
import random
import re
import secrets
import socket
import string
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from multidict import CIMultiDictProxy

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ORGS_TARGET = "AWSOrganizationsV20161128"
MANAGEMENT_USER = "bench-admin"
MANAGEMENT_KEY_ID = "AKIABENCHMANAGEMENT0"
ORGS_PAGE_CAP = 20  # Organizations never returns more than 20 items a page
IAM_MAX_ITEMS = 1000

_ATTEMPT = re.compile(r"\battempt=(\d+)")
_XML = "text/xml"
_JSON = "application/x-amz-json-1.1"
_KEY_ALPHABET = string.ascii_uppercase + "234567"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_EPOCH_2016 = 1_451_606_400
_EPOCH_2025 = 1_735_689_600
_SERVICES = ("s3", "ec2", "sts", "iam", "lambda", "dynamodb", "logs")
_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
_OU_NAMES = ("Security", "Infrastructure", "Workloads", "Sandbox", "Prod", "NonProd", "Web",
             "Data", "Shared", "Analytics", "Payments", "Legacy")  # fmt: skip
_REPORT_HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)

Reply = tuple[int, bytes, str]  # status, body, content type


# --- the generated organization ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrgParams:
    accounts: int = 5
    users_mean: float = 20.0
    # Lognormal shape of users per account; 0 gives every account exactly the mean.
    users_sigma: float = 0.5
    # Exact users per account (management account first); overrides the distribution.
    users_per_account: tuple[int, ...] | None = None
    two_active_share: float = 0.05
    active_inactive_share: float = 0.10
    zero_keys_share: float = 0.20
    root_key_share: float = 0.02  # accounts whose root user has an access key
    ous: int = 8
    seed: int = 1


@dataclass(frozen=True, slots=True)
class SimParams:
    org: OrgParams = field(default_factory=OrgParams)
    latency: float = 0.03  # seconds added to every answer, throttles included
    iam_rate: float | None = None  # per-account IAM calls/s; None = unlimited
    global_rate: float | None = None  # STS + Organizations calls/s together; None = unlimited
    report_delay: float = 0.0  # seconds a credential report takes to generate
    # Share of each account's IAM bucket that other tools use, steadily, for the whole run.
    iam_background: float = 0.0


@dataclass(frozen=True, slots=True)
class SimKey:
    id: str
    active: bool
    created: int
    last_used: int | None
    service: str
    region: str


@dataclass(frozen=True, slots=True)
class SimUser:
    name: str
    path: str
    id: str
    arn: str
    created: int
    password_enabled: bool
    password_last_used: int | None
    mfa_active: bool
    keys: tuple[SimKey, ...]

    @property
    def active_keys(self) -> int:
        return sum(key.active for key in self.keys)


@dataclass(frozen=True, slots=True)
class SimAccount:
    index: int
    id: str
    arn: str
    name: str
    email: str
    parent_id: str
    joined: int
    joined_method: str
    user_count: int

    def as_json(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Arn": self.arn,
            "Email": self.email,
            "Name": self.name,
            "Status": "ACTIVE",
            "State": "ACTIVE",
            "JoinedMethod": self.joined_method,
            "JoinedTimestamp": self.joined,
        }


@dataclass(frozen=True, slots=True)
class SimRoot:
    id: str
    arn: str

    def as_json(self) -> dict[str, Any]:
        policies = [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}]
        return {"Id": self.id, "Arn": self.arn, "Name": "Root", "PolicyTypes": policies}


@dataclass(frozen=True, slots=True)
class SimOU:
    id: str
    arn: str
    name: str
    parent_id: str

    def as_json(self) -> dict[str, Any]:
        return {"Id": self.id, "Arn": self.arn, "Name": self.name}


class AccountUsers:
    """One account's IAM users with the indexes the API needs, and its root user's keys."""

    def __init__(self, users: list[SimUser], root_keys: tuple[SimKey, ...] = ()) -> None:
        self.users = users
        self.by_name = {user.name: user for user in users}
        self.by_key = {key.id: user for user in users for key in user.keys}
        self.root_created = min((user.created for user in users), default=_EPOCH_2016)
        self.root_keys = root_keys


class SimOrg:
    def __init__(self, params: OrgParams) -> None:
        self.params = params
        rng = random.Random(f"org:{params.seed}")
        self.id = "o-" + _rand(rng, _ID_ALPHABET, 10)
        root_id = "r-" + _rand(rng, _ID_ALPHABET, 4)
        ids = _account_ids(rng, params.accounts)
        arn_base = f"arn:aws:organizations::{ids[0]}:"
        self.arn = f"{arn_base}organization/{self.id}"
        self.root = SimRoot(root_id, f"{arn_base}root/{self.id}/{root_id}")

        self.ous: list[SimOU] = []
        depth = {self.root.id: 0}
        for i in range(params.ous):
            parent = rng.choice([p for p, d in depth.items() if d < 3])
            ou_id = f"ou-{self.root.id[2:]}-{_rand(rng, _ID_ALPHABET, 8)}"
            name = f"{_OU_NAMES[i % len(_OU_NAMES)]}{'' if i < len(_OU_NAMES) else i}"
            self.ous.append(SimOU(ou_id, f"{arn_base}ou/{self.id}/{ou_id}", name, parent))
            depth[ou_id] = depth[parent] + 1

        counts = _user_counts(rng, params)
        parents = [self.root.id] + [ou.id for ou in self.ous]
        self.accounts = [
            SimAccount(
                index=i,
                id=account_id,
                arn=f"{arn_base}account/{self.id}/{account_id}",
                name="management" if i == 0 else f"acct-{i:05d}",
                email=f"aws+{'management' if i == 0 else f'acct-{i:05d}'}@example.com",
                parent_id=self.root.id if i == 0 else rng.choice(parents),
                joined=rng.randrange(_EPOCH_2016, _EPOCH_2025),
                joined_method="CREATED" if i == 0 or rng.random() < 0.8 else "INVITED",
                user_count=counts[i],
            )
            for i, account_id in enumerate(ids)
        ]
        self.management = self.accounts[0]
        self.by_id = {account.id: account for account in self.accounts}
        self.accounts_of: dict[str, list[SimAccount]] = {parent: [] for parent in parents}
        for account in self.accounts:
            self.accounts_of[account.parent_id].append(account)
        self.ous_of: dict[str, list[SimOU]] = {parent: [] for parent in parents}
        for ou in self.ous:
            self.ous_of[ou.parent_id].append(ou)
        self._users: dict[str, AccountUsers] = {}

    def users(self, account_id: str) -> AccountUsers:
        found = self._users.get(account_id)
        if found is None:
            account = self.by_id[account_id]
            found = AccountUsers(
                _make_users(self.params, account), _make_root_keys(self.params, account)
            )
            self._users[account_id] = found
        return found


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _account_ids(rng: random.Random, n: int) -> list[str]:
    ids: dict[str, None] = {}
    while len(ids) < n:
        ids[str(rng.randrange(100_000_000_000, 1_000_000_000_000))] = None
    return list(ids)


def _user_counts(rng: random.Random, params: OrgParams) -> list[int]:
    if params.users_per_account is not None:
        if len(params.users_per_account) != params.accounts:
            raise ValueError("users_per_account needs one entry per account")
        return list(params.users_per_account)
    sigma = params.users_sigma
    mu = math.log(max(params.users_mean, 1e-9)) - sigma * sigma / 2  # keeps the mean at users_mean
    return [round(rng.lognormvariate(mu, sigma)) for _ in range(params.accounts)]


def _make_users(params: OrgParams, account: SimAccount) -> list[SimUser]:
    rng = random.Random(f"users:{params.seed}:{account.index}")
    users: list[SimUser] = []
    for j in range(account.user_count):
        human = rng.random() < 0.4
        name, path = (f"person-{j:05d}", "/humans/") if human else (f"svc-{j:05d}", "/service/")
        created = rng.randrange(_EPOCH_2016, _EPOCH_2025)
        draw = rng.random()
        if draw < params.zero_keys_share:
            statuses: tuple[bool, ...] = ()
        elif draw < params.zero_keys_share + params.two_active_share:
            statuses = (True, True)
        elif draw < params.zero_keys_share + params.two_active_share + params.active_inactive_share:
            statuses = (True, False) if rng.random() < 0.5 else (False, True)
        else:
            statuses = (True,)
        keys = []
        key_created = created
        for active in statuses:
            key_created = rng.randrange(key_created, _EPOCH_2025 + 1)
            used = rng.random() < 0.8
            keys.append(
                SimKey(
                    id="AKIA" + _rand(rng, _KEY_ALPHABET, 16),
                    active=active,
                    created=key_created,
                    last_used=rng.randrange(key_created, _EPOCH_2025 + 1) if used else None,
                    service=rng.choice(_SERVICES) if used else "N/A",
                    region=rng.choice(_REGIONS) if used else "N/A",
                )
            )
        users.append(
            SimUser(
                name=name,
                path=path,
                id="AIDA" + _rand(rng, _KEY_ALPHABET, 17),
                arn=f"arn:aws:iam::{account.id}:user{path}{name}",
                created=created,
                password_enabled=human,
                password_last_used=rng.randrange(created, _EPOCH_2025 + 1) if human else None,
                mfa_active=human and rng.random() < 0.7,
                keys=tuple(keys),
            )
        )
    users.sort(key=lambda user: user.name)  # IAM lists users by name
    return users


def _make_root_keys(params: OrgParams, account: SimAccount) -> tuple[SimKey, ...]:
    rng = random.Random(f"root:{params.seed}:{account.index}")
    if rng.random() >= params.root_key_share:
        return ()
    created = rng.randrange(_EPOCH_2016, _EPOCH_2025)
    return (
        SimKey(
            id="AKIA" + _rand(rng, _KEY_ALPHABET, 16),
            active=rng.random() < 0.8,
            created=created,
            last_used=rng.randrange(created, _EPOCH_2025 + 1),
            service=rng.choice(_SERVICES),
            region=rng.choice(_REGIONS),
        ),
    )


def ground_truth(params: OrgParams) -> dict[str, dict[str, int]]:
    """Account id -> user ARN -> active access keys; management account first, listing order."""
    org = SimOrg(params)
    return {
        account.id: {user.arn: user.active_keys for user in org.users(account.id).users}
        for account in org.accounts
    }


def last_use_truth(params: OrgParams) -> dict[tuple[str, int], int | None]:
    """(user ARN, key created, epoch seconds) -> last used (None: never) of every active key."""
    org = SimOrg(params)
    return {
        (user.arn, key.created): key.last_used
        for account in org.accounts
        for user in org.users(account.id).users
        for key in user.keys
        if key.active
    }


def root_truth(params: OrgParams) -> dict[str, bool]:
    """Account id -> whether its root user has an access key, active or not."""
    org = SimOrg(params)
    return {account.id: bool(org.users(account.id).root_keys) for account in org.accounts}


# --- wire formats ------------------------------------------------------------------------------


def _iso_z(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _iso_csv(ts: int | None, missing: str = "N/A") -> str:
    return missing if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _xml_ok(namespace: str, action: str, result: str) -> Reply:
    body = (
        f'<{action}Response xmlns="{namespace}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return 200, body.encode(), _XML


def _xml_error(namespace: str, status: int, code: str, message: str) -> Reply:
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
        f"</ErrorResponse>"
    )
    return status, body.encode(), _XML


def _json_ok(payload: dict[str, Any]) -> Reply:
    return 200, json.dumps(payload).encode(), _JSON


def _json_error(status: int, code: str, message: str) -> Reply:
    return status, json.dumps({"__type": code, "Message": message}).encode(), _JSON


def _user_xml(user: SimUser) -> str:
    password = (
        f"<PasswordLastUsed>{_iso_z(user.password_last_used)}</PasswordLastUsed>"
        if user.password_last_used is not None
        else ""
    )
    return (
        f"<member><Path>{user.path}</Path><UserName>{user.name}</UserName>"
        f"<UserId>{user.id}</UserId><Arn>{user.arn}</Arn>"
        f"<CreateDate>{_iso_z(user.created)}</CreateDate>{password}</member>"
    )


def _report_row(user: SimUser) -> str:
    cells = [
        user.name,
        user.arn,
        _iso_csv(user.created),
        _bool(user.password_enabled),
        _iso_csv(user.password_last_used, "N/A" if not user.password_enabled else "no_information"),
        _iso_csv(user.created) if user.password_enabled else "N/A",
        "N/A",
        _bool(user.mfa_active),
    ]
    cells += _slot_cells(user.keys)
    cells += ["false", "N/A", "false", "N/A"]
    return ",".join(cells)


def _slot_cells(keys: tuple[SimKey, ...]) -> list[str]:
    """The two access-key slots of a report row: active, last rotated, last used, region and
    service each."""
    cells = []
    for key in keys[:2]:
        used = _iso_csv(key.last_used)
        cells += [_bool(key.active), _iso_csv(key.created), used, key.region, key.service]
    return cells + ["false", "N/A", "N/A", "N/A", "N/A"] * (2 - min(len(keys), 2))


def credential_report_csv(account_id: str, users: AccountUsers) -> str:
    """The report as AWS writes it: 22 columns, the root user first."""
    root = [
        "<root_account>",
        f"arn:aws:iam::{account_id}:root",
        _iso_csv(users.root_created),
        "not_supported",
        "no_information",
        "not_supported",
        "not_supported",
        "true",
        *_slot_cells(users.root_keys),
        "false",
        "N/A",
        "false",
        "N/A",
    ]
    lines = [_REPORT_HEADER, ",".join(root), *(_report_row(user) for user in users.users)]
    return "\n".join(lines)


def _credential(authorization: str) -> tuple[str, str]:
    """(access key id, service) from `AWS4-HMAC-SHA256 Credential=AKID/date/region/svc/...`."""
    start = authorization.find("Credential=")
    if start < 0:
        return "", ""
    scope = authorization[start + 11 : authorization.find(",", start)].split("/")
    return scope[0], scope[3] if len(scope) > 3 else ""


# --- the server ----------------------------------------------------------------------------------


class TokenBucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float, background: float = 0.0) -> None:
        # A steady background load taking `background` of the rate leaves the bucket's size
        # as it is and refills it that much more slowly.
        self.rate = rate * (1.0 - background)
        self.capacity = rate
        self.tokens = rate
        self.stamp = now

    def take(self, now: float) -> bool:
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


@dataclass(slots=True)
class RoleSession:
    account_id: str
    role_arn: str
    session_name: str


@dataclass(slots=True)
class Report:
    started: float  # monotonic
    generated_at: int  # epoch seconds
    content: str  # base64 CSV


class Simulator:
    def __init__(self, params: SimParams) -> None:
        self.params = params
        self.org = SimOrg(params.org)
        self.sessions: dict[str, RoleSession] = {}
        self.reports: dict[str, Report] = {}
        self.iam_buckets: dict[str, TokenBucket] = {}
        self.global_bucket = (
            TokenBucket(params.global_rate, time.monotonic()) if params.global_rate else None
        )
        self.calls: Counter[str] = Counter()
        self.throttles: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.retried = 0
        self.in_flight = 0
        self.peak_in_flight = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/", self._handle)
        app.router.add_get("/_stats", self._stats)
        app.router.add_post("/_reset_stats", self._reset_stats)
        return app

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "calls": dict(self.calls),
                "throttles": dict(self.throttles),
                "errors": dict(self.errors),
                "total_calls": sum(self.calls.values()),
                "total_throttles": sum(self.throttles.values()),
                "retried_requests": self.retried,
                "peak_in_flight": self.peak_in_flight,
                "cpu_seconds": time.process_time(),
            }
        )

    async def _reset_stats(self, _: web.Request) -> web.Response:
        self.calls.clear()
        self.throttles.clear()
        self.errors.clear()
        self.retried = 0
        self.peak_in_flight = self.in_flight
        return web.json_response({})

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            # Admission and state changes happen on arrival; the latency models the round trip.
            status, body, content_type = self._dispatch(request.headers, await request.read())
            if self.params.latency > 0:
                await asyncio.sleep(self.params.latency)
            # XML answers carry their request id in the body; JSON ones only in this header.
            headers = {"x-amzn-RequestId": str(uuid.uuid4())} if content_type == _JSON else None
            return web.Response(
                body=body, status=status, content_type=content_type, headers=headers
            )
        finally:
            self.in_flight -= 1

    def _dispatch(self, headers: CIMultiDictProxy[str], body: bytes) -> Reply:
        attempt = _ATTEMPT.search(headers.get("amz-sdk-request", ""))  # "ttl=..; attempt=N; max=M"
        if attempt and attempt.group(1) != "1":
            self.retried += 1
        key_id, service = _credential(headers.get("Authorization", ""))
        target = headers.get("X-Amz-Target")
        if target is not None:
            prefix, _, op = target.partition(".")
            if prefix != ORGS_TARGET:
                return _json_error(400, "UnknownOperationException", f"Unknown target {target}")
            return self._organizations(op, body, key_id)
        form = dict(parse_qsl(body.decode()))
        if not service:
            service = {"2010-05-08": "iam", "2011-06-15": "sts"}.get(form.get("Version", ""), "")
        if service == "sts":
            return self._sts(form.get("Action", ""), form, key_id)
        if service == "iam":
            return self._iam(form.get("Action", ""), form, key_id)
        return _xml_error(IAM_NS, 400, "InvalidAction", f"Unknown service {service!r}")

    def _caller(self, key_id: str) -> str | None:
        """The account a key id belongs to: the one an `ASIA` key encodes, else the management
        account; None for a key that names no account of the org."""
        if key_id.startswith("ASIA"):
            account_id = key_id[4:16]
            return account_id if account_id in self.org.by_id else None
        return self.org.management.id if key_id else None

    def _admit(self, name: str, bucket: TokenBucket | None) -> bool:
        self.calls[name] += 1
        if bucket is None or bucket.take(time.monotonic()):
            return True
        self.throttles[name] += 1
        return False

    def _error(self, name: str, reply: Reply) -> Reply:
        self.errors[name] += 1
        return reply

    # Organizations

    def _organizations(self, op: str, body: bytes, key_id: str) -> Reply:
        name = f"organizations:{op}"
        if not self._admit(name, self.global_bucket):
            return _json_error(
                400,
                "TooManyRequestsException",
                "You have sent too many requests in too short a period of time. "
                "The quota helps protect against denial-of-service attacks. Try again later.",
            )
        caller = self._caller(key_id)
        if caller is None:
            return self._error(
                name,
                _json_error(
                    400,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                ),
            )
        if op == "DescribeOrganization":
            return _json_ok({"Organization": self._organization_json()})
        if caller != self.org.management.id:
            return self._error(
                name,
                _json_error(
                    400,
                    "AccessDeniedException",
                    "You don't have permissions to access this resource.",
                ),
            )
        try:
            params: dict[str, Any] = json.loads(body) if body else {}
            page_size = min(int(params.get("MaxResults", ORGS_PAGE_CAP)), ORGS_PAGE_CAP)
            if page_size < 1:
                raise ValueError("MaxResults must be at least 1")
            offset = _decode_token(op, params.get("ParentId", ""), params.get("NextToken"))
        except ValueError as exc:
            return self._error(name, _json_error(400, "InvalidInputException", str(exc)))
        items: Sequence[SimRoot | SimOU | SimAccount]
        if op == "ListRoots":
            key, items = "Roots", [self.org.root]
        elif op == "ListAccounts":
            key, items = "Accounts", self.org.accounts
        elif op in ("ListAccountsForParent", "ListOrganizationalUnitsForParent"):
            parent = params.get("ParentId", "")
            if parent not in self.org.accounts_of:
                return self._error(
                    name,
                    _json_error(
                        400, "ParentNotFoundException", "We can't find a root or OU with that ID."
                    ),
                )
            if op == "ListAccountsForParent":
                key, items = "Accounts", self.org.accounts_of[parent]
            else:
                key, items = "OrganizationalUnits", self.org.ous_of[parent]
        else:
            return self._error(
                name, _json_error(400, "UnknownOperationException", f"Unknown operation {op}")
            )
        payload: dict[str, Any] = {
            key: [item.as_json() for item in items[offset : offset + page_size]]
        }
        if offset + page_size < len(items):
            payload["NextToken"] = _encode_token(op, params.get("ParentId", ""), offset + page_size)
        return _json_ok(payload)

    def _organization_json(self) -> dict[str, Any]:
        management = self.org.management
        return {
            "Id": self.org.id,
            "Arn": self.org.arn,
            "FeatureSet": "ALL",
            "MasterAccountArn": management.arn,
            "MasterAccountId": management.id,
            "MasterAccountEmail": management.email,
            "AvailablePolicyTypes": [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}],
        }

    # STS

    def _sts(self, action: str, form: dict[str, str], key_id: str) -> Reply:
        name = f"sts:{action}"
        if not self._admit(name, self.global_bucket):
            return _xml_error(STS_NS, 400, "Throttling", "Rate exceeded")
        caller = self._caller(key_id)
        if caller is None:
            return self._error(
                name,
                _xml_error(
                    STS_NS,
                    403,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                ),
            )
        if action == "GetCallerIdentity":
            session = self.sessions.get(key_id)
            if session is None:
                user_id = "AIDABENCHMANAGEMENT00"
                arn = f"arn:aws:iam::{caller}:user/{MANAGEMENT_USER}"
            else:
                user_id = f"AROABENCHROLE00000000:{session.session_name}"
                role = session.role_arn.rpartition("/")[2]
                arn = f"arn:aws:sts::{caller}:assumed-role/{role}/{session.session_name}"
            return _xml_ok(
                STS_NS,
                action,
                f"<Arn>{escape(arn)}</Arn><UserId>{escape(user_id)}</UserId>"
                f"<Account>{caller}</Account>",
            )
        if action == "AssumeRole":
            return self._assume_role(name, form)
        return self._error(
            name,
            _xml_error(STS_NS, 400, "InvalidAction", f"Could not find operation {action}"),
        )

    def _assume_role(self, name: str, form: dict[str, str]) -> Reply:
        role_arn = form.get("RoleArn", "")
        session_name = form.get("RoleSessionName", "")
        parts = role_arn.split(":", 5)
        if not session_name or len(parts) != 6 or not parts[5].startswith("role/"):
            return self._error(
                name, _xml_error(STS_NS, 400, "ValidationError", "Invalid RoleArn or session")
            )
        account_id = parts[4]
        if account_id not in self.org.by_id:
            return self._error(
                name,
                _xml_error(
                    STS_NS,
                    403,
                    "AccessDenied",
                    f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                ),
            )
        key_id = f"ASIA{account_id}{secrets.token_hex(2).upper()}"
        self.sessions[key_id] = RoleSession(account_id, role_arn, session_name)
        duration = int(form.get("DurationSeconds", "3600"))
        role = escape(role_arn.rpartition("/")[2])
        session = escape(session_name)
        return _xml_ok(
            STS_NS,
            "AssumeRole",
            f"<AssumedRoleUser><AssumedRoleId>AROABENCHROLE00000000:{session}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{account_id}:assumed-role/{role}/{session}</Arn>"
            f"</AssumedRoleUser><Credentials><AccessKeyId>{key_id}</AccessKeyId>"
            f"<SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>"
            f"<SessionToken>{secrets.token_urlsafe(96)}</SessionToken>"
            f"<Expiration>{_iso_z(int(time.time()) + duration)}</Expiration></Credentials>",
        )

    # IAM

    def _iam(self, action: str, form: dict[str, str], key_id: str) -> Reply:
        name = f"iam:{action}"
        caller = self._caller(key_id)
        bucket = None
        if caller is not None and self.params.iam_rate:
            bucket = self.iam_buckets.get(caller)
            if bucket is None:
                bucket = self.iam_buckets[caller] = TokenBucket(
                    self.params.iam_rate, time.monotonic(), self.params.iam_background
                )
        if not self._admit(name, bucket):
            return _xml_error(IAM_NS, 400, "Throttling", "Rate exceeded")
        if caller is None:
            return self._error(
                name,
                _xml_error(
                    IAM_NS,
                    403,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                ),
            )
        users = self.org.users(caller)
        if action == "ListUsers":
            return self._list_users(name, form, users)
        if action == "ListAccessKeys":
            user = users.by_name.get(form.get("UserName", ""))
            if user is None:
                message = f"The user with name {form.get('UserName', '')} cannot be found."
                return self._error(name, _xml_error(IAM_NS, 404, "NoSuchEntity", message))
            members = "".join(
                f"<member><UserName>{user.name}</UserName><AccessKeyId>{key.id}</AccessKeyId>"
                f"<Status>{'Active' if key.active else 'Inactive'}</Status>"
                f"<CreateDate>{_iso_z(key.created)}</CreateDate></member>"
                for key in user.keys
            )
            return _xml_ok(
                IAM_NS,
                action,
                f"<AccessKeyMetadata>{members}</AccessKeyMetadata><IsTruncated>false</IsTruncated>",
            )
        if action == "GetAccessKeyLastUsed":
            key_user = users.by_key.get(form.get("AccessKeyId", ""))
            if key_user is None:
                return self._error(
                    name,
                    _xml_error(
                        IAM_NS, 403, "AccessDenied", "The access key is not in this account"
                    ),
                )
            key = next(k for k in key_user.keys if k.id == form["AccessKeyId"])
            used = (
                f"<LastUsedDate>{_iso_z(key.last_used)}</LastUsedDate>"
                if key.last_used is not None
                else ""
            )
            return _xml_ok(
                IAM_NS,
                action,
                f"<UserName>{key_user.name}</UserName><AccessKeyLastUsed>{used}"
                f"<ServiceName>{key.service}</ServiceName><Region>{key.region}</Region>"
                f"</AccessKeyLastUsed>",
            )
        if action == "GenerateCredentialReport":
            return self._generate_report(caller, users)
        if action == "GetCredentialReport":
            return self._get_report(name, caller)
        if action == "GetAccountSummary":
            # A few of its entries; AccountAccessKeysPresent counts inactive root keys too.
            summary = {
                "Users": len(users.users),
                "UsersQuota": 5000,
                "AccessKeysPerUserQuota": 2,
                "AccountMFAEnabled": 1,
                "AccountAccessKeysPresent": int(bool(users.root_keys)),
            }
            entries = "".join(
                f"<entry><key>{key}</key><value>{value}</value></entry>"
                for key, value in summary.items()
            )
            return _xml_ok(IAM_NS, action, f"<SummaryMap>{entries}</SummaryMap>")
        return self._error(
            name, _xml_error(IAM_NS, 400, "InvalidAction", f"Could not find operation {action}")
        )

    def _list_users(self, name: str, form: dict[str, str], users: AccountUsers) -> Reply:
        try:
            max_items = int(form.get("MaxItems", "100"))
            offset = int(form.get("Marker", "m0").removeprefix("m"))
        except ValueError:
            return self._error(name, _xml_error(IAM_NS, 400, "ValidationError", "Invalid marker"))
        if not 1 <= max_items <= IAM_MAX_ITEMS:
            return self._error(
                name,
                _xml_error(
                    IAM_NS,
                    400,
                    "ValidationError",
                    f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to "
                    f"satisfy constraint: Member must have value less than or equal to 1000",
                ),
            )
        prefix = form.get("PathPrefix", "/")
        matching = [user for user in users.users if user.path.startswith(prefix)]
        page = matching[offset : offset + max_items]
        truncated = offset + max_items < len(matching)
        marker = f"<Marker>m{offset + max_items}</Marker>" if truncated else ""
        return _xml_ok(
            IAM_NS,
            "ListUsers",
            f"<Users>{''.join(_user_xml(user) for user in page)}</Users>"
            f"<IsTruncated>{_bool(truncated)}</IsTruncated>{marker}",
        )

    def _generate_report(self, account_id: str, users: AccountUsers) -> Reply:
        report = self.reports.get(account_id)
        if report is None:
            csv = credential_report_csv(account_id, users)
            self.reports[account_id] = Report(
                started=time.monotonic(),
                generated_at=int(time.time()),
                content=base64.b64encode(csv.encode()).decode(),
            )
            state = "<State>STARTED</State><Description>No report exists. Starting a new report "
            state += "generation task</Description>"
        elif time.monotonic() - report.started >= self.params.report_delay:
            state = "<State>COMPLETE</State>"
        else:
            state = "<State>INPROGRESS</State>"
        return _xml_ok(IAM_NS, "GenerateCredentialReport", state)

    def _get_report(self, name: str, account_id: str) -> Reply:
        report = self.reports.get(account_id)
        if report is None:
            return self._error(
                name,
                _xml_error(IAM_NS, 410, "ReportNotPresent", "Unable to find the credential report"),
            )
        if time.monotonic() - report.started < self.params.report_delay:
            return self._error(
                name,
                _xml_error(IAM_NS, 404, "ReportInProgress", "Credential report is being generated"),
            )
        return _xml_ok(
            IAM_NS,
            "GetCredentialReport",
            f"<Content>{report.content}</Content><ReportFormat>text/csv</ReportFormat>"
            f"<GeneratedTime>{_iso_z(report.generated_at)}</GeneratedTime>",
        )


def _encode_token(op: str, parent: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{op}|{parent}|{offset}".encode()).decode()


def _decode_token(op: str, parent: str, token: str | None) -> int:
    if token is None:
        return 0
    try:
        token_op, token_parent, offset = base64.urlsafe_b64decode(token).decode().split("|")
        if (token_op, token_parent) == (op, parent):
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ValueError("The NextToken value is not valid for this request.")


# --- running it --------------------------------------------------------------------------------


def _serve(params: SimParams, conn: Connection) -> None:
    asyncio.run(_serve_async(params, conn))


async def _serve_async(params: SimParams, conn: Connection) -> None:
    sim = Simulator(params)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=2048).start()
    conn.send(sock.getsockname()[1])
    conn.close()
    await asyncio.Event().wait()  # until the parent terminates this process


def start_sim(params: SimParams) -> tuple[str, Callable[[], None]]:
    """Start the simulator in its own process; returns its URL and a function that stops it."""
    ctx = multiprocessing.get_context("spawn")  # never fork a parent that may run a loop
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_serve, args=(params, sender), daemon=True)
    process.start()
    sender.close()
    if not receiver.poll(60):
        process.kill()
        raise RuntimeError("the simulator did not start")
    port = receiver.recv()

    def stop() -> None:
        process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()

    return f"http://127.0.0.1:{port}", stop


@contextmanager
def running_sim(params: SimParams) -> Iterator[str]:
    url, stop = start_sim(params)
    try:
        yield url
    finally:
        stop()


def sim_env(url: str) -> dict[str, str]:
    """Environment for an unmodified SDK client to use the simulator as the management account."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": MANAGEMENT_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": "bench-secret-not-checked",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def use_sim(url: str) -> None:
    """Point this process's AWS clients at the simulator and nothing else.

    Every other AWS_* variable goes first: a leftover AWS_ENDPOINT_URL_IAM or AWS_PROFILE
    could otherwise send benchmark traffic to a real endpoint.
    """
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(sim_env(url))


def sim_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def reset_stats(url: str) -> None:
    request = urllib.request.Request(f"{url}/_reset_stats", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


# --- capacity ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capacity:
    requests: int
    seconds: float
    server_cpu_seconds: float
    concurrency: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_share(self) -> float:
        """Share of one core the server used; well below 1 means the client was the limit."""
        return self.server_cpu_seconds / self.seconds

    @property
    def requests_per_cpu_second(self) -> float:
        return self.requests / self.server_cpu_seconds if self.server_cpu_seconds else math.inf

    def __str__(self) -> str:
        return (
            f"{self.requests_per_second:,.0f} req/s achieved ({self.requests:,} requests in "
            f"{self.seconds:.1f} s, {self.concurrency} concurrent), server at "
            f"{self.server_cpu_share:.0%} of a core = {self.requests_per_cpu_second:,.0f} req per "
            f"server CPU-second"
        )


def _capacity_requests(org: SimOrg) -> list[tuple[dict[str, str], bytes]]:
    """A live-scan-like mix signed as real clients would be: mostly ListAccessKeys."""
    requests: list[tuple[dict[str, str], bytes]] = []
    for account in org.accounts[:50]:
        key_id = f"ASIA{account.id}CAP0"
        headers = {
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/20250101/us-east-1/iam/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=0",
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        }
        users = org.users(account.id).users
        requests.append((headers, b"Action=ListUsers&Version=2010-05-08&MaxItems=1000"))
        for user in users:
            body = f"Action=ListAccessKeys&Version=2010-05-08&UserName={user.name}"
            requests.append((headers, body.encode()))
            for key in user.keys:
                body = f"Action=GetAccessKeyLastUsed&Version=2010-05-08&AccessKeyId={key.id}"
                requests.append((headers, body.encode()))
    return requests


def _drive(url: str, params: OrgParams, seconds: float, concurrency: int, conn: Connection) -> None:
    conn.send(asyncio.run(_drive_async(url, params, seconds, concurrency)))
    conn.close()


async def _drive_async(
    url: str, params: OrgParams, seconds: float, concurrency: int
) -> tuple[int, float]:
    requests = _capacity_requests(SimOrg(params))
    done = 0
    async with ClientSession(
        connector=TCPConnector(limit=concurrency), timeout=ClientTimeout(total=30)
    ) as session:
        started = time.monotonic()
        deadline = started + seconds

        async def worker(start: int) -> None:
            nonlocal done
            i = start
            while time.monotonic() < deadline:
                headers, body = requests[i % len(requests)]
                async with session.post(url + "/", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"capacity request failed: {response.status}")
                done += 1
                i += concurrency

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return done, time.monotonic() - started


def measure_capacity(seconds: float = 3.0, concurrency: int = 128) -> Capacity:
    """Requests/s the simulator serves with no latency and no limits, driven by an aiohttp client
    with `concurrency` requests in flight from another process."""
    params = SimParams(org=OrgParams(accounts=50, users_mean=20, seed=7), latency=0.0)
    ctx = multiprocessing.get_context("spawn")
    with running_sim(params) as url:
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_drive, args=(url, params.org, seconds, concurrency, sender), daemon=True
        )
        process.start()
        sender.close()
        # The server idles (no CPU) while the driver starts, so bracketing the whole run is fair.
        before = sim_stats(url)["cpu_seconds"]
        requests, elapsed = receiver.recv()
        process.join()
        cpu = sim_stats(url)["cpu_seconds"] - before
    return Capacity(requests, elapsed, cpu, concurrency)
