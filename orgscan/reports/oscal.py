"""`assessment-results.oscal.json`: the run as an OSCAL 1.1.3 assessment-results document.

For GRC tools and FedRAMP-style programmes. One `result` per run, reviewing the NIST SP 800-53
Rev. 5 controls the rule maps to (controls.yaml, or the config's `controls:`):
- one observation per evaluated resource type (IAM users and their access keys), with the
  evidence it rests on (findings.json, report.html) as relevant-evidence;
- one finding per control (its objective, `ia-5_obj`, satisfied only when the sweep was
  complete and nothing is open) and one per open or excepted finding;
- failed and partial accounts, run-level errors and an interruption become risks, and skipped
  accounts observations, so an incomplete sweep never reads as satisfied.

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
from typing import Any

from orgscan.model import (
    AccountResult,
    ApprovedException,
    Control,
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
from orgscan.rules import MULTIPLE_ACTIVE_KEYS, rule_by_id

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


def nist_controls(result: ScanResult) -> list[tuple[Control, str]]:
    """The run's NIST SP 800-53 Rev. 5 controls with their OSCAL ids, in mapping order."""
    out = []
    for control in result.controls:
        oscal_id = control_id(control)
        if (control.framework, control.version) == NIST_80053 and oscal_id is not None:
            out.append((control, oscal_id))
    return out


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": value}


class _Document:
    def __init__(self, result: ScanResult) -> None:
        self.result = result
        self.run = result.run
        self.rule = rule_by_id(MULTIPLE_ACTIVE_KEYS)
        self.controls = nist_controls(result)
        self.start = iso(self.run.started_at) or ""
        self.end = iso(self.run.finished_at or self.run.started_at) or ""
        self.complete = evidence_complete(result)
        self.accounts = view.accounts_by_id(result)

    def _named(self, account_id: str) -> str:
        account = self.accounts.get(account_id)
        return f" ({account.account.name})" if account is not None else ""

    def uuid(self, *parts: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, "\x1f".join((self.run.id, *parts))))

    # --- back matter: the evidence files and the plan placeholder -------------------------

    def back_matter(self) -> dict[str, Any]:
        return {
            "resources": [
                {
                    "uuid": self.uuid("resource", "assessment-plan"),
                    "title": "Assessment plan (placeholder: none was generated)",
                    "description": (
                        "orgscan generates no OSCAL assessment plan. The plan this assessment "
                        f"followed is the rule {self.rule.id} ({self.rule.title}) over every "
                        "account of the organization, with the control mappings and the run's "
                        f"configuration digest recorded in {EVIDENCE}."
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
        result = self.result
        users = result.users
        unreadable = [u for u in users if u.error is not None]
        open_ = result.findings_in(FindingState.OPEN)
        excepted = result.findings_in(FindingState.EXCEPTED)
        assessed = [a for a in result.accounts if a.scan_status in _LISTED]
        description = (
            f"{len(users)} IAM users in {len(assessed)} accounts of organization "
            f"{self.run.organization_id} were evaluated by the rule {self.rule.id}: "
            f"{len(open_)} have more than one active access key ({len(excepted)} more are "
            f"excepted), and the keys of {len(unreadable)} could not be read."
        )
        return {
            "uuid": self.uuid("observation", "AWS::IAM::User"),
            "title": "IAM users and their access keys",
            "description": description,
            "props": [
                _prop("resource-type", "AWS::IAM::User"),
                _prop("users-evaluated", str(len(users))),
                _prop("users-unreadable", str(len(unreadable))),
                _prop("findings-open", str(len(open_))),
                _prop("findings-excepted", str(len(excepted))),
            ],
            "methods": ["TEST"],
            "types": ["control-objective"],
            "relevant-evidence": self.evidence(),
            "collected": self.end,
        }

    def skipped_observation(self, account: AccountResult) -> dict[str, Any]:
        acct = account.account
        return {
            "uuid": self.uuid("observation", "skipped", acct.id),
            "title": f"Account {acct.id} was not assessed (skipped)",
            "description": (
                f"Account {acct.id} ({acct.name}) was left out of the sweep on purpose: "
                f"{account.skip_reason or 'no reason recorded'}. Its IAM users were not "
                "evaluated, and nothing here says they satisfy any control."
            ),
            "props": [_prop("account-id", acct.id), _prop("scan-status", "skipped")],
            "methods": ["EXAMINE"],
            "collected": iso(account.scanned_at) or self.start,
        }

    # --- risks: what the sweep could not see -------------------------------------------

    def account_risk(self, account: AccountResult) -> dict[str, Any]:
        acct = account.account
        if account.scan_status is ScanStatus.FAILED:
            reason = account.error.code if account.error else "unknown"
            what = (
                f"could not be scanned ({reason}: "
                f"{account.error.message if account.error else 'no message'})"
            )
        else:
            what = (
                f"was scanned only in part: the keys of {len(account.unreadable_users)} of its "
                f"{len(account.users)} users could not be read"
            )
        return {
            "uuid": self.uuid("risk", "account", acct.id),
            "title": f"Account {acct.id} was not fully assessed ({account.scan_status.value})",
            "description": f"Account {acct.id} ({acct.name}) {what}.",
            "statement": (
                "Users in this account may hold more than one active access key without any "
                "finding saying so; the controls cannot be judged satisfied for it."
            ),
            "props": [
                _prop("account-id", acct.id),
                _prop("scan-status", account.scan_status.value),
            ],
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

    # --- findings ----------------------------------------------------------------------

    def control_finding(
        self, control: Control, oscal_id: str, observation: str, risks: list[str]
    ) -> dict[str, Any]:
        open_ = self.result.findings_in(FindingState.OPEN)
        excepted = self.result.findings_in(FindingState.EXCEPTED)
        if open_:
            status = {
                "state": "not-satisfied",
                "reason": "fail",
                "remarks": f"{len(open_)} IAM users have more than one active access key.",
            }
        elif excepted:
            # An exception accepts the risk; it does not satisfy the control.
            status = {
                "state": "not-satisfied",
                "reason": "other",
                "remarks": (
                    f"{len(excepted)} IAM users have more than one active access key under an "
                    "approved exception: accepted risks (deviation-approved, see the risks)."
                    + ("" if self.complete else " The sweep was also incomplete.")
                ),
            }
        elif not self.complete:
            # OSCAL has no "unknown" state; not-satisfied with reason other, and why.
            status = {
                "state": "not-satisfied",
                "reason": "other",
                "remarks": (
                    "Not determined: the sweep was incomplete (see the risks), so accounts "
                    "that were not assessed may hold failures."
                ),
            }
        else:
            status = {"state": "satisfied", "reason": "pass"}
        finding: dict[str, Any] = {
            "uuid": self.uuid("finding", "control", oscal_id),
            "title": f"{control.id} {control.title}",
            "description": (
                f"{requirement(control)} as assessed by the rule {self.rule.id}: "
                f"{self.rule.short_description}"
            ),
            "target": {"type": "objective-id", "target-id": f"{oscal_id}_obj", "status": status},
            "related-observations": [{"observation-uuid": observation}],
        }
        if control.rationale:
            finding["remarks"] = control.rationale
        if risks:
            finding["related-risks"] = [{"risk-uuid": risk} for risk in risks]
        return finding

    def exception_risk(self, finding: Finding, exception: ApprovedException) -> dict[str, Any]:
        """An excepted finding as the accepted risk it is."""
        ticket = f", ticket {exception.ticket}" if exception.ticket else ""
        return {
            "uuid": self.uuid("risk", "exception", finding.rule_id, finding.arn),
            "title": f"Accepted: {finding.user_name} in account {finding.account_id}",
            "description": (
                f"IAM user {finding.user_name} ({finding.arn}) has "
                f"{finding.active_key_count} active access keys under an approved exception."
            ),
            "statement": (
                f"Excepted until {exception.expires.isoformat()} by {exception.owner}"
                f"{ticket}: {exception.reason}"
            ),
            "status": "deviation-approved",
        }

    def user_finding(self, finding: Finding, oscal_id: str, observation: str) -> dict[str, Any]:
        state = finding.state.value
        props = [
            _prop("rule-id", finding.rule_id),
            _prop("account-id", finding.account_id),
            _prop("resource-arn", finding.arn),
            _prop("active-key-count", str(finding.active_key_count)),
            _prop("state", state),
        ]
        props += [_prop("control-id", other) for _, other in self.controls if other != oscal_id]
        remarks = f"Severity {finding.severity}."
        exception = finding.exception if finding.state is FindingState.EXCEPTED else None
        if exception is not None:
            ticket = f", ticket {exception.ticket}" if exception.ticket else ""
            remarks += (
                f" Excepted until {exception.expires.isoformat()} by {exception.owner}"
                f"{ticket}: {exception.reason}"
            )
            props.append(_prop("exception-expires", exception.expires.isoformat()))
        out: dict[str, Any] = {
            "uuid": self.uuid("finding", finding.rule_id, finding.arn),
            "title": f"{self.rule.title}: {finding.user_name} in account {finding.account_id}",
            "description": (
                f"IAM user {finding.user_name} ({finding.arn}) in account {finding.account_id}"
                f"{self._named(finding.account_id)} has {finding.active_key_count} active "
                "access keys."
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
        observations = [users] + [
            self.skipped_observation(a) for a in result.accounts_with(ScanStatus.SKIPPED)
        ]
        gaps = sorted(
            result.accounts_with(ScanStatus.FAILED) + result.accounts_with(ScanStatus.PARTIAL),
            key=lambda a: a.account.id,
        )
        risks = [self.account_risk(a) for a in gaps] + self.run_risks()
        risks += [
            self.exception_risk(f, f.exception)
            for f in view.sorted_findings(result)
            if f.state is FindingState.EXCEPTED and f.exception is not None
        ]
        risk_ids = [risk["uuid"] for risk in risks]
        findings = [
            self.control_finding(control, oscal_id, users["uuid"], risk_ids)
            for control, oscal_id in self.controls
        ]
        if self.controls:
            # OSCAL gives a finding one target: the first 800-53 control mapped (IA-5 by
            # default); the props name the others.
            oscal_id = self.controls[0][1]
            findings += [
                self.user_finding(f, oscal_id, users["uuid"]) for f in view.sorted_findings(result)
            ]
        complete = "true" if self.complete else "false"
        out: dict[str, Any] = {
            "uuid": self.uuid("result"),
            "title": f"orgscan run {run.id}",
            "description": (
                f"Every account of organization {run.organization_id} swept for IAM users "
                f"with more than one active access key ({self.rule.id}). "
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
            "reviewed-controls": {
                "control-selections": [
                    {"include-controls": [{"control-id": oid} for _, oid in self.controls]}
                    if self.controls
                    # Without 800-53 mappings (a config may replace them) nothing is selected.
                    else {"remarks": "No NIST SP 800-53 Rev. 5 control is mapped to the rule."}
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
        return {
            "assessment-results": {
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
                "results": [self.result_()],
                "back-matter": self.back_matter(),
            }
        }


# Accounts whose users were listed (and so evaluated, at least in part).
_LISTED = (ScanStatus.SCANNED, ScanStatus.PARTIAL)


def document(result: ScanResult) -> dict[str, Any]:
    return _Document(result).document()


class OscalRenderer(Renderer):
    filename = FILENAME

    def render(self, result: ScanResult) -> bytes:
        text = json.dumps(document(result), indent=2, ensure_ascii=False)
        return (text + "\n").encode("utf-8")
