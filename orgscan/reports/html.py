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
from collections import Counter
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
    Control,
    Finding,
    FindingState,
    LastUseSource,
    RootKeys,
    RootKeySource,
    RuleSummary,
    ScanResult,
    ScanStatus,
    UserKeys,
    join_ou_path,
    split_ou_path,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.rules import Rule, load_rules, recommended_key, rule_by_id

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
    created_ago: str  # how long before the scan it was created
    last_used: str
    last_used_ago: str  # how long before the scan it was last used; "" if never or unknown
    service: str
    source: str  # where its last use was read, and how old that datum was at the scan
    keep: bool


@dataclass(frozen=True, slots=True)
class FindingRow:
    rule_id: str
    state: str
    state_order: int
    account_id: str
    account_name: str
    ou_path: str
    user_name: str
    arn: str
    resource_id: str
    detail: str
    keys: list[KeyRow]  # the user's keys (a user finding), or the one key (a key finding)
    keep: str  # the key to keep, where the finding counts a user's active keys
    keep_reason: str
    root: str  # where the root user's keys were read (an account finding)
    exception: ApprovedException | None
    lapsed: ApprovedException | None


@dataclass(frozen=True, slots=True)
class GapRow:
    """An account in scope where a rule could not judge everything, and why."""

    account: AccountResult
    coverage: str
    reasons: list[str]
    more: int  # reasons not shown; findings.json lists them all


@dataclass(frozen=True, slots=True)
class RuleSection:
    """One rule of the run: its metadata, thresholds, counts, status, findings and gaps."""

    rule: Rule
    thresholds: dict[str, int]
    summary: RuleSummary
    status: str
    rows: list[FindingRow]
    keep: bool  # its rows name a key to keep
    gaps: list[GapRow]
    judged: int  # accounts in scope where its coverage is complete
    in_scope: int
    controls: list[Control]


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One framework version: for each rule of the run, the controls it maps to there (none:
    the version has no equivalent)."""

    framework: str
    version: str
    cells: list[tuple[RuleSection, list[Control]]]


@dataclass(frozen=True, slots=True)
class MappingNote:
    """orgscan's reasoning for a rule's mappings, once for all the controls it explains."""

    anchor: str
    rule: str  # the rule's title
    controls: list[Control]
    rationale: str


@dataclass(frozen=True, slots=True)
class ExceptionRow:
    exception: ApprovedException
    account_name: str
    expired: bool
    rules: list[str]  # the titles of the rules it covers
    covers: list[Finding]


@dataclass(frozen=True, slots=True)
class Card:
    metric: str  # the key of the same number in findings.json's summary
    label: str
    value: int
    note: str
    tone: str


_LAST_USE_SOURCES = {
    LastUseSource.CREDENTIAL_REPORT: "credential report",
    LastUseSource.GET_ACCESS_KEY_LAST_USED: "GetAccessKeyLastUsed",
}
_ROOT_SOURCES = {
    RootKeySource.CREDENTIAL_REPORT: "credential report",
    RootKeySource.ACCOUNT_SUMMARY: "GetAccountSummary",
}


def _key_id(key: AccessKey) -> str:
    return key.id or "(no key id in the report)"


def _before(then: datetime, scan: datetime) -> str:
    """How long before the scan, in whole days (hours for less than two days)."""
    seconds = (scan - then).total_seconds()
    if seconds < 3600:
        return "within the hour before the scan"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h before the scan"
    return f"{int(seconds // 86400)} days before the scan"


def _last_used(key: AccessKey) -> str:
    if key.last_used_error:
        return f"last use unknown ({key.last_used_error.code})"
    if key.last_used_at:
        return f"last used {day(key.last_used_at)}"
    return "never used" if key.last_used_source else "last use not read"


def _read_from(source: str, as_of: datetime | None, scan: datetime) -> str:
    """Where a datum was read, and how old it was at the scan (the credential report's is
    up to 4 hours)."""
    return f"from the {source}" + (
        f", as of {when(as_of)} ({_before(as_of, scan)})" if as_of else ""
    )


def _source(key: AccessKey, scan: datetime) -> str:
    if key.last_used_source is None:
        return ""
    source = _LAST_USE_SOURCES.get(key.last_used_source, str(key.last_used_source))
    return _read_from(source, key.last_used_as_of, scan)


def _key_row(key: AccessKey, keep: AccessKey | None, scan: datetime) -> KeyRow:
    service = ", ".join(x for x in (key.last_used_service, key.last_used_region) if x)
    return KeyRow(
        id=_key_id(key),
        status=key.status,
        created=day(key.created_at),
        created_ago=_before(key.created_at, scan) if key.created_at else "",
        last_used=_last_used(key),
        last_used_ago=_before(key.last_used_at, scan)
        if key.last_used_at and not key.last_used_error
        else "",
        service=service,
        source=_source(key, scan),
        keep=key is keep,
    )


def _root(root: RootKeys | None, scan: datetime) -> str:
    if root is None or root.source is None:
        return ""
    return _read_from(_ROOT_SOURCES.get(root.source, str(root.source)), root.as_of, scan)


def _finding_row(
    finding: Finding, user: UserKeys | None, account: AccountResult | None, started: datetime
) -> FindingRow:
    scan = account.scanned_at if account and account.scanned_at else started
    # The key to keep answers a finding that counts the user's active keys.
    keep = recommended_key(user) if user and finding.active_key_count is not None else None
    keys = user.access_keys if user else ()
    if finding.access_key_id is not None:
        keys = tuple(k for k in keys if k.id == finding.access_key_id)
    return FindingRow(
        rule_id=finding.rule_id,
        state=str(finding.state),
        state_order=_STATE_ORDER[finding.state],
        account_id=finding.account_id,
        account_name=account.account.name if account else "",
        ou_path=account.account.ou_path if account else "",
        user_name=finding.user_name,
        arn=finding.arn,
        resource_id=finding.resource_id,
        detail=finding.detail,
        keys=[_key_row(k, keep.key if keep else None, scan) for k in keys],
        keep=_key_id(keep.key) if keep else "",
        keep_reason=keep.reason if keep else "",
        root=_root(account.root_keys if account else None, scan),
        exception=finding.exception,
        lapsed=finding.expired_exception,
    )


def _gap_row(account: AccountResult, rule_id: str) -> GapRow:
    entry = next((c for c in account.coverage if c.rule_id == rule_id), None)
    reasons = list(entry.gaps) if entry else []
    if not reasons:  # not scanned: the account's own reason
        reasons = [
            f"{account.error.code}: {account.error.message}"
            if account.error
            else f"account {account.scan_status}"
        ]
    return GapRow(
        account=account,
        coverage=str(account.coverage_of(rule_id)),
        reasons=reasons[:UNREADABLE_SHOWN],
        more=max(0, len(reasons) - UNREADABLE_SHOWN),
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
            f"under {count(len(result.run.rules), 'rule')}",
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


def _rule_sections(
    result: ScanResult, rows: list[FindingRow], controls: list[Control]
) -> list[RuleSection]:
    in_scope = [a for a in result.accounts if a.scan_status is not ScanStatus.SKIPPED]
    sections = []
    for settings in result.run.rules:
        rule = rule_by_id(settings.id)
        own = [r for r in rows if r.rule_id == rule.id]
        gaps = view.rule_gaps(result, rule.id)
        sections.append(
            RuleSection(
                rule=rule,
                thresholds=rule.parameters | settings.thresholds,
                summary=result.rule_summary(rule.id),
                status=str(view.rule_status(result, rule.id)),
                rows=own,
                keep=any(r.keep for r in own),
                gaps=[_gap_row(a, rule.id) for a in gaps],
                judged=len(in_scope) - len(gaps),
                in_scope=len(in_scope),
                controls=[c for c in controls if c.rule == rule.id],
            )
        )
    return sections


def _matrix(controls: list[Control], sections: list[RuleSection]) -> list[MatrixRow]:
    """Framework versions in the order the mappings first name them, grouped by framework."""
    frameworks = list(dict.fromkeys(c.framework for c in controls))
    versions = list(dict.fromkeys((c.framework, c.version) for c in controls))
    versions.sort(key=lambda fv: frameworks.index(fv[0]))
    return [
        MatrixRow(
            framework,
            version,
            [
                (s, [c for c in s.controls if (c.framework, c.version) == (framework, version)])
                for s in sections
            ],
        )
        for framework, version in versions
    ]


def _notes(controls: list[Control], titles: dict[str, str]) -> list[MappingNote]:
    """One note per rule and rationale: the CIS versions of a rule share theirs."""
    grouped: dict[tuple[str, str], list[Control]] = {}
    for c in controls:
        if c.rationale:
            grouped.setdefault((c.rule, c.rationale), []).append(c)
    return [
        MappingNote(f"mapping-{n}", titles.get(rule, rule), cs, rationale)
        for n, ((rule, rationale), cs) in enumerate(grouped.items(), 1)
    ]


def _sources(result: ScanResult) -> list[tuple[str, int]]:
    """How many active keys had their last use read from where, and how many not at all."""
    keys = [k for u in result.users for k in u.access_keys if k.active]
    counts = Counter(
        _LAST_USE_SOURCES.get(k.last_used_source, str(k.last_used_source))
        if k.last_used_source
        else "not read"
        for k in keys
    )
    return sorted(counts.items())


def _context(result: ScanResult, style: str, script: str) -> dict[str, object]:
    run = result.run
    accounts = view.accounts_by_id(result)
    users = {user.arn: user for user in result.users}
    first, on = view.evaluation_days(result)
    rows = sorted(
        (
            _finding_row(f, users.get(f.arn), accounts.get(f.account_id), run.started_at)
            for f in result.findings
        ),
        key=lambda r: (r.state_order, r.account_id, r.user_name, r.arn, r.resource_id),
    )
    controls = view.run_controls(result)
    sections = _rule_sections(result, rows, controls)
    titles = {rule.id: rule.title for rule in load_rules()}
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
            rules=[titles.get(r, r) for r in e.rules],
            covers=covered.get(e, []),
        )
        for e in sorted(covered, key=lambda e: (e.account, e.user, e.expires))
    ]
    evidence = codec.encode(result)
    delta = result.delta
    notes = _notes(controls, titles)
    return {
        "run": run,
        "rules": sections,
        "rule_titles": titles,
        "matrix": _matrix(controls, sections),
        "notes": notes,
        "note_anchor": {c: note.anchor for note in notes for c in note.controls},
        "delta": delta,
        "delta_counts": [(str(c), len(delta.of(c))) for c in Change] if delta else [],
        "delta_rules": [
            (s, [sum(1 for f in delta.of(c) if f.rule_id == s.rule.id) for c in Change])
            for s in sections
        ]
        if delta
        else [],
        "delta_accounts": [
            ("Accounts new in the organization", delta.accounts_added),
            ("Accounts gone from the organization", delta.accounts_removed),
            ("Accounts scanned last time but not this time", delta.coverage_lost),
            ("Accounts scanned this time but not last time", delta.coverage_gained),
        ]
        if delta
        else [],
        "changes": [str(c) for c in Change],
        "account_names": {a.account.id: a.account.name for a in result.accounts},
        "complete": run.complete,
        "failed": result.accounts_with(ScanStatus.FAILED),
        "partial": result.accounts_with(ScanStatus.PARTIAL),
        "unreadable_shown": UNREADABLE_SHOWN,
        "skipped": result.accounts_with(ScanStatus.SKIPPED),
        "cards": _cards(result),
        "rows": rows,
        "filter_accounts": sorted({(r.account_id, r.account_name) for r in rows}),
        "filter_ous": _ou_prefixes({r.ou_path for r in rows}),
        "coverage": coverage,
        "exceptions": exceptions,
        "evaluated_on": on.isoformat() if first == on else f"{first} to {on}",
        "lapsed_count": sum(1 for f in result.findings if f.expired_exception),
        "strategy_text": _STRATEGIES.get(run.strategy, run.strategy),
        "last_use_sources": _sources(result),
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
