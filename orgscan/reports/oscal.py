"""`assessment-results.oscal.json`: the run as an OSCAL 1.1.3 assessment-results document.

For GRC tools and FedRAMP-style programmes. Each rule of the run is an assessment activity
(`local-definitions.activities`) whose `related-controls` are the NIST SP 800-53 Rev. 5
controls that rule maps to (controls.yaml, or the config's `controls:`), and one `result`
reviews all of them. Per rule:
- one observation of what it evaluated, and one per violation with its evidence;
- one finding per control it maps to (the control's objective, `ia-5_obj`, satisfied only
  when the rule judged every account and nothing of its is open), and one per open or
  excepted finding, targeting the rule's first control;
- the accounts it could not fully judge (failed, partial, data unreadable) are risks of its
  control findings, and so are run-level errors and an interruption, so an incomplete sweep
  never reads as satisfied. An excepted finding is an accepted risk, never a pass.
Skipped accounts are observations saying they were not assessed.

No assessment plan is generated: `import-ap` points at a back-matter resource that says so and
names the evidence that stands in for one (OSCAL requires the import; a placeholder resource is
how its guidance models a plan that is not an OSCAL document).

Deterministic: every uuid is a uuid5 of the run id and what it names, and timestamps are the
run's own, so `orgscan report` rebuilds the file byte for byte. Text that comes from AWS
(account and user names) goes only into free-text fields (titles, descriptions, remarks);
OSCAL's typed fields (props) carry ids and ARNs, which its patterns accept.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from orgscan.model import (
    AccountResult,
    ApprovedException,
    Control,
    Coverage,
    Finding,
    FindingState,
    ScanResult,
    ScanStatus,
    evidence_complete,
    iso,
)
from orgscan.reports import view
from orgscan.reports.interface import Renderer
from orgscan.reports.ocsf import requirement
from orgscan.rules import Rule, rule_by_id

FILENAME = "assessment-results.oscal.json"
OSCAL_VERSION = "1.1.3"
# The namespace of orgscan's own props: a URN, since the project claims no domain.
NS = "urn:orgscan:oscal"
NIST_80053 = ("NIST SP 800-53", "Rev. 5")
# The published NIST SP 800-53 Rev. 5 catalog, whose control and objective ids the targets use.
CATALOG = (
    "https://raw.githubusercontent.com/usnistgov/oscal-content/main/nist.gov/SP800-53/rev5/"
    "json/NIST_SP-800-53_rev5_catalog.json"
)
# Where the package's evidence lives, relative to this file (they are written beside it).
EVIDENCE = "findings.json"
HUMAN_REPORT = "report.html"
_NAMESPACE = uuid.UUID("6f1c1f64-3d3a-5f0e-9c55-6b1a0f4f2c11")
_ENHANCEMENT = re.compile(r"^([A-Za-z]{2})-(\d+)(?:\((\d+)\))?$")


def control_id(control: Control) -> str | None:
    """An 800-53 id as the OSCAL catalog spells it: `IA-5` → `ia-5`, `AC-2(1)` → `ac-2.1`."""
    match = _ENHANCEMENT.match(control.id.strip())
    if match is None:
        return None
    family, number, enhancement = match.groups()
    base = f"{family.lower()}-{number}"
    return f"{base}.{enhancement}" if enhancement else base


def nist_controls(controls: list[Control]) -> list[tuple[Control, str]]:
    """The NIST SP 800-53 Rev. 5 controls among `controls`, with their OSCAL ids, in order."""
    out = []
    for control in controls:
        oscal_id = control_id(control)
        if (control.framework, control.version) == NIST_80053 and oscal_id is not None:
            out.append((control, oscal_id))
    return out


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": value}


def _selection(oscal_ids: list[str]) -> dict[str, Any]:
    return {"control-selections": [{"include-controls": [{"control-id": i} for i in oscal_ids]}]}


@dataclass(frozen=True, slots=True)
class _Assessed:
    """One rule of the run, as this document reports it."""

    rule: Rule
    thresholds: dict[str, int]
    controls: list[tuple[Control, str]]  # its NIST SP 800-53 Rev. 5 controls
    findings: list[Finding]
    # Accounts it could not fully judge: failed, partial, or data it needs unreadable.
    gaps: list[AccountResult]

    @property
    def gap_ids(self) -> frozenset[str]:
        return frozenset(a.account.id for a in self.gaps)

    def gap(self, account: AccountResult) -> str:
        """Why the rule could not fully judge the account."""
        for entry in account.coverage:
            if entry.rule_id == self.rule.id and entry.gaps:
                return "; ".join(entry.gaps)
        return account.coverage_of(self.rule.id).value

    def in_state(self, state: FindingState) -> list[Finding]:
        return [f for f in self.findings if f.state is state]


class _Document:
    def __init__(self, result: ScanResult) -> None:
        self.result = result
        self.run = result.run
        self.start = iso(self.run.started_at) or ""
        self.end = iso(self.run.finished_at or self.run.started_at) or ""
        self.complete = evidence_complete(result)
        self.accounts = view.accounts_by_id(result)
        findings = view.sorted_findings(result)
        self.rules = [
            _Assessed(
                rule=rule_by_id(settings.id),
                thresholds=settings.thresholds,
                controls=nist_controls(view.rule_controls(result, settings.id)),
                findings=[f for f in findings if f.rule_id == settings.id],
                gaps=[
                    a
                    for a in result.accounts
                    if a.scan_status is not ScanStatus.SKIPPED
                    and a.coverage_of(settings.id) is not Coverage.COMPLETE
                ],
            )
            for settings in self.run.rules
        ]

    def _named(self, account_id: str) -> str:
        account = self.accounts.get(account_id)
        return f" ({account.account.name})" if account is not None else ""

    def uuid(self, *parts: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, "\x1f".join((self.run.id, *parts))))

    def _rule_ids(self) -> str:
        return ", ".join(assessed.rule.id for assessed in self.rules)

    # --- back matter and activities: the evidence files, the plan placeholder, the rules --

    def back_matter(self) -> dict[str, Any]:
        return {
            "resources": [
                {
                    "uuid": self.uuid("resource", "assessment-plan"),
                    "title": "Assessment plan (placeholder: none was generated)",
                    "description": (
                        "orgscan generates no OSCAL assessment plan. The plan this assessment "
                        f"followed is the rules {self._rule_ids()} (the activities of this "
                        "document) over every account of the organization, with their "
                        "thresholds, the control mappings and the run's configuration digest "
                        f"recorded in {EVIDENCE}."
                    ),
                    "rlinks": [{"href": EVIDENCE, "media-type": "application/json"}],
                },
                {
                    "uuid": self.uuid("resource", EVIDENCE),
                    "title": "orgscan evidence (findings.json)",
                    "description": (
                        "The run's evidence and single source of truth: every account, user, "
                        "key and finding. manifest.json lists its SHA-256."
                    ),
                    "rlinks": [{"href": EVIDENCE, "media-type": "application/json"}],
                },
                {
                    "uuid": self.uuid("resource", "catalog"),
                    "title": "NIST SP 800-53 Rev. 5 catalog (OSCAL)",
                    "rlinks": [{"href": CATALOG, "media-type": "application/json"}],
                },
            ]
        }

    def activity(self, assessed: _Assessed) -> dict[str, Any]:
        """A rule as the assessment activity it is, related to its own controls only."""
        rule = assessed.rule
        props = [
            _prop("rule-id", rule.id),
            _prop("severity", rule.severity),
            _prop("resource-type", rule.resource.value),
        ]
        props += [_prop(f"threshold-{k}", str(v)) for k, v in assessed.thresholds.items()]
        activity: dict[str, Any] = {
            "uuid": self.uuid("activity", rule.id),
            "title": rule.title,
            "description": rule.full_description,
            "props": props,
            "links": [{"href": rule.help_uri, "rel": "reference"}],
        }
        if assessed.controls:
            activity["related-controls"] = _selection([oid for _, oid in assessed.controls])
        return activity

    # --- observations ------------------------------------------------------------------

    def evidence(self) -> list[dict[str, Any]]:
        return [
            {
                "href": EVIDENCE,
                "description": "Every IAM user's access keys as read, and each finding.",
            },
            {
                "href": HUMAN_REPORT,
                "description": "The same evidence for people (written with the default formats).",
            },
        ]

    def users_observation(self) -> dict[str, Any]:
        """What every rule over users and keys rests on: the users listed and read."""
        result = self.result
        users = result.users
        unreadable = [u for u in users if u.error is not None]
        assessed = [a for a in result.accounts if a.scan_status in _LISTED]
        return {
            "uuid": self.uuid("observation", "AWS::IAM::User"),
            "title": "IAM users and their access keys",
            "description": (
                f"{len(users)} IAM users in {len(assessed)} accounts of organization "
                f"{self.run.organization_id} were listed; the keys of {len(unreadable)} could "
                "not be read."
            ),
            "props": [
                _prop("resource-type", "AWS::IAM::User"),
                _prop("users-evaluated", str(len(users))),
                _prop("users-unreadable", str(len(unreadable))),
            ],
            "methods": ["TEST"],
            "types": ["control-objective"],
            "relevant-evidence": self.evidence(),
            "collected": self.end,
        }

    def rule_observation(self, assessed: _Assessed) -> dict[str, Any]:
        rule = assessed.rule
        open_ = assessed.in_state(FindingState.OPEN)
        excepted = assessed.in_state(FindingState.EXCEPTED)
        judged = [
            a
            for a in self.result.accounts
            if a.coverage_of(rule.id) in (Coverage.COMPLETE, Coverage.INCOMPLETE)
        ]
        return {
            "uuid": self.uuid("observation", rule.id),
            "title": f"{rule.title}: the rule {rule.id} over the organization",
            "description": (
                f"The rule {rule.id} judged {len(judged)} accounts of organization "
                f"{self.run.organization_id}: {len(open_)} findings are open and "
                f"{len(excepted)} excepted, and it could not judge everything in "
                f"{len(assessed.gaps)} accounts. {rule.short_description}"
            ),
            "props": [
                _prop("rule-id", rule.id),
                _prop("accounts-evaluated", str(len(judged))),
                _prop("accounts-incomplete", str(len(assessed.gaps))),
                _prop("findings-open", str(len(open_))),
                _prop("findings-excepted", str(len(excepted))),
            ],
            "methods": ["TEST"],
            "types": ["control-objective"],
            "relevant-evidence": self.evidence(),
            "collected": self.end,
        }

    def violation_observation(self, finding: Finding) -> dict[str, Any]:
        """One finding's evidence, as read in its account."""
        account = self.accounts.get(finding.account_id)
        what = view.subject(
            finding.resource_type, finding.user_name, finding.arn, finding.resource_id
        )
        return {
            "uuid": self.uuid("observation", finding.rule_id, finding.resource_id),
            "title": f"{rule_by_id(finding.rule_id).title}: {what}",
            "description": (
                f"{what} in account {finding.account_id}{self._named(finding.account_id)}: "
                f"{finding.detail}."
            ),
            "props": self._finding_props(finding),
            "methods": ["TEST"],
            "types": ["finding"],
            "relevant-evidence": [{"href": EVIDENCE, "description": "The finding, as recorded."}],
            "collected": iso(account.scanned_at if account else None) or self.start,
        }

    def skipped_observation(self, account: AccountResult) -> dict[str, Any]:
        acct = account.account
        return {
            "uuid": self.uuid("observation", "skipped", acct.id),
            "title": f"Account {acct.id} was not assessed (skipped)",
            "description": (
                f"Account {acct.id} ({acct.name}) was left out of the sweep on purpose: "
                f"{account.skip_reason or 'no reason recorded'}. No rule evaluated it, and "
                "nothing here says it satisfies any control."
            ),
            "props": [_prop("account-id", acct.id), _prop("scan-status", "skipped")],
            "methods": ["EXAMINE"],
            "collected": iso(account.scanned_at) or self.start,
        }

    # --- risks: what the sweep could not see, and the risks accepted ---------------------

    def account_risk(self, account: AccountResult) -> dict[str, Any]:
        acct = account.account
        if account.scan_status is ScanStatus.FAILED:
            reason = account.error.code if account.error else "unknown"
            what = (
                f"could not be scanned ({reason}: "
                f"{account.error.message if account.error else 'no message'})"
            )
        elif account.scan_status is ScanStatus.PARTIAL:
            what = (
                f"was scanned only in part: the keys of {len(account.unreadable_users)} of its "
                f"{len(account.users)} users could not be read"
            )
        else:
            what = "was scanned, but some of what the rules need could not be read"
        short = [a for a in self.rules if acct.id in a.gap_ids]
        gaps = "; ".join(f"{a.rule.id}: {a.gap(account)}" for a in short)
        status = account.scan_status.value
        return {
            "uuid": self.uuid("risk", "account", acct.id),
            "title": f"Account {acct.id} was not fully assessed ({status})",
            "description": f"Account {acct.id} ({acct.name}) {what}. Not fully judged: {gaps}.",
            "statement": (
                "Resources in this account may fail "
                + ", ".join(a.rule.id for a in short)
                + " without any finding saying so; those rules' controls cannot be judged "
                "satisfied for it."
            ),
            "props": [_prop("account-id", acct.id), _prop("scan-status", status)]
            + [_prop("rule-id", a.rule.id) for a in short],
            "status": "open",
        }

    def run_risks(self) -> list[dict[str, Any]]:
        risks = []
        for index, error in enumerate(self.run.errors):
            risks.append(
                {
                    "uuid": self.uuid("risk", "run-error", str(index)),
                    "title": f"The sweep met an error outside any account ({error.code})",
                    "description": error.message,
                    "statement": "Accounts the sweep did not reach were not assessed.",
                    "status": "open",
                }
            )
        if self.run.interrupted is not None:
            risks.append(
                {
                    "uuid": self.uuid("risk", "interrupted"),
                    "title": f"The sweep was interrupted ({self.run.interrupted})",
                    "description": "The run stopped before every account was scanned.",
                    "statement": "Accounts the sweep did not reach were not assessed.",
                    "status": "open",
                }
            )
        return risks

    def exception_risk(self, finding: Finding, exception: ApprovedException) -> dict[str, Any]:
        """An excepted finding as the accepted risk it is."""
        what = view.subject(
            finding.resource_type, finding.user_name, finding.arn, finding.resource_id
        )
        return {
            "uuid": self.uuid("risk", "exception", finding.rule_id, finding.resource_id),
            "title": f"Accepted ({finding.rule_id}): {what} in account {finding.account_id}",
            "description": (
                f"{what} in account {finding.account_id}: {finding.detail}, under an approved "
                f"exception to {finding.rule_id}."
            ),
            "statement": view.exception_text(exception),
            "props": [_prop("rule-id", finding.rule_id)],
            "status": "deviation-approved",
        }

    # --- findings ----------------------------------------------------------------------

    def _status(self, assessed: _Assessed) -> dict[str, str]:
        """The status of each control a rule maps to, from that rule's findings and gaps."""
        rule_id = assessed.rule.id
        open_ = assessed.in_state(FindingState.OPEN)
        excepted = assessed.in_state(FindingState.EXCEPTED)
        judged_all = not assessed.gaps and not self.run.errors and self.run.interrupted is None
        if open_:
            return {
                "state": "not-satisfied",
                "reason": "fail",
                "remarks": f"{len(open_)} findings of the rule {rule_id} are open.",
            }
        if excepted:
            # An exception accepts the risk; it does not satisfy the control.
            return {
                "state": "not-satisfied",
                "reason": "other",
                "remarks": (
                    f"{len(excepted)} findings of the rule {rule_id} are under an approved "
                    "exception: accepted risks (deviation-approved, see the risks)."
                    + ("" if judged_all else " The rule could not judge every account either.")
                ),
            }
        if not judged_all:
            # OSCAL has no "unknown" state; not-satisfied with reason other, and why.
            return {
                "state": "not-satisfied",
                "reason": "other",
                "remarks": (
                    f"Not determined: the rule {rule_id} could not judge every account (see "
                    "the risks), and those may hold failures."
                ),
            }
        return {"state": "satisfied", "reason": "pass"}

    def control_finding(
        self,
        assessed: _Assessed,
        control: Control,
        oscal_id: str,
        observations: list[str],
        risks: list[str],
    ) -> dict[str, Any]:
        rule = assessed.rule
        finding: dict[str, Any] = {
            "uuid": self.uuid("finding", "control", rule.id, oscal_id),
            "title": f"{control.id} {control.title}: {rule.title}",
            "description": (
                f"{requirement(control)} as assessed by the rule {rule.id}: "
                f"{rule.short_description}"
            ),
            "props": [_prop("rule-id", rule.id)],
            "target": {
                "type": "objective-id",
                "target-id": f"{oscal_id}_obj",
                "status": self._status(assessed),
            },
            "related-observations": [{"observation-uuid": o} for o in observations],
        }
        if control.rationale:
            finding["remarks"] = control.rationale
        if risks:
            finding["related-risks"] = [{"risk-uuid": risk} for risk in risks]
        return finding

    def _finding_props(self, finding: Finding) -> list[dict[str, str]]:
        props = [
            _prop("rule-id", finding.rule_id),
            _prop("account-id", finding.account_id),
            _prop("resource-type", finding.resource_type.value),
            _prop("resource-id", finding.resource_id),
            _prop("resource-arn", finding.arn),
        ]
        if finding.access_key_id is not None:
            props.append(_prop("access-key-id", finding.access_key_id))
        if finding.active_key_count is not None:
            props.append(_prop("active-key-count", str(finding.active_key_count)))
        props.append(_prop("state", finding.state.value))
        return props

    def violation_finding(
        self, finding: Finding, controls: list[tuple[Control, str]], observation: str
    ) -> dict[str, Any]:
        # OSCAL gives a finding one target: the rule's first 800-53 control; the control-id
        # props name its others.
        oscal_id = controls[0][1]
        props = self._finding_props(finding)
        props += [_prop("control-id", other) for _, other in controls[1:]]
        remarks = f"Severity {finding.severity}."
        exception = finding.exception if finding.state is FindingState.EXCEPTED else None
        if exception is not None:
            remarks += " " + view.exception_text(exception)
            props.append(_prop("exception-expires", exception.expires.isoformat()))
        what = view.subject(
            finding.resource_type, finding.user_name, finding.arn, finding.resource_id
        )
        out: dict[str, Any] = {
            "uuid": self.uuid("finding", finding.rule_id, finding.resource_id),
            "title": f"{rule_by_id(finding.rule_id).title}: {what}",
            "description": (
                f"{what} in account {finding.account_id}{self._named(finding.account_id)}: "
                f"{finding.detail}."
            ),
            "props": props,
            "target": {
                "type": "objective-id",
                "target-id": f"{oscal_id}_obj",
                "status": {"state": "not-satisfied", "reason": "fail"},
                "remarks": f"The target is {oscal_id}; the control-id props name the others.",
            },
            "related-observations": [{"observation-uuid": observation}],
            "remarks": remarks,
        }
        if exception is not None:
            out["related-risks"] = [{"risk-uuid": self.exception_risk(finding, exception)["uuid"]}]
        return out

    # --- the document ------------------------------------------------------------------

    def result_(self) -> dict[str, Any]:
        result, run = self.result, self.run
        users = self.users_observation()
        observations = [users]
        account_risks = {
            a.account.id: self.account_risk(a)
            for a in sorted(
                (a for a in result.accounts if any(a.account.id in r.gap_ids for r in self.rules)),
                key=lambda a: a.account.id,
            )
        }
        run_risks = self.run_risks()
        risks = list(account_risks.values()) + run_risks
        findings: list[dict[str, Any]] = []
        violations: list[dict[str, Any]] = []
        for assessed in self.rules:
            rule_observation = self.rule_observation(assessed)
            observations.append(rule_observation)
            accepted = [
                self.exception_risk(f, f.exception)
                for f in assessed.findings
                if f.state is FindingState.EXCEPTED and f.exception is not None
            ]
            risks += accepted
            own_risks = (
                [account_risks[a.account.id]["uuid"] for a in assessed.gaps]
                + [r["uuid"] for r in run_risks]
                + [r["uuid"] for r in accepted]
            )
            findings += [
                self.control_finding(
                    assessed,
                    control,
                    oscal_id,
                    [rule_observation["uuid"], users["uuid"]],
                    own_risks,
                )
                for control, oscal_id in assessed.controls
            ]
            for finding in assessed.findings:
                observation = self.violation_observation(finding)
                observations.append(observation)
                if assessed.controls:
                    violations.append(
                        self.violation_finding(finding, assessed.controls, observation["uuid"])
                    )
        observations += [
            self.skipped_observation(a) for a in result.accounts_with(ScanStatus.SKIPPED)
        ]
        findings += violations
        reviewed = list(dict.fromkeys(oid for a in self.rules for _, oid in a.controls))
        complete = "true" if self.complete else "false"
        out: dict[str, Any] = {
            "uuid": self.uuid("result"),
            "title": f"orgscan run {run.id}",
            "description": (
                f"Every account of organization {run.organization_id} swept by the rules "
                f"{self._rule_ids()}. "
                + (
                    "The sweep was complete."
                    if self.complete
                    else "The sweep was INCOMPLETE: see the risks for what was not assessed."
                )
            ),
            "start": self.start,
            "end": self.end,
            "props": [
                _prop("run-id", run.id),
                _prop("sweep-complete", complete),
                _prop("organization-id", run.organization_id),
                _prop("partition", run.partition),
            ],
            "reviewed-controls": _selection(reviewed)
            if reviewed
            # Without 800-53 mappings (a config may replace them) nothing is selected.
            else {
                "control-selections": [
                    {"remarks": "No NIST SP 800-53 Rev. 5 control is mapped to the rules."}
                ]
            },
            "observations": observations,
        }
        if risks:
            out["risks"] = risks
        if findings:
            out["findings"] = findings
        return out

    def document(self) -> dict[str, Any]:
        run = self.run
        document: dict[str, Any] = {
            "uuid": self.uuid("assessment-results"),
            "metadata": {
                "title": (f"orgscan assessment results for organization {run.organization_id}"),
                "published": self.end,
                "last-modified": self.end,
                "version": run.id,
                "oscal-version": OSCAL_VERSION,
                "props": [
                    _prop("tool", "orgscan"),
                    _prop("tool-version", run.tool_version),
                    _prop("run-id", run.id),
                    _prop("config-digest", run.config_digest),
                ],
            },
            "import-ap": {
                "href": "#" + self.uuid("resource", "assessment-plan"),
                "remarks": "A placeholder: orgscan generates no OSCAL assessment plan.",
            },
        }
        if self.rules:
            document["local-definitions"] = {
                "activities": [self.activity(assessed) for assessed in self.rules]
            }
        document["results"] = [self.result_()]
        document["back-matter"] = self.back_matter()
        return {"assessment-results": document}


# Accounts whose users were listed (and so evaluated, at least in part).
_LISTED = (ScanStatus.SCANNED, ScanStatus.PARTIAL)


def document(result: ScanResult) -> dict[str, Any]:
    return _Document(result).document()


class OscalRenderer(Renderer):
    filename = FILENAME

    def render(self, result: ScanResult) -> bytes:
        text = json.dumps(document(result), indent=2, ensure_ascii=False)
        return (text + "\n").encode("utf-8")
