"""`orgscan.sarif`: SARIF 2.1.0 for GitHub code scanning and other dashboards.

Cloud resources are not files, so each result gets a relative, scheme-less pseudo-path
(`aws/<account-id>/iam/users/<path>/<user-name>`) that GitHub accepts, the ARN as a logical
location, and a fingerprint of its own that keeps the same alert across quarterly scans.
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from importlib import metadata
from typing import Any
from urllib.parse import quote

from orgscan.model import (
    AccessKey,
    AccountResult,
    ApprovedException,
    Change,
    Control,
    Delta,
    Finding,
    FindingChange,
    FindingState,
    ScanResult,
    ScanStatus,
    UserKeys,
    iso,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, Rule, fingerprint, recommended_key, rule_by_id

log = logging.getLogger("orgscan")

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_VERSION = "2.1.0"
SUPPRESSED_CHOICES = ("include", "omit")

# GitHub code scanning limits: past the first it keeps only the top 5,000 results by severity,
# past the second it rejects the upload.
GITHUB_MAX_RESULTS = 25_000
GITHUB_MAX_GZIP_BYTES = 10 * 1024 * 1024
GITHUB_WARN_RATIO = 0.8
MAX_TAGS = 10  # GitHub shows no more

_LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# A fixed namespace so that a taxonomy's guid is the same in every run and every install.
_TAXONOMY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "orgscan:taxonomy")


def level(severity: str) -> str:
    return _LEVELS.get(severity.lower(), "warning")


def _segment(text: str) -> str:
    encoded = quote(text, safe="")
    # "." and ".." are valid IAM user names but would be collapsed by URI normalisation.
    return encoded.replace(".", "%2E") if encoded in {".", ".."} else encoded


def resource_uri(account_id: str, user_path: str, user_name: str) -> str:
    """`aws/<account-id>/iam/users/<path segments>/<user-name>`, relative and percent-encoded."""
    segments = ["aws", account_id, "iam", "users"]
    segments += [part for part in user_path.split("/") if part]
    segments.append(user_name)
    return "/".join(_segment(part) for part in segments)


def github_limit_warnings(result_count: int, gzipped_size: int) -> list[str]:
    """What to tell the user before GitHub truncates or rejects the upload."""
    warnings = []
    hint = "; consider --sarif-suppressed omit or splitting the scan by OU"
    if result_count > GITHUB_MAX_RESULTS:
        warnings.append(
            f"orgscan.sarif has {result_count:,} results, over GitHub code scanning's limit of "
            f"{GITHUB_MAX_RESULTS:,} per run: GitHub keeps only the top 5,000{hint}"
        )
    elif result_count >= GITHUB_WARN_RATIO * GITHUB_MAX_RESULTS:
        warnings.append(
            f"orgscan.sarif has {result_count:,} results, close to GitHub code scanning's limit "
            f"of {GITHUB_MAX_RESULTS:,} per run{hint}"
        )
    size_mb = gzipped_size / 1024 / 1024
    if gzipped_size > GITHUB_MAX_GZIP_BYTES:
        warnings.append(
            f"orgscan.sarif is {size_mb:.1f} MB gzipped, over GitHub code scanning's upload "
            f"limit of 10 MB: GitHub will reject it{hint}"
        )
    elif gzipped_size >= GITHUB_WARN_RATIO * GITHUB_MAX_GZIP_BYTES:
        warnings.append(
            f"orgscan.sarif is {size_mb:.1f} MB gzipped, close to GitHub code scanning's "
            f"upload limit of 10 MB{hint}"
        )
    return warnings


def _information_uri() -> str | None:
    """The project's home page from its package metadata, where the build declares one."""
    try:
        meta = metadata.metadata("orgscan")
    except metadata.PackageNotFoundError:
        return None
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = str(entry).partition(",")
        if label.strip().lower() in {"homepage", "home", "documentation", "source"}:
            return url.strip()
    home = meta.get_all("Home-page") or []
    return str(home[0]) if home else None


def _taxonomy_guid(control: Control) -> str:
    return str(uuid.uuid5(_TAXONOMY_NAMESPACE, f"{control.framework}\n{control.version}"))


def _frameworks(controls: list[Control]) -> list[list[Control]]:
    """Controls grouped by framework and version, in the order the mappings list them."""
    groups: dict[tuple[str, str], list[Control]] = {}
    for control in controls:
        groups.setdefault((control.framework, control.version), []).append(control)
    return list(groups.values())


def _taxonomies(controls: list[Control]) -> list[dict[str, Any]]:
    taxonomies = []
    for group in _frameworks(controls):
        first = group[0]
        taxa = []
        for control in group:
            taxon: dict[str, Any] = {
                "id": control.id,
                "name": control.title,
                "shortDescription": {"text": control.title},
            }
            if control.rationale:
                taxon["fullDescription"] = {"text": f"Why orgscan maps here: {control.rationale}"}
            if control.level:
                taxon["properties"] = {"level": control.level}
            taxa.append(taxon)
        taxonomies.append(
            {
                "name": first.framework,
                "version": first.version,
                "guid": _taxonomy_guid(first),
                "shortDescription": {"text": f"{first.framework} {first.version}"},
                "isComprehensive": False,
                "taxa": taxa,
            }
        )
    return taxonomies


def _relationships(controls: list[Control]) -> list[dict[str, Any]]:
    relationships = []
    for index, group in enumerate(_frameworks(controls)):
        for taxon_index, control in enumerate(group):
            relationships.append(
                {
                    "target": {
                        "id": control.id,
                        "index": taxon_index,
                        "toolComponent": {
                            "name": control.framework,
                            "index": index,
                            "guid": _taxonomy_guid(control),
                        },
                    },
                    "kinds": ["relevant"],
                }
            )
    return relationships


def _tags(rule: Rule, controls: list[Control]) -> list[str]:
    """`security` and the CIS numbers first, so the cap of ten never drops them."""
    cis = [f"CIS-{c.id}" for c in controls if c.framework.upper().startswith("CIS")]
    tags: list[str] = []
    for tag in ["security", *cis, *rule.tags]:
        if tag not in tags:
            tags.append(tag)
    return tags[:MAX_TAGS]


def _help(rule: Rule, controls: list[Control]) -> dict[str, str]:
    fix = rule.remediation
    text = [
        rule.full_description,
        "",
        f"Why: {rule.rationale}",
        "",
        f"Remediation: {fix.summary}",
        "",
        "Console:",
        *(f"  {n}. {step}" for n, step in enumerate(fix.console, 1)),
        "",
        "CLI:",
        *(f"  {line}" for line in fix.cli),
        "",
        f"Infrastructure as code: {fix.infrastructure_as_code}",
        "",
        "Controls:",
        *(f"  {c.framework} {c.version} {c.id}: {c.title}" for c in controls),
        "",
        "References:",
        *(f"  {ref.title}: {ref.url}" for ref in rule.references),
    ]
    markdown = [
        f"# {rule.title}",
        "",
        rule.full_description,
        "",
        f"**Why it matters.** {rule.rationale}",
        "",
        "## Remediation",
        "",
        fix.summary,
        "",
        "### Console",
        "",
        *(f"{n}. {step}" for n, step in enumerate(fix.console, 1)),
        "",
        "### CLI",
        "",
        "```sh",
        *fix.cli,
        "```",
        "",
        "### Infrastructure as code",
        "",
        fix.infrastructure_as_code,
        "",
        "## Controls",
        "",
        "| Framework | Version | Control | Title |",
        "| --- | --- | --- | --- |",
        *(f"| {c.framework} | {c.version} | {c.id} | {c.title} |" for c in controls),
        "",
        "## References",
        "",
        *(f"- [{ref.title}]({ref.url})" for ref in rule.references),
    ]
    return {"text": "\n".join(text), "markdown": "\n".join(markdown)}


def _rule(rule: Rule, controls: list[Control]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.short_description},
        "fullDescription": {"text": rule.full_description},
        "help": _help(rule, controls),
        "helpUri": rule.help_uri,
        "defaultConfiguration": {"level": level(rule.severity)},
        "properties": {
            "security-severity": rule.security_severity,
            "precision": "very-high",
            "tags": _tags(rule, controls),
        },
        "relationships": _relationships(controls),
    }


def _key_label(key: AccessKey) -> str:
    return key.id or f"the key created {iso(key.created_at) or 'at an unknown time'}"


def _justification(exception: ApprovedException) -> str:
    ticket = exception.ticket or "no ticket"
    return (
        f"Approved exception {ticket}, owner {exception.owner}, expires "
        f"{exception.expires.isoformat()}: {exception.reason}"
    )


def _message(finding: Finding, user: UserKeys | None, account: AccountResult | None) -> str:
    name = f" ({account.account.name})" if account else ""
    active = [k for k in user.access_keys if k.active] if user else []
    keys = f": {', '.join(_key_label(k) for k in active)}" if active else ""
    parts = [
        f"IAM user {finding.user_name} in account {finding.account_id}{name} has "
        f"{finding.active_key_count} active access keys{keys}."
    ]
    keep = recommended_key(user) if user else None
    if keep:
        parts.append(
            f"Keep {_key_label(keep.key)} ({keep.reason}) and deactivate the other "
            f"active key(s) with aws iam update-access-key --status Inactive."
        )
    if finding.exception:
        parts.append(f"{_justification(finding.exception)}.")
    elif finding.expired_exception:
        lapsed = finding.expired_exception
        parts.append(
            f"The approved exception {lapsed.ticket or '(no ticket)'} expired on "
            f"{lapsed.expires.isoformat()} and no longer applies."
        )
    parts.append(f"ARN: {finding.arn}")
    return " ".join(parts)


def _where(rule_id: str, account_id: str, path: str, user_name: str, arn: str) -> dict[str, Any]:
    """Location and fingerprint: what keeps one IAM user one alert across scans."""
    return {
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": resource_uri(account_id, path, user_name)},
                    "region": {"startLine": 1},
                },
                "logicalLocations": [
                    {"name": user_name, "fullyQualifiedName": arn, "kind": "resource"}
                ],
            }
        ],
        "partialFingerprints": {"primaryLocationLineHash": fingerprint(rule_id, arn)},
    }


def _user_path(arn: str) -> str:
    # arn:<partition>:iam::<account>:user<path><name>; the user may be gone, the ARN is not.
    resource = arn.split(":", 5)[-1][len("user") :]
    return resource.rpartition("/")[0] + "/"


def _absent(change: FindingChange, baseline_run_id: str) -> dict[str, Any]:
    """A finding of the baseline that this scan no longer has, with its account scanned."""
    return {
        "ruleId": change.rule_id,
        "ruleIndex": 0,
        "kind": "pass",
        "level": "none",
        "message": {
            "text": f"Resolved: IAM user {change.user_name} in account {change.account_id} no "
            f"longer has more than one active access key (it had in run {baseline_run_id})."
        },
        **_where(
            change.rule_id, change.account_id, _user_path(change.arn), change.user_name, change.arn
        ),
        "baselineState": "absent",
    }


def _with_baseline(
    results: list[dict[str, Any]], delta: Delta | None, suppressed: str
) -> list[dict[str, Any]]:
    """Mark results new/unchanged against the baseline, and add the resolved ones as absent.

    For GitHub ("omit") absent results are left out too: GitHub closes an alert by itself when
    a later upload of the same category no longer has it.
    """
    if delta is None:
        return results
    changes = {(c.rule_id, c.arn): c.change for c in delta.findings}
    for result in results:
        arn = result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        change = changes[(result["ruleId"], arn)]
        result["baselineState"] = "unchanged" if change is Change.UNCHANGED else "new"
    if suppressed == "omit":
        return results
    return results + [_absent(c, delta.baseline_run_id) for c in delta.of(Change.RESOLVED)]


def _result(
    finding: Finding, user: UserKeys | None, account: AccountResult | None
) -> dict[str, Any]:
    path = user.path if user else "/"
    keep = recommended_key(user) if user else None
    properties: dict[str, Any] = {
        "accountId": finding.account_id,
        "accountName": account.account.name if account else None,
        "ouPath": account.account.ou_path if account else None,
        "accountState": account.account.state if account else None,
        "userName": finding.user_name,
        "userPath": path,
        "state": str(finding.state),
        "activeKeyCount": finding.active_key_count,
        "accessKeys": [
            {
                "id": key.id,
                "status": key.status,
                "createdAt": iso(key.created_at),
                "lastUsedAt": iso(key.last_used_at),
                "lastUsedService": key.last_used_service,
                "lastUsedRegion": key.last_used_region,
            }
            for key in (user.access_keys if user else ())
        ],
        "recommendedKeyToKeep": keep.key.id if keep else None,
    }
    if finding.expired_exception:
        properties["expiredException"] = view.exception_data(finding.expired_exception)
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": 0,
        "kind": "fail",
        "level": level(finding.severity),
        "message": {"text": _message(finding, user, account)},
        **_where(finding.rule_id, finding.account_id, path, finding.user_name, finding.arn),
        "properties": properties,
    }
    if finding.exception:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": _justification(finding.exception),
                "properties": view.exception_data(finding.exception),
            }
        ]
    return result


def _notification(level_: str, descriptor: str, text: str, **properties: Any) -> dict[str, Any]:
    notification: dict[str, Any] = {
        "level": level_,
        "message": {"text": text},
        "descriptor": {"id": descriptor},
    }
    if properties:
        notification["properties"] = properties
    return notification


def _notifications(result: ScanResult) -> list[dict[str, Any]]:
    notes = []
    for account in sorted(result.accounts, key=lambda a: a.account.id):
        acc = account.account
        where = f"Account {acc.id} ({acc.name}, {acc.ou_path}, state {acc.state})"
        if account.scan_status is ScanStatus.FAILED:
            code = account.error.code if account.error else "Unknown"
            message = account.error.message if account.error else "no error recorded"
            notes.append(
                _notification(
                    "error",
                    "account-not-scanned",
                    f"{where} could not be scanned: {code}: {message}",
                    accountId=acc.id,
                    accountState=acc.state,
                    errorCode=code,
                )
            )
        elif account.scan_status is ScanStatus.PARTIAL:
            unreadable = account.unreadable_users
            codes = sorted({u.error.code for u in unreadable if u.error})
            text = f"{where} was scanned only in part."
            if unreadable:
                text += (
                    f" {len(unreadable)} of {len(account.users)} IAM users could not be read "
                    f"({', '.join(codes)}); they are neither findings nor passes."
                )
            if account.notes:
                text += " Notes: " + "; ".join(account.notes) + "."
            notes.append(
                _notification(
                    "error",
                    "account-partially-scanned",
                    text,
                    accountId=acc.id,
                    accountState=acc.state,
                    unreadableUsers=[
                        {"arn": u.arn, "errorCode": u.error.code, "errorMessage": u.error.message}
                        for u in unreadable
                        if u.error
                    ],
                )
            )
        elif account.scan_status is ScanStatus.SKIPPED:
            notes.append(
                _notification(
                    "note",
                    "account-skipped",
                    f"{where} was skipped: {account.skip_reason or 'no reason recorded'}",
                    accountId=acc.id,
                    accountState=acc.state,
                )
            )
        elif acc.state != "ACTIVE":
            # Scanned, but on its way out (PENDING_CLOSURE): its keys still work until closed.
            notes.append(
                _notification(
                    "note",
                    "account-state",
                    f"{where} was scanned; it is not ACTIVE",
                    accountId=acc.id,
                    accountState=acc.state,
                )
            )
    notes += [
        _notification("error", "run-error", f"{e.code}: {e.message}", errorCode=e.code)
        for e in result.run.errors
    ]
    notes += [_notification("warning", "run-warning", w) for w in result.run.warnings]
    return notes


def _check_suppressed(suppressed: str) -> None:
    if suppressed not in SUPPRESSED_CHOICES:
        raise ValueError(f"suppressed must be one of {SUPPRESSED_CHOICES}, got {suppressed!r}")


def build(result: ScanResult, *, suppressed: str = "include") -> dict[str, Any]:
    """The SARIF log as a dict; `suppressed="omit"` leaves excepted findings out (for GitHub)."""
    _check_suppressed(suppressed)
    run_info = result.run
    rule = rule_by_id(MULTIPLE_ACTIVE_KEYS)
    controls = list(result.controls)
    users = {user.arn: user for user in result.users}
    accounts = view.accounts_by_id(result)
    findings = view.sorted_findings(result)
    if suppressed == "omit":
        findings = [f for f in findings if f.state is not FindingState.EXCEPTED]
    driver: dict[str, Any] = {"name": "orgscan", "version": run_info.tool_version}
    information_uri = _information_uri()
    if information_uri:
        driver["informationUri"] = information_uri
    driver["rules"] = [_rule(rule, controls)]
    driver["supportedTaxonomies"] = [
        {"name": group[0].framework, "index": index, "guid": _taxonomy_guid(group[0])}
        for index, group in enumerate(_frameworks(controls))
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": run_info.complete,
        "startTimeUtc": iso(run_info.started_at),
    }
    if run_info.finished_at:
        invocation["endTimeUtc"] = iso(run_info.finished_at)
    if run_info.interrupted:
        invocation["exitSignalName"] = run_info.interrupted
    invocation["toolExecutionNotifications"] = _notifications(result)
    # Partly scanned accounts are counted apart: neither scanned in full nor failed.
    invocation["properties"] = {
        "accounts": {str(status): len(result.accounts_with(status)) for status in ScanStatus},
        "unreadableUsers": sum(1 for user in result.users if user.error),
    }
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"orgscan/{run_info.organization_id}/{run_info.id}"},
        "invocations": [invocation],
        "taxonomies": _taxonomies(controls),
        "results": _with_baseline(
            [_result(f, users.get(f.arn), accounts.get(f.account_id)) for f in findings],
            result.delta,
            suppressed,
        ),
        "properties": {
            "organizationId": run_info.organization_id,
            "managementAccountId": run_info.management_account_id,
            "runId": run_info.id,
            "complete": run_info.complete,
            "strategy": run_info.strategy,
            "callerArn": run_info.caller_arn,
            "configDigest": run_info.config_digest,
            "resumedFrom": run_info.resumed_from,
            "baselineRunId": result.delta.baseline_run_id if result.delta else None,
            "exceptedResults": "omitted" if suppressed == "omit" else "included, suppressed",
        },
    }
    return {"$schema": SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


class SarifRenderer(Renderer):
    filename = "orgscan.sarif"

    def __init__(self, suppressed: str = "include") -> None:
        _check_suppressed(suppressed)
        self.suppressed = suppressed

    def render(self, result: ScanResult) -> bytes:
        sarif_log = build(result, suppressed=self.suppressed)
        data = (json.dumps(sarif_log, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        results = len(sarif_log["runs"][0]["results"])
        for warning in github_limit_warnings(results, len(gzip.compress(data, mtime=0))):
            log.warning("%s", warning)
        return data
