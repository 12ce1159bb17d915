"""The typed seams between the AWS wing and the rest of orgscan.

Collection reads IAM through an `IamReader`, remediation changes keys through an `IamWriter`,
the walk of the organization reads an `OrganizationsReader`, credentials come from an
`StsClient`. `orgscan.aws.clients.BoundClient` is the real one of each; tests use in-memory
fakes. Answers are botocore's dicts; errors are botocore's `ClientError`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

Answer = dict[str, Any]


class Paginator(Protocol):
    def paginate(self, **params: Any) -> AsyncIterator[Answer]: ...


class IamReader(Protocol):
    """The read-only IAM calls a scan makes in one account."""

    def list_users(self, **params: Any) -> Awaitable[Answer]: ...

    def list_access_keys(self, **params: Any) -> Awaitable[Answer]: ...

    def get_access_key_last_used(self, **params: Any) -> Awaitable[Answer]: ...

    def generate_credential_report(self, **params: Any) -> Awaitable[Answer]: ...

    def get_credential_report(self, **params: Any) -> Awaitable[Answer]: ...

    def get_account_summary(self, **params: Any) -> Awaitable[Answer]: ...


class IamWriter(IamReader, Protocol):
    """What remediation needs in one account: reads, and deactivating a key."""

    def update_access_key(self, **params: Any) -> Awaitable[Answer]: ...

    def on_attempt(self, operation: str, handler: Callable[..., None]) -> None:
        """Call `handler` after every HTTP attempt of `operation` (retries included), with
        botocore's `response-received` arguments (`exception` among them)."""
        ...


class OrganizationsReader(Protocol):
    def describe_organization(self, **params: Any) -> Awaitable[Answer]: ...

    def get_paginator(self, operation: str) -> Paginator: ...


class StsClient(Protocol):
    @property
    def region_name(self) -> str: ...

    @property
    def endpoint_url(self) -> str: ...

    def get_caller_identity(self, **params: Any) -> Awaitable[Answer]: ...

    def assume_role(self, **params: Any) -> Awaitable[Answer]: ...

    def with_own_retries(self) -> StsClient:
        """The same client with a retry budget of its own (one account's AssumeRole calls)."""
        ...


class SnsPublisher(Protocol):
    def publish(self, **params: Any) -> Awaitable[Answer]: ...


class SecurityHubImporter(Protocol):
    """What publishing findings to Security Hub CSPM calls, in the findings' own account."""

    def batch_import_findings(self, **params: Any) -> Awaitable[Answer]: ...

    def batch_update_findings(self, **params: Any) -> Awaitable[Answer]: ...


class KmsSigner(Protocol):
    """What signing an attestation with a KMS key calls."""

    def get_public_key(self, **params: Any) -> Awaitable[Answer]: ...

    def sign(self, **params: Any) -> Awaitable[Answer]: ...


class S3Store(Protocol):
    """What writing, reading back and downloading an evidence package calls."""

    def get_object_lock_configuration(self, **params: Any) -> Awaitable[Answer]: ...

    def head_object(self, **params: Any) -> Awaitable[Answer]: ...

    def put_object(self, **params: Any) -> Awaitable[Answer]: ...

    def get_object(self, **params: Any) -> Awaitable[Answer]: ...

    def get_paginator(self, operation: str) -> Paginator: ...
