"""Amazon S3: the only place orgscan calls it. Writes the evidence package to a bucket (with
its SHA-256 checksum and, under Object Lock, a retention), reads each object's checksum and
retention back, and downloads a package for `orgscan verify s3://...`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orgscan.aws.clients import ClientFactory
from orgscan.aws.errors import error_code
from orgscan.aws.interfaces import S3Store
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.config import ScanConfig


@dataclass(frozen=True, slots=True)
class Stored:
    """An object as S3 reports it after the write (HeadObject with ChecksumMode=ENABLED)."""

    key: str
    version_id: str | None
    checksum_sha256: str | None  # base64, as S3 gives it
    lock_mode: str | None
    retain_until: datetime | None


@dataclass(frozen=True, slots=True)
class Version:
    """One entry of ListObjectVersions: a version of a key, or a delete marker."""

    key: str
    version_id: str | None
    latest: bool
    delete_marker: bool


def _stored(key: str, answer: dict[str, Any]) -> Stored:
    return Stored(
        key,
        answer.get("VersionId"),
        answer.get("ChecksumSHA256"),
        answer.get("ObjectLockMode"),
        answer.get("ObjectLockRetainUntilDate"),
    )


class Bucket:
    """One bucket through a client bound to the caller's own credentials."""

    def __init__(self, client: S3Store, name: str) -> None:
        self._s3 = client
        self.name = name

    async def object_lock(self) -> bool:
        """Whether the bucket has Object Lock enabled."""
        try:
            answer = await self._s3.get_object_lock_configuration(Bucket=self.name)
        except Exception as exc:
            if error_code(exc) == "ObjectLockConfigurationNotFoundError":
                return False
            raise
        return bool(answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    async def current(self, key: str) -> Stored | None:
        """The key's current version as S3 reports it, or None when there is none."""
        try:
            answer = await self._s3.head_object(Bucket=self.name, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return _stored(key, answer)

    async def put(
        self,
        key: str,
        data: bytes,
        checksum_sha256: str,
        lock_mode: str | None,
        retain_until: datetime | None,
    ) -> str | None:
        """Write one object, only if the key has none yet (IfNoneMatch="*": S3 answers
        PreconditionFailed otherwise, so evidence is never replaced by a new version); S3 also
        refuses it when the checksum does not match the bytes it got. The version id of the new
        object (None when the bucket is not versioned)."""
        params: dict[str, Any] = {
            "Bucket": self.name,
            "Key": key,
            "Body": data,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": checksum_sha256,
            "IfNoneMatch": "*",
        }
        if lock_mode is not None and retain_until is not None:
            params.update(ObjectLockMode=lock_mode, ObjectLockRetainUntilDate=retain_until)
        answer = await self._s3.put_object(**params)
        version = answer.get("VersionId")
        return str(version) if version else None

    async def stored(self, key: str, version_id: str | None) -> Stored:
        params: dict[str, Any] = {"Bucket": self.name, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            params["VersionId"] = version_id
        return _stored(key, await self._s3.head_object(**params))

    async def versions(self, prefix: str) -> list[Version]:
        """Every version and delete marker of the keys directly under `prefix` (a package is
        one level, no folders)."""
        found: list[Version] = []
        paginator = self._s3.get_paginator("list_object_versions")
        async for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            for kind, deleted in (("Versions", False), ("DeleteMarkers", True)):
                found += [
                    Version(item["Key"], item.get("VersionId"), bool(item.get("IsLatest")), deleted)
                    for item in page.get(kind, [])
                    if "/" not in item["Key"][len(prefix) :]
                ]
        return found

    async def get(self, key: str, version_id: str | None) -> bytes:
        params: dict[str, Any] = {"Bucket": self.name, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id and version_id != "null":  # "null": written while unversioned
            params["VersionId"] = version_id
        answer = await self._s3.get_object(**params)
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data


@asynccontextmanager
async def bucket(name: str, scan: ScanConfig) -> AsyncIterator[Bucket]:
    """The bucket, with the caller's credentials, the management rate limit and a counter."""
    factory = ClientFactory(scan)
    limiter, counter = RateLimiter(scan.management_rate_limit), CallCounter()
    async with factory, factory.client("s3", limiter, counter) as client:
        yield Bucket(client, name)
