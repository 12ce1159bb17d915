"""One account's IAM users and their keys, read live: what both strategies share, and what
the watch and remediation re-read with. Errors about one user stay that user's; errors about
the credentials fail the account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from orgscan.aws.errors import EXPIRED_TOKEN, error_code, error_message
from orgscan.aws.interfaces import IamReader
from orgscan.model import (
    NO_SUCH_ENTITY,
    AccessKey,
    KeySource,
    LastUseSource,
    RootKeys,
    ScanError,
    UserKeys,
    utcnow,
)

# ListUsers accepts up to 1000 per page; fewer pages is fewer calls against the account's limit.
LIST_USERS_PAGE = 1000
# Answers about the credentials, which no call about another user would escape: they fail the
# account. Every other AWS answer to a call about one user (an SCP or permission boundary on its
# path, a throttle that outlived its retries, a 5xx) is that user's alone.
ACCOUNT_ERRORS = EXPIRED_TOKEN | {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "RequestExpired",
}


@dataclass(frozen=True, slots=True)
class IamUser:
    name: str
    arn: str
    path: str


@dataclass(slots=True)
class Collected:
    users: list[UserKeys]
    notes: list[str] = field(default_factory=list)
    report_generated_at: datetime | None = None
    root_keys: RootKeys | None = None


async def list_users(iam: IamReader) -> list[IamUser]:
    # Paged by hand: a paginator costs CPU for nothing a Marker loop does not do.
    users: list[IamUser] = []
    params: dict[str, Any] = {"MaxItems": LIST_USERS_PAGE}
    while True:
        page = await iam.list_users(**params)
        users.extend(
            IamUser(name=u["UserName"], arn=u["Arn"], path=u.get("Path", "/"))
            for u in page["Users"]
        )
        if not page.get("IsTruncated"):
            return users
        params["Marker"] = page["Marker"]


async def list_keys(iam: IamReader, user_name: str) -> list[AccessKey]:
    # A user has at most two keys, so one page; paged by hand all the same, since a paginator
    # costs more CPU than the call it makes.
    keys: list[AccessKey] = []
    params = {"UserName": user_name}
    while True:
        page = await iam.list_access_keys(**params)
        keys.extend(
            AccessKey(id=k["AccessKeyId"], status=k["Status"], created_at=k.get("CreateDate"))
            for k in page["AccessKeyMetadata"]
        )
        if not page.get("IsTruncated"):
            return keys
        params["Marker"] = page["Marker"]


def user_error(exc: Exception) -> ScanError | None:
    """The error as one user's, or None when it is the account's: credentials, or no answer
    from AWS at all (connection, timeout), which says nothing about the user."""
    if not isinstance(exc, ClientError) or error_code(exc) in ACCOUNT_ERRORS:
        return None
    return ScanError(error_code(exc), error_message(exc))


def _known(value: str | None) -> str | None:
    # AWS answers "N/A" for a key that was never used.
    return None if value in (None, "", "N/A") else value


async def with_last_used(iam: IamReader, key: AccessKey) -> AccessKey:
    response = await iam.get_access_key_last_used(AccessKeyId=key.id)
    used = response.get("AccessKeyLastUsed", {})
    return AccessKey(
        id=key.id,
        status=key.status,
        created_at=key.created_at,
        last_used_at=used.get("LastUsedDate"),
        last_used_service=_known(used.get("ServiceName")),
        last_used_region=_known(used.get("Region")),
        last_used_source=LastUseSource.GET_ACCESS_KEY_LAST_USED,
        last_used_as_of=utcnow(),
    )


async def last_used(iam: IamReader, key: AccessKey) -> AccessKey:
    """The key with its last use, or with the error that kept it unknown."""
    try:
        return await with_last_used(iam, key)
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        return AccessKey(key.id, key.status, key.created_at, last_used_error=error)


async def live_user_keys(
    iam: IamReader, account_id: str, user: IamUser, flagged_last_use: bool = True
) -> UserKeys | None:
    """The user's keys read live; with `flagged_last_use`, the last use of each key of a user
    with more than one active key (the evidence of which key is in use), read here.

    None when the user was deleted after it was listed. A user whose keys cannot be read is
    returned with its error; a key whose last use cannot be read, with that error.
    """
    try:
        keys = await list_keys(iam, user.name)
    except Exception as exc:
        if error_code(exc) == NO_SUCH_ENTITY:
            return None
        error = user_error(exc)
        if error is None:
            raise
        return UserKeys(account_id, user.name, user.arn, user.path, (), KeySource.LIVE, error)
    if flagged_last_use and sum(1 for key in keys if key.active) > 1:
        keys = [await last_used(iam, key) for key in keys]
    return UserKeys(
        account_id=account_id,
        user_name=user.name,
        arn=user.arn,
        path=user.path,
        access_keys=tuple(keys),
        source=KeySource.LIVE,
    )


def last_use_notes(users: Sequence[UserKeys]) -> list[str]:
    """A note for every key whose last use is unknown, saying why."""
    notes = []
    for user in users:
        for key in user.access_keys:
            error = key.last_used_error
            if error is None:
                continue
            if error.code == NO_SUCH_ENTITY:
                notes.append(
                    f"key {key.id} of user {user.arn} was deleted before its last use could be "
                    "read; its last use is unknown"
                )
            else:
                notes.append(
                    f"the last use of key {key.id} of user {user.arn} is unknown: "
                    f"{error.code}: {error.message}"
                )
    return notes
