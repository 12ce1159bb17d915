"""`orgscan.sarif`: SARIF 2.1.0 for GitHub code scanning and other dashboards.

One `rules[]` entry per rule the run evaluated, from the rule data alone (nothing here names a
rule). Cloud resources are not files, so each result gets a relative, scheme-less pseudo-path per
resource that GitHub accepts (see `result_uri`), the principal's ARN as a logical location, and a
fingerprint of its rule and resource that keeps the same alert across quarterly scans.
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
    Coverage,
    Finding,
    FindingChange,
    FindingState,
    ResourceType,
    ScanResult,
    ScanStatus,
    UserKeys,
    iso,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.rules import Rule, fingerprint, recommended_key

log = logging.getLogger("orgscan")

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_VERSION = "2.1.0"
SUPPRESSED_CHOICES = ("include", "omit")

# GitHub code scanning's limits, from "SARIF results exceed one or more limits" (docs.github.com/
# en/code-security/code-scanning/troubleshooting-sarif-uploads/results-exceed-limit):
# a run may hold 25,000 results, past which the upload is rejected ("Analysis SARIF file rejected
# due to result limits"), but "only the top 5,000 results will be included, prioritized by
# severity" (the REST API's upload-an-analysis page: results over 5,000 "are ignored"); a rule
# shows at most 10 of its 20 tags; the upload is at most 10 MB gzipped ("Uploading a SARIF file to
# GitHub").
GITHUB_MAX_RESULTS = 25_000
GITHUB_SHOWN_RESULTS = 5_000
GITHUB_MAX_GZIP_BYTES = 10 * 1024 * 1024
GITHUB_WARN_RATIO = 0.8
MAX_TAGS = 10  # GitHub shows no more
# Every rule judges recorded AWS state, never a heuristic: GitHub ranks alerts by this.
PRECISION = "very-high"

# SARIF's level, and GitHub's non-security `problem.severity`, for a rule's severity; GitHub reads
# `security-severity` as critical over 9.0, high 7.0-8.9, medium 4.0-6.9, low under 4.0.
_LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
_PROBLEM_SEVERITIES = {"error": "error", "warning": "warning", "note": "recommendation"}
# Gaps named in a notification's message; properties.gaps always holds them all.
_GAPS_IN_MESSAGE = 3
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


def result_uri(
    resource_type: ResourceType, account_id: str, user_name: str, arn: str, resource_id: str
) -> str:
    """The relative pseudo-path of one finding's resource; GitHub needs one on every result.

    GitHub keys an alert on its rule, its path and its fingerprint: a path that changes between
    runs closes the alert and opens a new one. So each resource kind gets a path that lives as long
    as the resource and names nothing else:
    - a user: `aws/<account>/iam/users/<path>/<name>`, as before there were several rules, so the
      one-active-key rule's alerts keep their paths;
    - an access key: `aws/<account>/iam/access-keys/<key-id>`, a path per key rather than the
      user's path with a region or fragment: a key id is unique and never changes, while its
      user can be renamed or moved (UpdateUser), so the key keeps its alert across quarters, and
      a tree of its own cannot meet a user's path; the user is the logical location and is named
      in the message;
    - the account (its root user): `aws/<account>/iam/root`, beside the users' tree, as the ARN
      `arn:<partition>:iam::<account>:root` names it.
    """
    if resource_type is ResourceType.ACCESS_KEY:
        segments = ["aws", account_id, "iam", "access-keys", resource_id]
    elif resource_type is ResourceType.ACCOUNT:
        segments = ["aws", account_id, "iam", "root"]
    else:
        return resource_uri(account_id, _user_path(arn), user_name)
    return "/".join(_segment(part) for part in segments)


def github_limit_warnings(result_count: int, gzipped_size: int) -> list[str]:
    """What to tell the user before GitHub truncates or rejects the upload."""
    warnings = []
    hint = "; consider --sarif-suppressed omit, fewer --rules, or splitting the scan by OU"
    if result_count > GITHUB_MAX_RESULTS:
        warnings.append(
            f"orgscan.sarif has {result_count:,} results, over GitHub code scanning's limit of "
            f"{GITHUB_MAX_RESULTS:,} per run: GitHub will reject it{hint}"
        )
    elif result_count > GITHUB_SHOWN_RESULTS:
        near = (
            f", and close to the {GITHUB_MAX_RESULTS:,} past which it rejects the upload"
            if result_count >= GITHUB_WARN_RATIO * GITHUB_MAX_RESULTS
            else ""
        )
        warnings.append(
            f"orgscan.sarif has {result_count:,} results: GitHub code scanning stores and shows "
            f"only the top {GITHUB_SHOWN_RESULTS:,} of a run by severity, the other "
            f"{result_count - GITHUB_SHOWN_RESULTS:,} will not appear as alerts{near}{hint}"
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


class _Taxonomies:
    """The run's controls as SARIF taxonomies: one toolComponent per framework and version, in
    the order the mappings list them, each control (taxon) once however many rules map to it."""

    def __init__(self, controls: list[Control]) -> None:
        self.groups: dict[tuple[str, str], dict[str, Control]] = {}
        for control in controls:
            taxa = self.groups.setdefault((control.framework, control.version), {})
            taxa.setdefault(control.id, control)
        self.order = {key: index for index, key in enumerate(self.groups)}

    def taxonomies(self) -> list[dict[str, Any]]:
        taxonomies = []
        for taxa in self.groups.values():
            first = next(iter(taxa.values()))
            entries = []
            for control in taxa.values():
                taxon: dict[str, Any] = {
                    "id": control.id,
                    "name": control.title,
                    "shortDescription": {"text": control.title},
                }
                if control.level:
                    taxon["properties"] = {"level": control.level}
                entries.append(taxon)
            taxonomies.append(
                {
                    "name": first.framework,
                    "version": first.version,
                    "guid": _taxonomy_guid(first),
                    "shortDescription": {"text": f"{first.framework} {first.version}"},
                    "isComprehensive": False,
                    "taxa": entries,
                }
            )
        return taxonomies

    def supported(self) -> list[dict[str, Any]]:
        return [
            {"name": framework, "index": index, "guid": _taxonomy_guid(next(iter(taxa.values())))}
            for index, ((framework, _), taxa) in enumerate(self.groups.items())
        ]

    def relationships(self, controls: list[Control]) -> list[dict[str, Any]]:
        """A rule's relationships: to its own controls only; why the mapping holds (our
        rationale, where the mapping is ours) is the relationship's, as it is per rule."""
        relationships = []
        for control in controls:
            key = (control.framework, control.version)
            relationship: dict[str, Any] = {
                "target": {
                    "id": control.id,
                    "index": list(self.groups[key]).index(control.id),
                    "toolComponent": {
                        "name": control.framework,
                        "index": self.order[key],
                        "guid": _taxonomy_guid(control),
                    },
                },
                "kinds": ["relevant"],
            }
            if control.rationale:
                relationship["description"] = {
                    "text": f"Why orgscan maps here: {control.rationale}"
                }
            relationships.append(relationship)
        return relationships


def _tags(rule: Rule, controls: list[Control]) -> list[str]:
    """`security` (GitHub's mark of a security rule) and the rule's CIS numbers first, so the
    cap of ten never drops them. A CIS number alone is ambiguous across versions (1.12 is the
    unused-credentials control in v1.4.0-v4.0.1 and the one-key control in v5.0.0), so each
    tag names the versions that number it: `CIS-1.13-v1.4.0-v4.0.1`, `CIS-1.12-v5.0.0`."""
    versions: dict[str, list[str]] = {}
    for control in controls:
        if control.framework.upper().startswith("CIS"):
            versions.setdefault(control.id, []).append(control.version)
    cis = [
        f"CIS-{number}-v{found[0]}" + (f"-v{found[-1]}" if len(found) > 1 else "")
        for number, found in versions.items()
    ]
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


def _rule(rule: Rule, controls: list[Control], taxonomies: _Taxonomies) -> dict[str, Any]:
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
            "problem.severity": _PROBLEM_SEVERITIES[level(rule.severity)],
            "precision": PRECISION,
            "tags": _tags(rule, controls),
        },
        "relationships": taxonomies.relationships(controls),
    }


def _key_label(key: AccessKey) -> str:
    return key.id or f"the key created {iso(key.created_at) or 'at an unknown time'}"


def _justification(exception: ApprovedException) -> str:
    ticket = exception.ticket or "no ticket"
    return (
        f"Approved exception {ticket}, owner {exception.owner}, expires "
        f"{exception.expires.isoformat()}: {exception.reason}"
    )


def _subject(
    resource_type: ResourceType, user_name: str, account_id: str, account: AccountResult | None
) -> str:
    """Who a finding is about, as a message opens: the IAM user (of a user or key finding), or
    the account (whose root user it is)."""
    name = f" ({account.account.name})" if account else ""
    if resource_type is ResourceType.ACCOUNT:
        return f"Account {account_id}{name}"
    return f"IAM user {user_name} in account {account_id}{name}"


def _message(
    rule: Rule, finding: Finding, user: UserKeys | None, account: AccountResult | None
) -> str:
    """The finding's own evidence (its detail), then what to do: the rule's remediation, and
    for a count of a user's active keys which one to keep."""
    subject = _subject(finding.resource_type, finding.user_name, finding.account_id, account)
    evidence = finding.detail
    keep = None
    if finding.active_key_count is not None and user is not None:
        active = [k for k in user.access_keys if k.active]
        if active:
            evidence += f": {', '.join(_key_label(k) for k in active)}"
        keep = recommended_key(user)
    parts = [f"{subject}: {evidence}.", rule.remediation.summary]
    if keep:
        parts.append(
            f"Keep {_key_label(keep.key)} ({keep.reason}); deactivate the other active key(s)."
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


def _where(
    rule_id: str,
    resource_type: ResourceType,
    account_id: str,
    user_name: str,
    arn: str,
    resource_id: str,
) -> dict[str, Any]:
    """Location and fingerprint: what keeps one resource one alert across scans. The principal
    (user or root) is the first logical location, a key the second."""
    logical = [{"name": user_name, "fullyQualifiedName": arn, "kind": "resource"}]
    if resource_type is ResourceType.ACCESS_KEY:
        logical.append({"name": resource_id, "fullyQualifiedName": resource_id, "kind": "resource"})
    return {
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {
                        "uri": result_uri(resource_type, account_id, user_name, arn, resource_id)
                    },
                    "region": {"startLine": 1},
                },
                "logicalLocations": logical,
            }
        ],
        # The one-active-key rule's resource is the user's ARN: its fingerprints are those of
        # the releases before there were several rules, so its alerts survive the upgrade.
        "partialFingerprints": {"primaryLocationLineHash": fingerprint(rule_id, resource_id)},
    }


def _user_path(arn: str) -> str:
    # arn:<partition>:iam::<account>:user<path><name>; the user may be gone, the ARN is not.
    resource = arn.split(":", 5)[-1][len("user") :]
    return resource.rpartition("/")[0] + "/"


def _absent(
    change: FindingChange, rule: Rule, index: int, account: AccountResult | None, baseline: str
) -> dict[str, Any]:
    """A finding of the baseline that this scan no longer has, with its account scanned."""
    subject = _subject(change.resource_type, change.user_name, change.account_id, account)
    about = f" (access key {change.resource_id})" if change.resource_id != change.arn else ""
    return {
        "ruleId": change.rule_id,
        "ruleIndex": index,
        "kind": "pass",
        "level": "none",
        "message": {
            "text": f'Resolved: {subject}{about} no longer fails "{rule.title}" (it did in '
            f"run {baseline}). ARN: {change.arn}"
        },
        **_where(
            change.rule_id,
            change.resource_type,
            change.account_id,
            change.user_name,
            change.arn,
            change.resource_id,
        ),
        "baselineState": "absent",
    }


def _key_data(key: AccessKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "status": key.status,
        "createdAt": iso(key.created_at),
        "lastUsedAt": iso(key.last_used_at),
        "lastUsedService": key.last_used_service,
        "lastUsedRegion": key.last_used_region,
        "lastUsedSource": key.last_used_source,
        "lastUsedAsOf": iso(key.last_used_as_of),
    }


def _result(
    finding: Finding,
    rule: Rule,
    index: int,
    user: UserKeys | None,
    account: AccountResult | None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "accountId": finding.account_id,
        "accountName": account.account.name if account else None,
        "ouPath": account.account.ou_path if account else None,
        "accountState": account.account.state if account else None,
        "userName": finding.user_name,
        "state": str(finding.state),
        "resourceType": str(finding.resource_type),
        "resourceId": finding.resource_id,
        "detail": finding.detail,
    }
    if finding.resource_type is ResourceType.ACCOUNT:
        root = account.root_keys if account else None
        properties["rootKeys"] = (
            {
                "source": root.source,
                "asOf": iso(root.as_of),
                "present": root.present,
                "active": root.active,
            }
            if root
            else None
        )
    else:
        properties["userPath"] = user.path if user else _user_path(finding.arn)
        properties["accessKeys"] = [_key_data(key) for key in (user.access_keys if user else ())]
    if finding.access_key_id is not None:
        properties["accessKeyId"] = finding.access_key_id
    if finding.active_key_count is not None:
        keep = recommended_key(user) if user else None
        properties["activeKeyCount"] = finding.active_key_count
        properties["recommendedKeyToKeep"] = keep.key.id if keep else None
    if finding.expired_exception:
        properties["expiredException"] = view.exception_data(finding.expired_exception)
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": index,
        "kind": "fail",
        "level": level(finding.severity),
        "message": {"text": _message(rule, finding, user, account)},
        **_where(
            finding.rule_id,
            finding.resource_type,
            finding.account_id,
            finding.user_name,
            finding.arn,
            finding.resource_id,
        ),
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


def _incomplete(account: AccountResult, where: str, rules: list[Rule]) -> list[dict[str, Any]]:
    """One error per rule that could not judge everything in the account: the rule is
    INCOMPLETE there, never passing, and the run with it (exit 3). Every gap is in
    `properties.gaps`; the message names the first few."""
    notes = []
    for index, rule in enumerate(rules):
        entry = next((c for c in account.coverage if c.rule_id == rule.id), None)
        if entry is None or entry.coverage is not Coverage.INCOMPLETE:
            continue
        gaps = list(entry.gaps)
        named = "; ".join(gaps[:_GAPS_IN_MESSAGE])
        more = f"; and {len(gaps) - _GAPS_IN_MESSAGE} more" if len(gaps) > _GAPS_IN_MESSAGE else ""
        what = f": {named}{more}" if gaps else ""
        note = _notification(
            "error",
            "rule-incomplete",
            f"{where}: rule {rule.id} is INCOMPLETE there; it could not judge "
            f"{len(gaps)} item(s){what}.",
            accountId=account.account.id,
            accountState=account.account.state,
            ruleId=rule.id,
            gaps=gaps,
        )
        note["associatedRule"] = {"id": rule.id, "index": index}
        notes.append(note)
    return notes


def _notifications(result: ScanResult, rules: list[Rule]) -> list[dict[str, Any]]:
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
        notes += _incomplete(account, where, rules)
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
    rules = view.run_rules(result)
    index = {rule.id: position for position, rule in enumerate(rules)}
    unknown = {f.rule_id for f in result.findings} - index.keys()
    if unknown:
        # Evidence whose findings name rules its run did not evaluate is not what orgscan wrote.
        raise ValueError(
            f"findings of rules the run did not evaluate: {', '.join(sorted(unknown))}"
        )
    # Only the controls of the rules this run evaluated: no output lists any other rule.
    taxonomies = _Taxonomies([c for c in result.controls if c.rule in index])
    users = {user.arn: user for user in result.users}
    accounts = view.accounts_by_id(result)
    findings = view.sorted_findings(result)
    if suppressed == "omit":
        findings = [f for f in findings if f.state is not FindingState.EXCEPTED]
    driver: dict[str, Any] = {"name": "orgscan", "version": run_info.tool_version}
    information_uri = _information_uri()
    if information_uri:
        driver["informationUri"] = information_uri
    driver["rules"] = [
        _rule(rule, view.rule_controls(result, rule.id), taxonomies) for rule in rules
    ]
    driver["supportedTaxonomies"] = taxonomies.supported()
    results = [
        _result(
            f,
            rules[index[f.rule_id]],
            index[f.rule_id],
            users.get(f.arn),
            accounts.get(f.account_id),
        )
        for f in findings
    ]
    if result.delta is not None:
        changes = {(c.rule_id, c.resource_id): c.change for c in result.delta.findings}
        for finding, sarif_result in zip(findings, results, strict=True):
            change = changes[(finding.rule_id, finding.resource_id)]
            sarif_result["baselineState"] = "unchanged" if change is Change.UNCHANGED else "new"
        # For GitHub ("omit") resolved findings are left out too: GitHub closes an alert by
        # itself when a later upload of the same category no longer has it.
        if suppressed != "omit":
            results += [
                _absent(
                    c,
                    rules[index[c.rule_id]],
                    index[c.rule_id],
                    accounts.get(c.account_id),
                    result.delta.baseline_run_id,
                )
                for c in result.delta.of(Change.RESOLVED)
            ]
    invocation: dict[str, Any] = {
        "executionSuccessful": run_info.complete,
        "startTimeUtc": iso(run_info.started_at),
    }
    if run_info.finished_at:
        invocation["endTimeUtc"] = iso(run_info.finished_at)
    if run_info.interrupted:
        invocation["exitSignalName"] = run_info.interrupted
    invocation["toolExecutionNotifications"] = _notifications(result, rules)
    # Partly scanned accounts are counted apart: neither scanned in full nor failed.
    invocation["properties"] = {
        "accounts": {str(status): len(result.accounts_with(status)) for status in ScanStatus},
        "unreadableUsers": sum(1 for user in result.users if user.error),
    }
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"orgscan/{run_info.organization_id}/{run_info.id}"},
        "invocations": [invocation],
        "taxonomies": taxonomies.taxonomies(),
        "results": results,
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
