"""In-memory stand-ins behind the seams of orgscan.aws.interfaces."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from orgscan.remediation.apply import Entry, Outcome

CREATED = datetime(2025, 1, 1, tzinfo=UTC)
REPORT_GENERATED = datetime(2026, 11, 30, 6, tzinfo=UTC)


def client_error(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code}}, operation)


class FakeIam:
    """One account's IAM: users and their keys (id → status), with scripted failures.

    `fail[operation]` is a list of exceptions raised by the next calls of that operation;
    `attempts` are the per-attempt outcomes UpdateAccessKey reports to `on_attempt` handlers
    (None: AWS answered), and `applies` whether an UpdateAccessKey takes effect even when it
    then raises (an answer lost on the way back). Keys are created at `CREATED` unless `created`
    says otherwise, and never used unless `last_used` says when; `report` is the credential
    report's content (None: there is none), `root_keys_present` GetAccountSummary's
    AccountAccessKeysPresent.
    """

    def __init__(self, users: dict[str, dict[str, str]], page: int = 100) -> None:
        self.users = users
        self.page = page
        self.created: dict[str, datetime] = {}
        self.last_used: dict[str, datetime] = {}
        self.report: bytes | None = None
        self.report_generated_at = REPORT_GENERATED
        self.root_keys_present = 0
        self.report_state = "COMPLETE"  # what GenerateCredentialReport answers
        self.pause = 0.0  # seconds each ListAccessKeys takes
        self.fail: dict[str, list[Exception]] = {}
        # When set, the journal of the run: every change must be in it as PENDING before it is
        # sent, so that a crash mid-call leaves the change pending, never unrecorded.
        self.journal: list[Entry] | None = None
        self.attempts: list[BaseException | None] = [None]
        self.applies = True
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._handlers: list[Callable[..., None]] = []

    def _call(self, operation: str, params: dict[str, Any]) -> None:
        self.calls.append((operation, params))
        failures = self.fail.get(operation)
        if failures:
            raise failures.pop(0)

    async def list_users(self, **params: Any) -> dict[str, Any]:
        self._call("ListUsers", params)
        names = sorted(self.users)
        start = int(params.get("Marker", 0))
        chunk = names[start : start + self.page]
        page: dict[str, Any] = {
            "Users": [
                {"UserName": n, "Arn": f"arn:aws:iam::111111111111:user/{n}", "Path": "/"}
                for n in chunk
            ],
            "IsTruncated": start + self.page < len(names),
        }
        if page["IsTruncated"]:
            page["Marker"] = str(start + self.page)
        return page

    async def list_access_keys(self, **params: Any) -> dict[str, Any]:
        self._call("ListAccessKeys", params)
        if self.pause:
            await asyncio.sleep(self.pause)
        name = params["UserName"]
        if name not in self.users:
            raise client_error("NoSuchEntity", "ListAccessKeys")
        keys = self.users[name]
        return {
            "AccessKeyMetadata": [
                {
                    "UserName": name,
                    "AccessKeyId": k,
                    "Status": s,
                    "CreateDate": self.created.get(k, CREATED),
                }
                for k, s in keys.items()
            ],
            "IsTruncated": False,
        }

    async def get_access_key_last_used(self, **params: Any) -> dict[str, Any]:
        self._call("GetAccessKeyLastUsed", params)
        used = self.last_used.get(params["AccessKeyId"])
        if used is None:
            return {"AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}}
        return {
            "AccessKeyLastUsed": {"LastUsedDate": used, "ServiceName": "s3", "Region": "eu-west-1"}
        }

    async def generate_credential_report(self, **params: Any) -> dict[str, Any]:
        self._call("GenerateCredentialReport", params)
        return {"State": self.report_state}

    async def get_credential_report(self, **params: Any) -> dict[str, Any]:
        self._call("GetCredentialReport", params)
        if self.report is None:
            raise client_error("ReportNotPresent", "GetCredentialReport")
        return {"Content": self.report, "GeneratedTime": self.report_generated_at}

    async def get_account_summary(self, **params: Any) -> dict[str, Any]:
        self._call("GetAccountSummary", params)
        return {
            "SummaryMap": {
                "Users": len(self.users),
                "AccountAccessKeysPresent": self.root_keys_present,
            }
        }

    async def update_access_key(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("UpdateAccessKey", params))
        if self.journal is not None:
            mine = [e for e in self.journal if e.access_key_id == params["AccessKeyId"]]
            assert mine and mine[-1].outcome is Outcome.PENDING, "sent before journaled pending"
        failures = self.fail.get("UpdateAccessKey")
        # An attempt that was answered carries AWS's answer, as botocore's event does: the
        # error that will be raised, if any.
        answer = getattr(failures[0], "response", None) if failures else None
        for outcome in self.attempts:
            for handler in self._handlers:
                handler(exception=outcome, parsed_response=None if outcome else answer)
        if self.applies:
            self.users[params["UserName"]][params["AccessKeyId"]] = params["Status"]
        if failures:
            raise failures.pop(0)
        return {}

    def on_attempt(self, operation: str, handler: Callable[..., None]) -> None:
        assert operation == "UpdateAccessKey"
        self._handlers.append(handler)
