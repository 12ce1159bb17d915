"""CloudTrail events for IAM CreateAccessKey / UpdateAccessKey, as EventBridge delivers them.

EventBridge wraps each CloudTrail record in an envelope: `detail-type` "AWS API Call via
CloudTrail", `source` "aws.iam", and the record itself as `detail`. A bare record (as the
CloudTrail console or `lookup-events` shows it) is accepted too. Only the fields the watch needs
are read, each checked against its IAM API pattern, so nothing else in an event (and nothing
that looks like a secret) is ever echoed; an error names the field, never its value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DETAIL_TYPE = "AWS API Call via CloudTrail"
EVENT_SOURCE = "iam.amazonaws.com"
EVENT_NAMES = ("CreateAccessKey", "UpdateAccessKey")
ACTIVE = "Active"
KEY_STATUSES = ("Active", "Inactive", "Expired")  # botocore's iam statusType

# The IAM API's own patterns (botocore iam service model), ASCII only and matched in full.
ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
USER_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)  # existingUserNameType
ACCESS_KEY_ID = re.compile(r"\w{16,128}", re.ASCII)  # accessKeyIdType
EVENT_ID = re.compile(r"[\w-]{1,128}", re.ASCII)
ERROR_CODE = re.compile(r"[\w.:-]{1,128}", re.ASCII)
# A principal ARN as CloudTrail's userIdentity.arn gives it: printable ASCII, no spaces.
PRINCIPAL_ARN = re.compile(r"arn:[\x21-\x7e]{1,2040}", re.ASCII)


class EventError(Exception):
    """An event the watch does not understand; str() names the field and what was expected."""


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """What one CreateAccessKey or UpdateAccessKey call did, as far as the rule cares."""

    event_name: str  # CreateAccessKey | UpdateAccessKey
    account_id: str  # detail.recipientAccountId: the account whose IAM was changed
    # The IAM user whose keys changed. None only when the root user acted on its own keys (no
    # UserName: the key is the root user's, not an IAM user's), or a failed call named no user.
    user_name: str | None
    status: str  # the key's status after the call: Active for CreateAccessKey
    access_key_id: str | None = None
    error_code: str | None = None  # the call failed and changed nothing
    event_id: str | None = None
    event_time: datetime | None = None
    caller_arn: str | None = None  # detail.userIdentity.arn: who made the call


def _mapping(value: object, path: str, *, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise EventError(f"{path}: expected an object")
    return value


def _text(
    data: dict[str, Any], key: str, path: str, pattern: re.Pattern[str], what: str
) -> str | None:
    """The field if present; an error if it is there but not `what`. Never echoes the value."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise EventError(f"{path}.{key}: expected {what}")
    return value


def _record(event: object) -> tuple[dict[str, Any], str]:
    """The CloudTrail record and the path it was found at."""
    data = _mapping(event, "event")
    if "detail" in data or "detail-type" in data:
        if data.get("detail-type") != DETAIL_TYPE:
            raise EventError(f"detail-type: expected {DETAIL_TYPE!r}")
        return _mapping(data.get("detail"), "detail"), "detail"
    if "eventSource" in data:
        return data, "event"
    raise EventError(
        "expected an EventBridge event (detail-type, detail) or a CloudTrail record (eventSource)"
    )


def parse_event(event: object) -> KeyEvent:
    """The KeyEvent in an EventBridge event or a bare CloudTrail record; EventError if none."""
    record, at = _record(event)
    if record.get("eventSource") != EVENT_SOURCE:
        raise EventError(f"{at}.eventSource: expected {EVENT_SOURCE!r}")
    name = record.get("eventName")
    if name not in EVENT_NAMES:
        raise EventError(f"{at}.eventName: expected one of {', '.join(EVENT_NAMES)}")
    account = _text(record, "recipientAccountId", at, ACCOUNT_ID, "a 12-digit account id")
    if account is None:
        raise EventError(f"{at}.recipientAccountId: required")
    identity = _mapping(record.get("userIdentity"), f"{at}.userIdentity", required=False)
    request = _mapping(record.get("requestParameters"), f"{at}.requestParameters", required=False)
    response = _mapping(record.get("responseElements"), f"{at}.responseElements", required=False)
    created = _mapping(
        response.get("accessKey"), f"{at}.responseElements.accessKey", required=False
    )
    error = _text(record, "errorCode", at, ERROR_CODE, "an AWS error code")
    users = (
        (request, f"{at}.requestParameters"),
        (created, f"{at}.responseElements.accessKey"),
    )
    user = next(
        (
            found
            for data, path in users
            if (found := _text(data, "userName", path, USER_NAME, "an IAM user name"))
        ),
        None,
    )
    caller_type = identity.get("type") if isinstance(identity.get("type"), str) else None
    if user is None and caller_type == "IAMUser":
        # Without UserName, IAM acts on the keys of the IAM user who signed the request.
        user = _text(identity, "userName", f"{at}.userIdentity", USER_NAME, "an IAM user name")
    if user is None and caller_type != "Root" and error is None:
        raise EventError(
            f"{at}: no user name in requestParameters or responseElements.accessKey, and the "
            "caller is neither an IAM user nor the root user, so whose key changed is unknown"
        )
    if name == "CreateAccessKey":
        status = ACTIVE
        key = _text(
            created,
            "accessKeyId",
            f"{at}.responseElements.accessKey",
            ACCESS_KEY_ID,
            "an access key id",
        )
    else:
        status = request.get("status", "")
        if status not in KEY_STATUSES and error is None:
            raise EventError(
                f"{at}.requestParameters.status: expected one of {', '.join(KEY_STATUSES)}"
            )
        key = _text(
            request, "accessKeyId", f"{at}.requestParameters", ACCESS_KEY_ID, "an access key id"
        )
    return KeyEvent(
        event_name=name,
        account_id=account,
        user_name=user,
        status=status,
        access_key_id=key,
        error_code=error,
        event_id=_text(record, "eventID", at, EVENT_ID, "an event id"),
        event_time=_time(record, at),
        caller_arn=_text(identity, "arn", f"{at}.userIdentity", PRINCIPAL_ARN, "an ARN"),
    )


def _time(record: dict[str, Any], at: str) -> datetime | None:
    value = record.get("eventTime")
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise EventError(f"{at}.eventTime: expected an ISO 8601 time in UTC")
    return parsed


def load_event(path: Path) -> KeyEvent:
    """Read one event from a JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EventError(f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise EventError("the file is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventError(f"not JSON (line {exc.lineno}, column {exc.colno})") from None
    return parse_event(data)
