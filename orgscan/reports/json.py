"""`findings.json`: the versioned evidence file, and its reader.

The reader rebuilds the exact result model, so `orgscan report` renders from the evidence
alone and any field a report needs must be here.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from orgscan.fs import write_atomic
from orgscan.model import (
    AccessKey,
    Account,
    AccountResult,
    ApprovedException,
    Change,
    Control,
    Delta,
    Finding,
    FindingChange,
    FindingState,
    KeySource,
    Limits,
    RunInfo,
    ScanError,
    ScanResult,
    ScanStatus,
    UserKeys,
    evidence_complete,
    iso,
    parse_iso,
)

SCHEMA_VERSION = "1.1"
# Versions the reader accepts. 1.0 named the account lifecycle `status` (Organizations'
# retired `Status`); 1.1 calls it `state` and adds, all optional on read: accounts scanned in
# part (scan_status "partial"), users that could not be read (users[].error, with null
# counts), keys whose last use is unknown (access_keys[].last_used_error) and when each
# account was scanned (accounts[].scanned_at). A 1.0 file means what it meant then.
READABLE_VERSIONS = ("1.0", SCHEMA_VERSION)
FILENAME = "findings.json"


class EvidenceError(Exception):
    """findings.json is missing, unreadable or of a schema this version cannot read."""


def _error(error: ScanError | None) -> dict[str, str] | None:
    return {"code": error.code, "message": error.message} if error else None


def _exception(exception: ApprovedException | None) -> dict[str, Any] | None:
    if exception is None:
        return None
    return {
        "account": exception.account,
        "user": exception.user,
        "reason": exception.reason,
        "owner": exception.owner,
        "expires": exception.expires.isoformat(),
        "ticket": exception.ticket,
    }


def _key(key: AccessKey, detailed: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": key.id,
        "status": key.status,
        "created_at": iso(key.created_at),
    }
    if detailed:
        data |= {
            "last_used_at": iso(key.last_used_at),
            "last_used_service": key.last_used_service,
            "last_used_region": key.last_used_region,
        }
    if key.last_used_error:  # only where it happened: the last use is unknown, not "never"
        data["last_used_error"] = _error(key.last_used_error)
    return data


def _user(user: UserKeys, flagged: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "account_id": user.account_id,
        "user_name": user.user_name,
        "arn": user.arn,
        "path": user.path,
        "source": str(user.source),
        "key_count": user.key_count,
        "active_key_count": user.active_key_count,
        # Last-used data is recorded for flagged users; report rows carry it for all users.
        "access_keys": [
            _key(k, flagged or user.source is KeySource.CREDENTIAL_REPORT) for k in user.access_keys
        ],
    }
    if user.error:  # only for a user that could not be read; its counts are then null
        data["error"] = _error(user.error)
    return data


def _delta(delta: Delta | None) -> dict[str, Any] | None:
    if delta is None:
        return None
    return {
        "baseline_run_id": delta.baseline_run_id,
        "baseline_started_at": iso(delta.baseline_started_at),
        "counts": {str(change): len(delta.of(change)) for change in Change},
        "findings": [
            {
                "rule_id": c.rule_id,
                "account_id": c.account_id,
                "user_name": c.user_name,
                "arn": c.arn,
                "change": str(c.change),
                "state": str(c.state) if c.state else None,
                "reason": c.reason,
            }
            for c in delta.findings
        ],
        "accounts_added": delta.accounts_added,
        "accounts_removed": delta.accounts_removed,
        "coverage_lost": delta.coverage_lost,
        "coverage_gained": delta.coverage_gained,
    }


def _read_delta(data: dict[str, Any] | None) -> Delta | None:
    if data is None:
        return None
    return Delta(
        baseline_run_id=data["baseline_run_id"],
        baseline_started_at=parse_iso(data["baseline_started_at"]),  # type: ignore[arg-type]
        findings=[
            FindingChange(
                rule_id=c["rule_id"],
                account_id=c["account_id"],
                user_name=c["user_name"],
                arn=c["arn"],
                change=Change(c["change"]),
                state=FindingState(c["state"]) if c["state"] else None,
                reason=c.get("reason"),
            )
            for c in data["findings"]
        ],
        accounts_added=list(data["accounts_added"]),
        accounts_removed=list(data["accounts_removed"]),
        coverage_lost=list(data["coverage_lost"]),
        coverage_gained=list(data["coverage_gained"]),
    )


def to_dict(result: ScanResult) -> dict[str, Any]:
    run = result.run
    flagged = {f.arn for f in result.findings}
    counts = {status: len(result.accounts_with(status)) for status in ScanStatus}
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "id": run.id,
            "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at),
            "tool_version": run.tool_version,
            "caller_arn": run.caller_arn,
            "organization_id": run.organization_id,
            "management_account_id": run.management_account_id,
            "partition": run.partition,
            "strategy": run.strategy,
            "role_name": run.role_name,
            "config_digest": run.config_digest,
            "limits": {
                "max_accounts_in_flight": run.limits.max_accounts_in_flight,
                "management_rate_limit": run.limits.management_rate_limit,
                "account_rate_limit": run.limits.account_rate_limit,
                "max_attempts": run.limits.max_attempts,
                "call_timeout": run.limits.call_timeout,
            },
            "complete": run.complete,
            "interrupted": run.interrupted,
            "resumed_from": run.resumed_from,
            "shard": run.shard,
            "api_calls": run.api_calls,
            "errors": [_error(e) for e in run.errors],
            "warnings": run.warnings,
        },
        "summary": {
            "accounts": len(result.accounts),
            "accounts_scanned": counts[ScanStatus.SCANNED],
            "accounts_partial": counts[ScanStatus.PARTIAL],
            "accounts_failed": counts[ScanStatus.FAILED],
            "accounts_skipped": counts[ScanStatus.SKIPPED],
            "users": len(result.users),
            "users_unreadable": sum(1 for u in result.users if u.error),
            "findings": len(result.findings),
            "findings_open": len(result.findings_in(FindingState.OPEN)),
            "findings_excepted": len(result.findings_in(FindingState.EXCEPTED)),
        },
        "accounts": [
            {
                "id": r.account.id,
                "name": r.account.name,
                "email": r.account.email,
                "ou_path": r.account.ou_path,
                "ou_ids": list(r.account.ou_ids),
                "state": r.account.state,
                "scan_status": str(r.scan_status),
                "error": _error(r.error),
                "skip_reason": r.skip_reason,
                "user_count": r.user_count,
                "credential_report_generated_at": iso(r.credential_report_generated_at),
                "notes": r.notes,
                "api_calls": r.api_calls,
                "scanned_at": iso(r.scanned_at),
            }
            for r in result.accounts
        ],
        "users": [_user(u, u.arn in flagged) for u in result.users],
        "findings": [
            {
                "rule_id": f.rule_id,
                "account_id": f.account_id,
                "user_name": f.user_name,
                "arn": f.arn,
                "active_key_count": f.active_key_count,
                "severity": f.severity,
                "state": str(f.state),
                "exception": _exception(f.exception),
                "expired_exception": _exception(f.expired_exception),
            }
            for f in result.findings
        ],
        "exceptions": [_exception(e) for e in result.exceptions],
        "delta": _delta(result.delta),
        "controls": [
            {
                "framework": c.framework,
                "version": c.version,
                "id": c.id,
                "title": c.title,
                "level": c.level,
                "rationale": c.rationale,
            }
            for c in result.controls
        ],
    }


def dumps(result: ScanResult) -> bytes:
    return (json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write(result: ScanResult, directory: Path) -> Path:
    path = directory / FILENAME
    write_atomic(path, dumps(result))
    return path


def _read_error(data: dict[str, str] | None) -> ScanError | None:
    return ScanError(code=data["code"], message=data["message"]) if data else None


def _read_exception(data: dict[str, Any] | None) -> ApprovedException | None:
    if data is None:
        return None
    return ApprovedException(
        account=data["account"],
        user=data["user"],
        reason=data["reason"],
        owner=data["owner"],
        expires=date.fromisoformat(data["expires"]),
        ticket=data.get("ticket"),
    )


def _read_key(data: dict[str, Any]) -> AccessKey:
    return AccessKey(
        id=data["id"],
        status=data["status"],
        created_at=parse_iso(data["created_at"]),
        last_used_at=parse_iso(data.get("last_used_at")),
        last_used_service=data.get("last_used_service"),
        last_used_region=data.get("last_used_region"),
        last_used_error=_read_error(data.get("last_used_error")),
    )


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """An evidence document in the current shape: 1.0's renamed field under its 1.1 name (the
    fields 1.1 added are optional, and their absence keeps its 1.0 meaning)."""
    if data.get("schema_version") != "1.0":
        return data
    accounts = [
        {("state" if key == "status" else key): value for key, value in account.items()}
        for account in data.get("accounts", [])
    ]
    return {**data, "accounts": accounts}


def from_dict(data: dict[str, Any]) -> ScanResult:
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise EvidenceError(
            f"schema_version {version!r} is not supported; this orgscan reads "
            + " or ".join(map(repr, READABLE_VERSIONS))
        )
    data = upgraded(data)
    run = data["run"]
    users_by_account: dict[str, list[UserKeys]] = {}
    for u in data["users"]:
        users_by_account.setdefault(u["account_id"], []).append(
            UserKeys(
                account_id=u["account_id"],
                user_name=u["user_name"],
                arn=u["arn"],
                path=u["path"],
                access_keys=tuple(_read_key(k) for k in u["access_keys"]),
                source=KeySource(u["source"]),
                error=_read_error(u.get("error")),
            )
        )
    accounts = [
        AccountResult(
            account=Account(
                id=a["id"],
                name=a["name"],
                email=a["email"],
                state=a["state"],
                ou_path=a["ou_path"],
                ou_ids=tuple(a["ou_ids"]),
            ),
            scan_status=ScanStatus(a["scan_status"]),
            error=_read_error(a["error"]),
            skip_reason=a["skip_reason"],
            users=users_by_account.get(a["id"], []),
            credential_report_generated_at=parse_iso(a["credential_report_generated_at"]),
            notes=list(a["notes"]),
            api_calls=a["api_calls"],
            scanned_at=parse_iso(a.get("scanned_at")),
        )
        for a in data["accounts"]
    ]
    limits = run["limits"]
    result = ScanResult(
        run=RunInfo(
            id=run["id"],
            started_at=parse_iso(run["started_at"]),  # type: ignore[arg-type]
            finished_at=parse_iso(run["finished_at"]),
            tool_version=run["tool_version"],
            caller_arn=run["caller_arn"],
            organization_id=run["organization_id"],
            management_account_id=run["management_account_id"],
            partition=run["partition"],
            strategy=run["strategy"],
            role_name=run["role_name"],
            config_digest=run["config_digest"],
            limits=Limits(**limits),
            interrupted=run["interrupted"],
            resumed_from=run["resumed_from"],
            shard=run.get("shard"),
            api_calls=run["api_calls"],
            errors=[e for e in map(_read_error, run["errors"]) if e],
            warnings=list(run["warnings"]),
        ),
        accounts=accounts,
        findings=[
            Finding(
                rule_id=f["rule_id"],
                account_id=f["account_id"],
                user_name=f["user_name"],
                arn=f["arn"],
                active_key_count=f["active_key_count"],
                severity=f["severity"],
                state=FindingState(f["state"]),
                exception=_read_exception(f["exception"]),
                expired_exception=_read_exception(f["expired_exception"]),
            )
            for f in data["findings"]
        ],
        exceptions=[e for e in map(_read_exception, data["exceptions"]) if e],
        controls=[Control(**c) for c in data["controls"]],
        delta=_read_delta(data.get("delta")),
    )
    # The stored flag is a claim; completeness is what the accounts themselves show.
    result.run.complete = evidence_complete(result)
    return result


def load(path: Path) -> dict[str, Any]:
    """findings.json as stored, before any reading or deriving."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise EvidenceError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EvidenceError(f"{path}: expected a JSON object")
    return data


def parse(data: dict[str, Any], path: Path) -> ScanResult:
    try:
        return from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvidenceError(f"{path}: not a findings.json this orgscan can read: {exc!r}") from None


def read(path: Path) -> ScanResult:
    return parse(load(path), path)


def stored_complete_contradiction(data: dict[str, Any], result: ScanResult) -> str | None:
    """What is wrong when the stored `run.complete` claims other than the evidence shows."""
    stored = data.get("run", {}).get("complete")
    if stored == result.run.complete:
        return None
    return (
        f"run.complete is {json.dumps(stored)}, but the accounts and errors it records show "
        f"{'a complete' if result.run.complete else 'an incomplete'} sweep"
    )
