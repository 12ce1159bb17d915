"""The result model shared by every stage: accounts, users and keys, findings, run metadata.

Everything here is plain data. `findings.json` is this model serialised, and every report is
rendered from it, so the model must hold all the evidence and nothing that is not evidence.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
    computed_field,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    """A run's id: when it started, and enough randomness that two runs never share one."""
    return f"{utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, the one timestamp format of every output."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _utc_text(value: Any) -> Any:
    """On reading evidence: a timestamp is ISO 8601 in UTC with a `Z`, as orgscan writes it;
    an offset or a naive time would be read as something other than what was recorded."""
    if not isinstance(value, str):
        return value  # a datetime passes; anything else is refused by the strict validator
    try:
        if value.endswith("Z") and "T" in value:
            return datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        pass
    raise ValueError(f"expected an ISO 8601 time in UTC ending in 'Z', got {value!r}")


# How evidence is read: a field the model does not have is refused, naming its path, never
# dropped (a hand-edited typo, or a newer orgscan's field, must not read as absent). The
# computed fields the codec writes are taken out before (orgscan.evidence), as they are derived.
EVIDENCE: ConfigDict = ConfigDict(extra="forbid")


# A point in time in the model; in every file it is written by `iso` and read back strictly.
Timestamp = Annotated[
    datetime,
    BeforeValidator(_utc_text),
    PlainSerializer(iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": "Z$"}),
]


class ScanStatus(StrEnum):
    SCANNED = "scanned"
    # Scanned, but some users could not be read (each recorded with its error): incomplete.
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"


class FindingState(StrEnum):
    OPEN = "open"
    EXCEPTED = "excepted"


class ResourceType(StrEnum):
    """What a finding is about: a rule's `resource` in rules.yaml."""

    USER = "user"
    ACCESS_KEY = "access-key"
    ACCOUNT = "account"  # the account's root user


class Coverage(StrEnum):
    """Whether a rule could judge everything it covers in an account."""

    COMPLETE = "complete"
    # Something the rule covers could not be read (a user, a key's last use, the root's keys):
    # the rule never passes there.
    INCOMPLETE = "incomplete"
    NOT_SCANNED = "not-scanned"  # the account was skipped or failed


class KeySource(StrEnum):
    """Where a user's key data came from; the credential report can be hours old."""

    LIVE = "live"
    CREDENTIAL_REPORT = "credential-report"


class LastUseSource(StrEnum):
    """Where a key's last use was read: the account's credential report (matched to the key by
    its creation date, up to 4 hours old) or GetAccessKeyLastUsed (one call per key)."""

    CREDENTIAL_REPORT = "credential-report"
    GET_ACCESS_KEY_LAST_USED = "get-access-key-last-used"


class RootKeySource(StrEnum):
    """Where the root user's access keys were read: the report's `<root_account>` row, or
    GetAccountSummary's `AccountAccessKeysPresent` (present or not, active or not)."""

    CREDENTIAL_REPORT = "credential-report"
    ACCOUNT_SUMMARY = "get-account-summary"


# Organizations' account lifecycle states (`Account.State`; the older `Status` is retired on
# 2026-09-09). A PENDING_CLOSURE account still works, and so do its keys.
ACCOUNT_STATES = ("PENDING_ACTIVATION", "ACTIVE", "SUSPENDED", "PENDING_CLOSURE", "CLOSED")
# What an account is when Organizations gives neither `State` nor `Status`.
UNKNOWN_STATE = "UNKNOWN"


def join_ou_path(names: Iterable[str]) -> str:
    r"""OU names as one path, `Root/Prod/Web`. An OU name may contain `/` (its pattern is
    `[\s\S]*`), so `\` and `/` inside a name are escaped with a backslash: an OU named
    `Legacy/Old` under Root is `Root/Legacy\/Old`, an OU `Old` inside `Legacy` is
    `Root/Legacy/Old`."""
    return "/".join(name.replace("\\", "\\\\").replace("/", "\\/") for name in names)


def split_ou_path(path: str) -> tuple[str, ...]:
    r"""The OU names of a path written by `join_ou_path`. ValueError for an empty name or a
    backslash that escapes anything but `/` or `\`."""
    names: list[str] = []
    name: list[str] = []
    escaped = False
    for char in path:
        if escaped:
            if char not in "/\\":
                raise ValueError(f"'\\{char}' is not an escape; write '\\/' or '\\\\'")
            name.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "/":
            names.append("".join(name))
            name = []
        else:
            name.append(char)
    if escaped:
        raise ValueError("a path cannot end in a single '\\'")
    names.append("".join(name))
    if "" in names:
        raise ValueError("an OU name cannot be empty ('//', or '/' at either end)")
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Account:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    id: str
    name: str
    email: str
    state: str  # one of ACCOUNT_STATES as Organizations gives it, else UNKNOWN_STATE
    ou_path: str  # e.g. "Root/Prod/Web"; see join_ou_path for names with a slash
    ou_ids: tuple[str, ...] = ()  # root id first, then each OU down to the parent


@dataclass(frozen=True, slots=True)
class AccessKey:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    id: str | None  # None only for credential-report rows, which carry no key id
    status: str  # Active | Inactive
    created_at: Timestamp | None
    last_used_at: Timestamp | None = None
    last_used_service: str | None = None
    last_used_region: str | None = None
    # Set when the key's last use could not be read: last_used_* then mean "unknown", not
    # "never used". NoSuchEntity means the key was deleted after it was listed.
    last_used_error: ScanError | None = None
    # Where the last use was read (None: it was not), and when that datum was true (the
    # report's GeneratedTime, or GetAccessKeyLastUsed's answer). A source with no last_used_at
    # means never used.
    last_used_source: LastUseSource | None = None
    last_used_as_of: Timestamp | None = None

    @property
    def active(self) -> bool:
        return self.status == "Active"


@dataclass(frozen=True, slots=True)
class UserKeys:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    account_id: str
    user_name: str
    arn: str
    path: str
    access_keys: tuple[AccessKey, ...]
    source: KeySource = KeySource.LIVE
    # The user's keys could not be read (e.g. an SCP denies ListAccessKeys on its path). Its
    # counts are then unknown (None): it is neither a finding nor a pass.
    error: ScanError | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active_key_count(self) -> int | None:
        if self.error is not None:
            return None
        return sum(1 for key in self.access_keys if key.active)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def key_count(self) -> int | None:
        return None if self.error is not None else len(self.access_keys)

    @property
    def complete(self) -> bool:
        """Everything the evidence needs was read: the keys, and the last use of each key that
        was asked about, unless that key was deleted meanwhile."""
        return self.error is None and all(
            key.last_used_error is None or key.last_used_error.code == NO_SUCH_ENTITY
            for key in self.access_keys
        )


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    rule_id: str
    coverage: Coverage
    gaps: tuple[str, ...] = ()  # what the rule could not judge here, each with why


@dataclass(frozen=True, slots=True)
class ScanError:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class RootKeys:
    """Whether the account's root user has access keys, and where that was read."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    source: RootKeySource | None
    as_of: Timestamp | None
    present: bool | None  # at least one root access key, active or not; None = unknown
    # Active root keys; None where the source cannot tell (AccountAccessKeysPresent says only
    # present or absent) or where nothing is known.
    active: int | None
    error: ScanError | None = None  # why it is unknown


INTERRUPTED = "Interrupted"
# IAM's answer for a user or key deleted between two calls of a scan: not an error.
NO_SUCH_ENTITY = "NoSuchEntity"


class AccountFailure(Exception):
    """An account that cannot be scanned, for a reason with a code the evidence records."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.error = ScanError(code=code, message=message)


@dataclass(slots=True)
class AccountResult:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    account: Account
    scan_status: ScanStatus
    error: ScanError | None = None
    skip_reason: str | None = None
    users: list[UserKeys] = field(default_factory=list)
    credential_report_generated_at: Timestamp | None = None
    notes: list[str] = field(default_factory=list)
    api_calls: int = 0
    # IAM's answers to the account's adaptive rate: the throttles met, and the rate (calls/s)
    # it ended at. None where nothing was measured (skipped, resumed from older evidence).
    throttles: int = 0
    rate_at_end: float | None = None
    # When orgscan began scanning (or trying to scan) this account; exceptions are judged on
    # this day. None in 1.0 evidence, where everything was judged on the run's start.
    scanned_at: Timestamp | None = None
    root_keys: RootKeys | None = None  # None: not read (no rule needed it, or not scanned)
    # Each rule of the run: whether it could judge everything here, and what it could not.
    coverage: list[RuleCoverage] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.error is not None and self.error.code == INTERRUPTED

    @computed_field  # type: ignore[prop-decorator]
    @property
    def user_count(self) -> int | None:
        """Users listed, unreadable ones included; None where the users were never listed."""
        if self.scan_status in (ScanStatus.SCANNED, ScanStatus.PARTIAL):
            return len(self.users)
        return None

    @property
    def unreadable_users(self) -> list[UserKeys]:
        return [user for user in self.users if user.error is not None]

    def coverage_of(self, rule_id: str) -> Coverage:
        for entry in self.coverage:
            if entry.rule_id == rule_id:
                return entry.coverage
        return Coverage.NOT_SCANNED


def sweep_complete(accounts: list[AccountResult], errors: list[ScanError]) -> bool:
    """Whether a sweep saw everything it set out to: derived from the accounts themselves,
    never from a stored flag. Skipped accounts were left out on purpose and do not count; a
    scanned account where a rule could not judge everything (a key's last use, the root's keys
    unread) leaves the sweep incomplete."""
    return not errors and all(
        a.scan_status in (ScanStatus.SCANNED, ScanStatus.SKIPPED)
        and all(c.coverage is not Coverage.INCOMPLETE for c in a.coverage)
        for a in accounts
    )


@dataclass(frozen=True, slots=True)
class ApprovedException:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    account: str
    user: str  # a user name, or a glob matched against the user ARN
    reason: str
    owner: str
    expires: date
    ticket: str | None = None
    # The rules it covers. An exception written before orgscan had several rules names none,
    # and covers the one it was written for: one active key per user.
    rules: tuple[str, ...] = ("iam-user-multiple-active-access-keys",)

    def is_expired(self, on: date) -> bool:
        return on > self.expires


@dataclass(frozen=True, slots=True)
class Finding:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    rule_id: str
    account_id: str
    user_name: str  # the IAM user, or ROOT_USER for the account's root user
    arn: str  # the user's ARN, or the account's root ARN arn:<partition>:iam::<id>:root
    resource_type: ResourceType
    # With rule_id, the finding's identity across runs: the user's ARN, the key's id, or the
    # root's ARN.
    resource_id: str
    severity: str
    state: FindingState
    detail: str  # the evidence in one line, for people
    active_key_count: int | None = None  # the multiple-active-keys rule's count
    access_key_id: str | None = None  # the key a key rule is about
    exception: ApprovedException | None = None
    expired_exception: ApprovedException | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """One framework control a rule maps to."""

    framework: str
    version: str
    id: str
    title: str
    level: str | None = None
    rationale: str | None = None  # why the mapping holds, where it is ours and not the framework's
    # The rule it maps; entries written before orgscan had several rules map the first one.
    rule: str = "iam-user-multiple-active-access-keys"
    source: str | None = None  # where the number was checked

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.framework, self.version)


class Change(StrEnum):
    """A finding compared with a baseline scan, matched by rule and resource."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE

    NEW = "new"
    UNCHANGED = "unchanged"  # still there: open or excepted, as `state` says
    RESOLVED = "resolved"  # gone, and its account was scanned this time
    UNVERIFIED = "unverified"  # gone from the results, but its account was not scanned


@dataclass(frozen=True, slots=True)
class FindingChange:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    rule_id: str
    account_id: str
    user_name: str
    arn: str
    resource_type: ResourceType
    resource_id: str
    change: Change
    state: FindingState | None  # the current state; None when the finding is gone
    reason: str | None = None  # why a finding is unverified


@dataclass(slots=True)
class Delta:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    baseline_run_id: str
    baseline_started_at: Timestamp
    findings: list[FindingChange] = field(default_factory=list)
    accounts_added: list[str] = field(default_factory=list)
    accounts_removed: list[str] = field(default_factory=list)
    coverage_lost: list[str] = field(default_factory=list)  # scanned then, not now
    coverage_gained: list[str] = field(default_factory=list)  # scanned now, not then

    def of(self, change: Change) -> list[FindingChange]:
        return [f for f in self.findings if f.change is change]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        return {str(change): len(self.of(change)) for change in Change}


@dataclass(frozen=True, slots=True)
class Limits:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    max_accounts_in_flight: int
    management_rate_limit: float
    account_rate_limit: float
    max_attempts: int
    call_timeout: float
    # Whether the rates above were ceilings that adapted (see aws/ratelimit.py), or fixed: not
    # in the config digest, since it only paces calls. Absent from older evidence: fixed.
    adaptive_rate: bool = False

    @classmethod
    def of(cls, scan: object) -> Limits:
        """The limits a run used, read from the config's scan section by these same names
        (the model does not import the config; each name is written once, here)."""
        return cls(**{f.name: getattr(scan, f.name) for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """A rule a run evaluated, with the thresholds it used."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    id: str
    thresholds: dict[str, int] = field(default_factory=dict)

    def __hash__(self) -> int:  # the config holding it stays hashable
        return hash((self.id, tuple(sorted(self.thresholds.items()))))


@dataclass(slots=True)
class RunInfo:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    id: str
    started_at: Timestamp
    finished_at: Timestamp | None
    tool_version: str
    caller_arn: str
    organization_id: str
    management_account_id: str
    partition: str
    strategy: str
    role_name: str
    config_digest: str
    limits: Limits
    complete: bool = False
    api_calls: int = 0
    interrupted: str | None = None  # the signal that stopped the run, e.g. "SIGINT"
    resumed_from: str | None = None  # the run id this run continued
    shard: str | None = None  # "K/N" when this run scanned one shard of the organization
    # Problems outside any one account (e.g. the OU walk broke off); any makes the run incomplete.
    errors: list[ScanError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The rules evaluated, in report order; evidence older than 2.1 evaluated the first alone.
    rules: list[RuleSettings] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RuleSummary:
    """One rule's counts: its findings, and the accounts where it could not judge everything."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    rule_id: str
    findings_open: int
    findings_excepted: int
    accounts_failing: int
    accounts_incomplete: int


@dataclass(frozen=True, slots=True)
class Summary:
    """The counts an auditor reads first, written into findings.json beside what they count."""

    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE

    accounts: int
    accounts_scanned: int
    accounts_partial: int
    accounts_failed: int
    accounts_skipped: int
    users: int
    users_unreadable: int
    findings: int
    findings_open: int
    findings_excepted: int
    rules: tuple[RuleSummary, ...]


@dataclass(slots=True)
class ScanResult:
    __pydantic_config__: ClassVar[ConfigDict] = EVIDENCE
    run: RunInfo
    accounts: list[AccountResult]
    findings: list[Finding]
    exceptions: list[ApprovedException] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)
    delta: Delta | None = None  # changes since a baseline scan, when one was given

    @property
    def users(self) -> list[UserKeys]:
        return [user for result in self.accounts for user in result.users]

    def accounts_with(self, status: ScanStatus) -> list[AccountResult]:
        return [result for result in self.accounts if result.scan_status is status]

    def findings_in(self, state: FindingState) -> list[Finding]:
        return [finding for finding in self.findings if finding.state is state]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> Summary:
        users = self.users
        return Summary(
            accounts=len(self.accounts),
            accounts_scanned=len(self.accounts_with(ScanStatus.SCANNED)),
            accounts_partial=len(self.accounts_with(ScanStatus.PARTIAL)),
            accounts_failed=len(self.accounts_with(ScanStatus.FAILED)),
            accounts_skipped=len(self.accounts_with(ScanStatus.SKIPPED)),
            users=len(users),
            users_unreadable=sum(1 for user in users if user.error),
            findings=len(self.findings),
            findings_open=len(self.findings_in(FindingState.OPEN)),
            findings_excepted=len(self.findings_in(FindingState.EXCEPTED)),
            rules=tuple(self.rule_summary(rule.id) for rule in self.run.rules),
        )

    def rule_summary(self, rule_id: str) -> RuleSummary:
        own = [f for f in self.findings if f.rule_id == rule_id]
        failing = {f.account_id for f in own if f.state is FindingState.OPEN}
        return RuleSummary(
            rule_id=rule_id,
            findings_open=sum(1 for f in own if f.state is FindingState.OPEN),
            findings_excepted=sum(1 for f in own if f.state is FindingState.EXCEPTED),
            accounts_failing=len(failing),
            accounts_incomplete=sum(
                1
                for a in self.accounts
                if a.scan_status is not ScanStatus.SKIPPED
                and a.account.id not in failing
                and a.coverage_of(rule_id) is not Coverage.COMPLETE
            ),
        )


def evidence_complete(result: ScanResult) -> bool:
    """`run.complete` as every reader of evidence must see it: derived from the accounts and
    the run's own errors, and never true for a run a signal stopped."""
    return result.run.interrupted is None and sweep_complete(result.accounts, result.run.errors)
