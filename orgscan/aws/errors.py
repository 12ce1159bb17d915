"""What an AWS error says, read the same way everywhere."""

from __future__ import annotations

# AWS's answers to a call signed with a session that has expired (query and JSON protocols).
EXPIRED_TOKEN = frozenset({"ExpiredToken", "ExpiredTokenException"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(exc) or type(exc).__name__
