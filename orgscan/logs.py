"""Logging on stderr, with credentials redacted from every record.

--verbose shows orgscan's own debug messages. The AWS libraries stay at WARNING even then: at
debug they log signed headers, session tokens and AssumeRole response bodies, and redaction by
pattern is a second line of defence, not a reason to print them.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from rich.console import Console

REDACTED = "***"
_FIELDS = (
    "SecretAccessKey|SessionToken|X-Amz-Security-Token|aws_secret_access_key|"
    "aws_session_token|secret_access_key|session_token|WebIdentityToken|"
    "x-amz-sso_bearer_token|accessToken"
)
_PATTERNS = (
    # <SecretAccessKey>…</SecretAccessKey> in raw XML response bodies
    (re.compile(rf"<({_FIELDS})>[^<]*</", re.IGNORECASE), rf"<\1>{REDACTED}</"),
    # 'SessionToken': '…', X-Amz-Security-Token: b'…', key=value, and the SigV4 canonical
    # request's lowercase "x-amz-security-token:…" line
    (
        re.compile(rf"""((?:{_FIELDS})['"]?\s*[:=]\s*b?['"]?)[^'"\s,&}}>]+""", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(Signature=)[0-9a-f]{64}"), rf"\1{REDACTED}"),
    (re.compile(r"(Bearer\s+)[^\s'\",]+", re.IGNORECASE), rf"\1{REDACTED}"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _Handler(logging.StreamHandler[TextIO]):
    """stderr; or, while a live display (the progress bar) holds the terminal, that display's
    rich console, which prints each line above the display instead of onto it."""

    console: Console | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.console is None:
            super().emit(record)
            return
        try:
            line = self.format(record)
            self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def print_through(console: Console | None) -> None:
    """Route orgscan's log lines through `console` while a live display is on it; None: stderr."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            handler.console = console


def setup_logging(verbose: bool) -> None:
    handler = _Handler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for library in ("botocore", "aiobotocore", "boto3", "aioboto3", "urllib3", "aiohttp"):
        logging.getLogger(library).setLevel(logging.WARNING)
    # asyncio's debug chatter and moto's server internals say nothing about the scan.
    for noisy in ("asyncio", "moto", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
