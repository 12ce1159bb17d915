"""`--upload s3://BUCKET/PREFIX/`: a write-once copy of the evidence package in S3.

Every file goes up with its SHA-256 (S3 refuses an object whose bytes do not match it) and,
when asked, an Object Lock retention; each is then read back (HeadObject with
ChecksumMode=ENABLED) and compared. The manifest and then the attestation go last and only
after every other file is in place, so a partial upload never looks like a package.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from orgscan.attestation import FILENAME as ATTESTATION
from orgscan.aws.errors import error_code, error_message
from orgscan.aws.s3 import Bucket, Stored, bucket
from orgscan.config import ScanConfig
from orgscan.reports import manifest

LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class PublishError(Exception):
    """The upload cannot start: bad target or retention, or a bucket that cannot take it."""


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str, option: str) -> S3Location:
        name, _, prefix = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not _BUCKET.match(name):
            raise PublishError(f"{option}: expected s3://BUCKET/PREFIX/, got {url!r}")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(name, prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, slots=True)
class Retention:
    mode: str
    until: datetime

    @classmethod
    def from_options(
        cls, until: str | None, days: int | None, mode: str | None, now: datetime
    ) -> Retention | None:
        """The retention the options ask for, or None; a bad combination names the option."""
        if until is None and days is None:
            if mode is not None:
                raise PublishError("--retain-mode: needs --retain-until or --retain-days")
            return None
        if until is not None and days is not None:
            raise PublishError("--retain-until and --retain-days: give one, not both")
        if mode not in LOCK_MODES:
            # No default: COMPLIANCE cannot be shortened by anyone, root included.
            raise PublishError(f"--retain-mode: expected COMPLIANCE or GOVERNANCE, got {mode!r}")
        if days is not None:
            if days < 1:
                raise PublishError(
                    f"--retain-days: expected a whole number of days >= 1, got {days}"
                )
            return cls(mode, (now + timedelta(days=days)).replace(microsecond=0))
        assert until is not None
        try:
            parsed = datetime.fromisoformat(until)
        except ValueError:
            raise PublishError(
                f"--retain-until: expected a date (2027-03-31) or an ISO 8601 time, got {until!r}"
            ) from None
        if len(until) == 10:  # a date alone: retained to the end of that day, UTC
            parsed = datetime.combine(date.fromisoformat(until), time.max, UTC)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        if parsed <= now:
            raise PublishError(f"--retain-until: {until} is not in the future")
        return cls(mode, parsed.replace(microsecond=0))


@dataclass(slots=True)
class Upload:
    location: S3Location
    stored: list[Stored] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def checksum(data: bytes) -> str:
    """The SHA-256 as S3 takes and gives it: base64 of the digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def upload_order(names: list[str]) -> list[str]:
    """Every file, then the manifest, then the attestation that signs it."""
    last = [manifest.FILENAME, ATTESTATION]
    return sorted(n for n in names if n not in last) + [n for n in last if n in names]


def package(directory: Path) -> dict[str, bytes]:
    files = {
        p.name: p.read_bytes()
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".")
    }
    if manifest.FILENAME not in files:
        raise PublishError(f"{directory}: no {manifest.FILENAME}; not an evidence package")
    return files


async def _put(
    store: Bucket, key: str, data: bytes, retention: Retention | None
) -> tuple[Stored, list[str]]:
    sent = checksum(data)
    version = await store.put(
        key,
        data,
        sent,
        retention.mode if retention else None,
        retention.until if retention else None,
    )
    stored = await store.stored(key, version)
    problems = []
    if stored.checksum_sha256 != sent:
        problems.append(f"SHA-256 read back is {stored.checksum_sha256}, sent {sent}")
    if retention is not None and (
        stored.lock_mode != retention.mode or stored.retain_until != retention.until
    ):
        problems.append(
            f"retention read back is {stored.lock_mode} until {stored.retain_until}, asked "
            f"{retention.mode} until {retention.until.isoformat()}"
        )
    return stored, problems


async def publish(
    directory: Path, location: S3Location, retention: Retention | None, scan: ScanConfig
) -> Upload:
    """Upload the package in `directory`; `Upload.problems` empty means all of it is there."""
    files = package(directory)
    upload = Upload(location)
    async with bucket(location.bucket, scan) as store:
        try:
            if retention is not None and not await store.object_lock():
                raise PublishError(
                    f"--upload: bucket {location.bucket} has no Object Lock; enable it "
                    "(see deploy/), or upload without --retain-*"
                )
            if await store.exists(location.prefix + manifest.FILENAME):
                raise PublishError(
                    f"{location}{manifest.FILENAME} already exists: give each package its own "
                    "prefix (e.g. the run id)"
                )
        except PublishError:
            raise
        except Exception as exc:
            raise PublishError(f"{location}: {error_code(exc)}: {error_message(exc)}") from None
        for name in upload_order(list(files)):
            if name in (manifest.FILENAME, ATTESTATION) and upload.problems:
                upload.problems.append(f"{name}: not uploaded, since the package is incomplete")
                continue
            try:
                stored, problems = await _put(store, location.prefix + name, files[name], retention)
            except Exception as exc:
                upload.problems.append(f"{name}: {error_code(exc)}: {error_message(exc)}")
                continue
            upload.stored.append(stored)
            upload.problems += [f"{name}: {p}" for p in problems]
    return upload


async def download(location: S3Location, directory: Path, scan: ScanConfig) -> list[str]:
    """Every object directly under the prefix into `directory`; their names."""
    async with bucket(location.bucket, scan) as store:
        try:
            keys = await store.keys(location.prefix)
            for key in keys:
                (directory / key[len(location.prefix) :]).write_bytes(await store.get(key))
        except Exception as exc:
            raise PublishError(f"{location}: {error_code(exc)}: {error_message(exc)}") from None
    return [key[len(location.prefix) :] for key in keys]
