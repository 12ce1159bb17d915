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

    async def exists(self, key: str) -> bool:
        try:
            await self._s3.head_object(Bucket=self.name, Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def put(
        self,
        key: str,
        data: bytes,
        checksum_sha256: str,
        lock_mode: str | None,
        retain_until: datetime | None,
    ) -> str | None:
        """Write one object; S3 refuses it when the checksum does not match the bytes it got.
        The version id of the new object (None when the bucket is not versioned)."""
        params: dict[str, Any] = {
            "Bucket": self.name,
            "Key": key,
            "Body": data,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": checksum_sha256,
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
        answer = await self._s3.head_object(**params)
        return Stored(
            key,
            answer.get("VersionId"),
            answer.get("ChecksumSHA256"),
            answer.get("ObjectLockMode"),
            answer.get("ObjectLockRetainUntilDate"),
        )

    async def keys(self, prefix: str) -> list[str]:
        """The object keys directly under `prefix` (a package is one level, no folders)."""
        found = []
        paginator = self._s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            found += [
                item["Key"]
                for item in page.get("Contents", [])
                if "/" not in item["Key"][len(prefix) :]
            ]
        return found

    async def get(self, key: str) -> bytes:
        answer = await self._s3.get_object(Bucket=self.name, Key=key, ChecksumMode="ENABLED")
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
