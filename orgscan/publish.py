"""`--upload s3://BUCKET/PREFIX/`: a write-once copy of the evidence package in S3.

Every file goes up with its SHA-256 (S3 refuses an object whose bytes do not match it), only
if its key has no object yet (IfNoneMatch="*"), and, when asked, an Object Lock retention;
each is then read back (HeadObject with ChecksumMode=ENABLED) and compared. The attestation and
then the manifest go last, only after every other file is in place: the manifest is the one
mark of a whole package, so a partial upload never looks like one. Uploading the same package
again completes an interrupted upload: objects already there with the same SHA-256 are kept.
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
from orgscan.aws.s3 import Bucket, Stored, Version, bucket
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
    kept: list[Stored] = field(default_factory=list)  # already there, from an earlier upload
    problems: list[str] = field(default_factory=list)


def checksum(data: bytes) -> str:
    """The SHA-256 as S3 takes and gives it: base64 of the digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def upload_order(names: list[str]) -> list[str]:
    """Every file, then the attestation (it signs the manifest's bytes, not its upload), then
    the manifest: the last object, present only when everything else is."""
    last = [ATTESTATION, manifest.FILENAME]
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


def _retention_problems(stored: Stored, retention: Retention | None, exact: bool) -> list[str]:
    """A retention read back that is not the one asked for; an object kept from an earlier
    upload keeps the date it was given then (its mode must still match)."""
    if retention is None:
        return []
    until = stored.retain_until if not exact and stored.retain_until else retention.until
    if stored.lock_mode == retention.mode and stored.retain_until == until:
        return []
    return [
        f"retention read back is {stored.lock_mode} until {stored.retain_until}, asked "
        f"{retention.mode} until {retention.until.isoformat()}"
    ]


async def _put(
    store: Bucket, key: str, data: bytes, retention: Retention | None
) -> tuple[Stored, bool, list[str]]:
    """Write and read back one object: what S3 holds, whether it was already there, problems."""
    sent = checksum(data)
    try:
        version = await store.put(
            key,
            data,
            sent,
            retention.mode if retention else None,
            retention.until if retention else None,
        )
    except Exception as exc:
        if error_code(exc) != "PreconditionFailed":
            raise
        existing = await store.current(key)  # the key has an object: ours from before?
        if existing is None or existing.checksum_sha256 != sent:
            return (
                existing or Stored(key, None, None, None, None),
                True,
                [
                    f"the key already holds other content (SHA-256 "
                    f"{existing.checksum_sha256 if existing else None}); evidence is never replaced"
                ],
            )
        return existing, True, _retention_problems(existing, retention, exact=False)
    stored = await store.stored(key, version)
    problems = []
    if stored.checksum_sha256 != sent:
        problems.append(f"SHA-256 read back is {stored.checksum_sha256}, sent {sent}")
    return stored, False, problems + _retention_problems(stored, retention, exact=True)


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
            there = await store.current(location.prefix + manifest.FILENAME)
            if there is not None and there.checksum_sha256 != checksum(files[manifest.FILENAME]):
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
                stored, kept, problems = await _put(
                    store, location.prefix + name, files[name], retention
                )
            except Exception as exc:
                upload.problems.append(f"{name}: {error_code(exc)}: {error_message(exc)}")
                continue
            (upload.kept if kept else upload.stored).append(stored)
            upload.problems += [f"{name}: {p}" for p in problems]
    return upload


def version_problems(versions: list[Version], prefix: str) -> list[str]:
    """Each key must have exactly one version and no delete marker: written once, never
    replaced or hidden (the bucket policy refuses both; this shows it held)."""
    by_key: dict[str, list[Version]] = {}
    for version in versions:
        by_key.setdefault(version.key[len(prefix) :], []).append(version)
    problems = []
    for name, found in sorted(by_key.items()):
        markers = sum(v.delete_marker for v in found)
        if markers:
            problems.append(f"{name}: {markers} delete marker(s); the object was hidden")
        if len(found) - markers > 1:
            problems.append(
                f"{name}: {len(found) - markers} versions; evidence is written once, so a later "
                "version replaced the one uploaded"
            )
    return problems


async def download(
    location: S3Location, directory: Path, scan: ScanConfig
) -> tuple[list[str], list[str]]:
    """The current version of every object directly under the prefix into `directory`: their
    names, and the problems of the keys' version histories (see `version_problems`)."""
    async with bucket(location.bucket, scan) as store:
        try:
            versions = await store.versions(location.prefix)
            current = [v for v in versions if v.latest and not v.delete_marker]
            for version in current:
                data = await store.get(version.key, version.version_id)
                (directory / version.key[len(location.prefix) :]).write_bytes(data)
        except Exception as exc:
            raise PublishError(f"{location}: {error_code(exc)}: {error_message(exc)}") from None
    names = [v.key[len(location.prefix) :] for v in current]
    return names, version_problems(versions, location.prefix)
