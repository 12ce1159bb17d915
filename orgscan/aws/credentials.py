"""Credentials per account: AssumeRole (renewed before and when they expire), or the
caller's own for the management account. `Credentials` never print their secrets."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from orgscan.aws.botocore_adapter import AioCredentials
from orgscan.aws.errors import EXPIRED_TOKEN, error_code, error_message
from orgscan.aws.interfaces import StsClient
from orgscan.aws.wire import WireCredentials
from orgscan.config import RoleConfig
from orgscan.model import AccountFailure

log = logging.getLogger(__name__)
T = TypeVar("T")

# Sessions are renewed this long before they expire: botocore's refreshable credentials stop
# using theirs 10 minutes before (its "mandatory" refresh). A session shorter than twice this is
# renewed halfway through instead, so that a renewal is never due the moment it is made.
REFRESH_AHEAD = 600.0
# When a renewal ahead of time fails, the old session is used for now and renewal tried again
# this much later, until the old session has no more than this left.
REFRESH_RETRY = 30.0
# ExpiredToken answers one call may meet; each needs a session that worked since it was made.
MAX_RENEWALS = 3


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None  # as AssumeRole gives it; None: they do not expire

    def for_signing(self) -> AioCredentials:
        return AioCredentials(self.access_key_id, self.secret_access_key, self.session_token)


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


# AWS caps a session at one hour when the caller is itself a role session (role chaining), and
# answers a longer DurationSeconds with a ValidationError whose message says so.
CHAINED_MAX_SECONDS = 3600
ROLE_CHAINING = "role chaining"


@dataclass(frozen=True, slots=True)
class Identity:
    arn: str
    account_id: str
    partition: str

    @property
    def chained(self) -> bool:
        """Whether the caller is a role session (SSO, CI OIDC, an assume-role profile), so that
        every role it assumes is role chaining."""
        return self.arn.split(":", 5)[-1].startswith("assumed-role/")


async def caller_identity(sts: StsClient) -> Identity:
    response = await sts.get_caller_identity()
    arn = response["Arn"]
    # arn:<partition>:sts::<account>:assumed-role/... — the partition decides every ARN we build.
    return Identity(arn=arn, account_id=response["Account"], partition=arn.split(":")[1])


def role_arn(identity: Identity, account_id: str, role_name: str) -> str:
    return f"arn:{identity.partition}:iam::{account_id}:role/{role_name}"


def _chaining_refused(exc: ClientError) -> bool:
    return error_code(exc) == "ValidationError" and ROLE_CHAINING in error_message(exc)


# The one region whose STS endpoint is active in every account of its partition: AWS's table
# of STS endpoints marks us-east-1 as active by default and not one that can be deactivated
# (IAM User Guide, "AWS STS Regions and endpoints"). Other partitions have no such promise.
ALWAYS_ACTIVE_STS = {"aws": "us-east-1"}


def region_disabled_fix(region: str, account_id: str, partition: str) -> str:
    """What to do when STS in `region` is not active in `account_id` (the account whose role is
    assumed, not the caller's), as AWS documents it in "Activating and deactivating AWS STS in
    an AWS Region": the one wording for a scan's failure and for preflight."""
    fix = (
        f"activate STS in {region} in account {account_id}: for a region enabled by default, "
        "in that account's IAM console (Account settings, Security Token Service (STS), "
        "Endpoints); for an opt-in region, by enabling the region in that account (Account, "
        "AWS Regions), which activates its STS endpoint"
    )
    always = ALWAYS_ACTIVE_STS.get(partition)
    if always is None:
        return f"{fix}; or run orgscan with AWS_REGION set to a region active in every account"
    if always == region:
        return fix
    return (
        f"{fix}; or run orgscan with AWS_REGION={always}, whose STS endpoint cannot be deactivated"
    )


def region_disabled(
    sts: StsClient, identity: Identity, account_id: str, aws_message: str
) -> AccountFailure:
    """AssumeRole goes to the regional STS endpoint of the configured region, which must be
    active in the target account."""
    region, url = sts.region_name, sts.endpoint_url
    return AccountFailure(
        "RegionDisabledException",
        f"AssumeRole was sent to STS in {region} ({url}), which is not active in account "
        f"{account_id}. Fix: {region_disabled_fix(region, account_id, identity.partition)}. "
        f"AWS said: {aws_message}",
    )


class AccountCredentials:
    """Chooses and obtains the credentials for one account, as the config says.

    `warnings` collects what the run should say about them (a session duration AWS would
    refuse for this caller, and the one used instead).
    """

    def __init__(
        self,
        sts: StsClient,
        identity: Identity,
        role: RoleConfig,
        management_account: str,
        management_account_id: str,
    ) -> None:
        """`role` is the role to assume (the config's role section, or the remediation role);
        `management_account` is organization.management_account: how the management account
        `management_account_id` is entered."""
        self._sts = sts
        self._identity = identity
        self._role = role
        self._management_mode = management_account
        self._management_account_id = management_account_id
        self.warnings: list[str] = []
        self.duration = role.duration_seconds
        if identity.chained and self.duration > CHAINED_MAX_SECONDS:
            self._shorten(f"the caller {identity.arn} is an assumed role")

    def _shorten(self, why: str) -> None:
        self.warnings.append(
            f"role.duration_seconds: {why}, and AWS allows sessions of roles assumed by role "
            f"chaining at most {CHAINED_MAX_SECONDS} s; using {CHAINED_MAX_SECONDS} s instead of "
            f"the configured {self._role.duration_seconds} s (sessions are renewed "
            "before they expire)"
        )
        self.duration = CHAINED_MAX_SECONDS

    def _explained(self, exc: ClientError, account_id: str) -> AccountFailure | None:
        """An AssumeRole failure with what to do about it, where orgscan knows better."""
        code = error_code(exc)
        if code == "RegionDisabledException":
            return region_disabled(self._sts, self._identity, account_id, error_message(exc))
        if code == "AccessDenied" and account_id == self._management_account_id:
            role = role_arn(self._identity, account_id, self._role.name)
            # The usual cause: StackSets skip the management account, so the role is missing.
            return AccountFailure(
                code,
                f"{error_message(exc)}. orgscan enters the management account {account_id} "
                f"through {role}, which service-managed StackSets never deploy: deploy "
                "deploy/cloudformation/orgscan-roles.yaml there as a plain stack, and allow "
                f"{self._identity.arn} sts:AssumeRole on {role}",
            )
        return None

    async def _assume_role(self, sts: StsClient, kwargs: dict[str, Any], arn: str) -> Any:
        """AssumeRole, once more at one hour if AWS refuses the duration as role chaining."""
        try:
            return await sts.assume_role(**kwargs)
        except ClientError as exc:
            # A caller whose ARN does not show the chaining (e.g. GetSessionToken credentials).
            if kwargs["DurationSeconds"] <= CHAINED_MAX_SECONDS or not _chaining_refused(exc):
                raise
        if self.duration > CHAINED_MAX_SECONDS:  # once, however many accounts were refused
            self._shorten(f"AWS refused {self.duration} s for {arn}")
        return await sts.assume_role(**{**kwargs, "DurationSeconds": CHAINED_MAX_SECONDS})

    async def _assume(self, sts: StsClient, arn: str, account_id: str) -> Credentials:
        role = self._role
        kwargs: dict[str, Any] = {
            "RoleArn": arn,
            "RoleSessionName": role.session_name,
            "DurationSeconds": self.duration,
        }
        if role.external_id:
            kwargs["ExternalId"] = role.external_id
        try:
            response = await self._assume_role(sts, kwargs, arn)
        except ClientError as exc:
            # Whether it failed at once or on the retry at one hour: the same explanation.
            explained = self._explained(exc, account_id)
            if explained is None:
                raise
            raise explained from exc
        data = response["Credentials"]
        return Credentials(
            access_key_id=data["AccessKeyId"],
            secret_access_key=data["SecretAccessKey"],
            session_token=data["SessionToken"],
            expiration=data.get("Expiration"),
        )

    async def get(self, account_id: str) -> RefreshableCredentials | None:
        """The account's session, renewed as it nears expiry; None means the caller's own
        credentials (which botocore's credential chain renews)."""
        mode = self._management_mode
        if account_id == self._management_account_id and mode in ("auto", "caller"):
            if self._identity.account_id == account_id:
                return None
            if mode == "caller":
                raise AccountFailure(
                    "CallerNotInManagementAccount",
                    f"organization.management_account is 'caller', but the caller "
                    f"{self._identity.arn} is not in the management account {account_id}; "
                    "set it to 'auto' or 'assume' (the audit role there) or 'skip'",
                )
            # auto, and the caller is elsewhere (a delegated administrator): the role below.
        arn = role_arn(self._identity, account_id, self._role.name)
        # The account's own retry budget for its AssumeRole calls: STS faults elsewhere in the
        # organization must not stop this account's retries.
        sts = self._sts.with_own_retries()

        async def renew() -> Credentials:
            try:
                return await self._assume(sts, arn, account_id)
            except AccountFailure:
                raise
            except Exception as exc:
                # An account-wide failure, never mistaken for an error of the user whose call
                # happened to need the new session.
                raise AccountFailure(
                    error_code(exc), f"renewing the session of {arn}: {error_message(exc)}"
                ) from exc

        return RefreshableCredentials(await self._assume(sts, arn, account_id), renew)
