"""`report.html`: the audit report, one self-contained file that works offline and prints.

The template lives in the top-level `templates/` directory; a wheel carries it as
`orgscan/templates`. Autoescape is on for every template because account names, user paths and
exception fields are free text that the scanned organization controls. The inline script is
allowed by its hash in the page's Content-Security-Policy, so even markup that slipped through
could neither run a script nor load anything.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

import orgscan
from orgscan import evidence as codec
from orgscan.model import (
    AccessKey,
    AccountResult,
    ApprovedException,
    Change,
    Finding,
    FindingState,
    ScanResult,
    ScanStatus,
    UserKeys,
    join_ou_path,
    split_ou_path,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.rules import load_rule, recommended_key

TEMPLATE = "report.html.j2"
SCRIPT = "report.js"
STYLE = "report.css"

_STRATEGIES = {
    "live": "ListUsers and ListAccessKeys in every account, exact at scan time.",
    "credential-report": (
        "The IAM credential report of every account (AWS regenerates it at most every 4 hours); "
        "every user it flags is re-checked live with ListAccessKeys, so a stale report cannot "
        "produce a finding."
    ),
}
_SCAN_ORDER = {
    ScanStatus.FAILED: 0,
    ScanStatus.PARTIAL: 1,
    ScanStatus.SKIPPED: 2,
    ScanStatus.SCANNED: 3,
}
# Unreadable users listed per account in the coverage table; the CSV and JSON list them all.
UNREADABLE_SHOWN = 20
_STATE_ORDER = {FindingState.OPEN: 0, FindingState.EXCEPTED: 1}


def template_dirs() -> list[Path]:
    """`orgscan/templates` in an installed wheel, else the source tree's `templates/`."""
    package = Path(orgscan.__file__).resolve().parent
    return [package / "templates", package.parent / "templates"]


def environment(loader: FileSystemLoader) -> Environment:
    env = Environment(
        loader=loader,
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = when
    env.filters["day"] = day
    env.filters["count"] = count
    return env


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def day(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value else "—"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _duration(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "not finished"
    seconds = round((end - start).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    status: str
    created: str
    last_used: str
    service: str
    keep: bool


@dataclass(frozen=True, slots=True)
class FindingRow:
    state: str
    state_order: int
    account_id: str
    account_name: str
    ou_path: str
    user_name: str
    arn: str
    keys: list[KeyRow]
    keep: str
    keep_reason: str
    exception: ApprovedException | None
    lapsed: ApprovedException | None


@dataclass(frozen=True, slots=True)
class ExceptionRow:
    exception: ApprovedException
    account_name: str
    expired: bool
    covers: list[Finding]


@dataclass(frozen=True, slots=True)
class Card:
    metric: str  # the key of the same number in findings.json's summary
    label: str
    value: int
    note: str
    tone: str


def _key_id(key: AccessKey) -> str:
    return key.id or "(no key id in the report)"


def _last_used(key: AccessKey) -> str:
    if key.last_used_error:
        return f"last use unknown ({key.last_used_error.code})"
    return day(key.last_used_at) if key.last_used_at else "never used"


def _key_row(key: AccessKey, keep: AccessKey | None) -> KeyRow:
    service = ", ".join(x for x in (key.last_used_service, key.last_used_region) if x)
    return KeyRow(
        id=_key_id(key),
        status=key.status,
        created=day(key.created_at),
        last_used=_last_used(key),
        service=service,
        keep=key is keep,
    )


def _finding_row(
    finding: Finding, user: UserKeys | None, account: AccountResult | None
) -> FindingRow:
    keep = recommended_key(user) if user else None
    keys = user.access_keys if user else ()
    return FindingRow(
        state=str(finding.state),
        state_order=_STATE_ORDER[finding.state],
        account_id=finding.account_id,
        account_name=account.account.name if account else "",
        ou_path=account.account.ou_path if account else "",
        user_name=finding.user_name,
        arn=finding.arn,
        keys=[_key_row(k, keep.key if keep else None) for k in keys],
        keep=_key_id(keep.key) if keep else "—",
        keep_reason=keep.reason if keep else "",
        exception=finding.exception,
        lapsed=finding.expired_exception,
    )


def _ou_prefixes(paths: set[str]) -> list[str]:
    r"""Every OU path and its ancestors, so one filter choice covers a whole subtree. Split name
    by name: an OU named `Legacy/Old` (`Root/Legacy\/Old`) has no ancestor `Root/Legacy\`."""
    prefixes: set[str] = set()
    for path in paths:
        try:
            names = split_ou_path(path)
        except ValueError:  # no OU (a finding without its account) or not orgscan's writing
            prefixes.update([path] if path else [])
            continue
        prefixes.update(join_ou_path(names[: n + 1]) for n in range(len(names)))
    return sorted(prefixes)


def _cards(result: ScanResult) -> list[Card]:
    scanned = len(result.accounts_with(ScanStatus.SCANNED))
    partial = len(result.accounts_with(ScanStatus.PARTIAL))
    failed = len(result.accounts_with(ScanStatus.FAILED))
    skipped = len(result.accounts_with(ScanStatus.SKIPPED))
    unreadable = sum(1 for user in result.users if user.error)
    open_ = len(result.findings_in(FindingState.OPEN))
    excepted = len(result.findings_in(FindingState.EXCEPTED))
    total = len(result.accounts)
    return [
        Card(
            "accounts_scanned",
            "Accounts scanned",
            scanned,
            f"of {total} in the organization",
            "neutral",
        ),
        Card(
            "accounts_partial",
            "Accounts partly scanned",
            partial,
            "some users could not be read" if partial else "none",
            "bad" if partial else "good",
        ),
        Card(
            "accounts_failed",
            "Accounts failed",
            failed,
            "could not be scanned" if failed else "none",
            "bad" if failed else "good",
        ),
        Card("accounts_skipped", "Accounts skipped", skipped, "by state or filter", "neutral"),
        Card(
            "users",
            "IAM users",
            len(result.users),
            f"listed; {unreadable} could not be read" if unreadable else "evaluated",
            "neutral",
        ),
        Card(
            "findings_open",
            "Open findings",
            open_,
            "users with more than one active key",
            "bad" if open_ else "good",
        ),
        Card(
            "findings_excepted",
            "Excepted findings",
            excepted,
            "covered by an approved exception",
            "warn" if excepted else "neutral",
        ),
    ]


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _context(result: ScanResult, style: str, script: str) -> dict[str, object]:
    run = result.run
    rule = load_rule()
    accounts = view.accounts_by_id(result)
    users = {user.arn: user for user in result.users}
    first, on = view.evaluation_days(result)
    rows = sorted(
        (_finding_row(f, users.get(f.arn), accounts.get(f.account_id)) for f in result.findings),
        key=lambda r: (r.state_order, r.account_id, r.user_name, r.arn),
    )
    coverage = sorted(
        result.accounts,
        key=lambda a: (_SCAN_ORDER[a.scan_status], a.account.ou_path, a.account.name, a.account.id),
    )
    covered = view.findings_by_exception(result)
    exceptions = [
        ExceptionRow(
            exception=e,
            account_name=accounts[e.account].account.name if e.account in accounts else "",
            expired=e.is_expired(on),
            covers=covered.get(e, []),
        )
        for e in sorted(covered, key=lambda e: (e.account, e.user, e.expires))
    ]
    status = view.control_status(result)
    open_count = len(result.findings_in(FindingState.OPEN))
    evidence = codec.encode(result)
    delta = result.delta
    return {
        "run": run,
        "rule": rule,
        "delta": delta,
        "delta_counts": [(str(c), len(delta.of(c))) for c in Change] if delta else [],
        "delta_accounts": [
            ("Accounts new in the organization", delta.accounts_added),
            ("Accounts gone from the organization", delta.accounts_removed),
            ("Accounts scanned last time but not this time", delta.coverage_lost),
            ("Accounts scanned this time but not last time", delta.coverage_gained),
        ]
        if delta
        else [],
        "account_names": {a.account.id: a.account.name for a in result.accounts},
        "complete": run.complete,
        "failed": result.accounts_with(ScanStatus.FAILED),
        "partial": result.accounts_with(ScanStatus.PARTIAL),
        "unreadable_shown": UNREADABLE_SHOWN,
        "skipped": result.accounts_with(ScanStatus.SKIPPED),
        "cards": _cards(result),
        "controls": result.controls,
        "control_status": str(status),
        "open_count": open_count,
        "excepted_count": len(result.findings_in(FindingState.EXCEPTED)),
        "user_count": len(result.users),
        "not_scanned": len(result.accounts_with(ScanStatus.FAILED)),
        "partly_scanned": len(result.accounts_with(ScanStatus.PARTIAL)),
        "rows": rows,
        "filter_accounts": sorted({(r.account_id, r.account_name) for r in rows}),
        "filter_ous": _ou_prefixes({r.ou_path for r in rows}),
        "coverage": coverage,
        "exceptions": exceptions,
        "evaluated_on": on.isoformat() if first == on else f"{first} to {on}",
        "lapsed_count": sum(1 for f in result.findings if f.expired_exception),
        "strategy_text": _STRATEGIES.get(run.strategy, run.strategy),
        "report_times": [a for a in coverage if a.credential_report_generated_at],
        "crowded": view.crowded_accounts(result),
        "crowded_share": view.CROWDED_SHARE,
        "duration": _duration(run.started_at, run.finished_at),
        "evidence_sha256": hashlib.sha256(evidence).hexdigest(),
        "schema_version": codec.SCHEMA_VERSION,
        # Our own packaged files, never data; the page's CSP allows exactly these by hash.
        "style": Markup(style),  # noqa: S704
        "script": Markup(script),  # noqa: S704
        "csp": (
            f"default-src 'none'; style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
            "base-uri 'none'; form-action 'none'"
        ),
    }


class HtmlRenderer(Renderer):
    filename = "report.html"

    def __init__(self) -> None:
        loader = FileSystemLoader(template_dirs())
        self._env = environment(loader)
        self._style = loader.get_source(self._env, STYLE)[0]
        self._script = loader.get_source(self._env, SCRIPT)[0]

    def render(self, result: ScanResult) -> bytes:
        template = self._env.get_template(TEMPLATE)
        context = _context(result, self._style, self._script)
        return template.render(context).encode("utf-8")
