"""YAML configuration → frozen dataclasses.

Every problem is a ConfigError that names the key path and what was expected. Unknown keys are
errors: a misspelled key silently falling back to a default is how a sweep skips half an org.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from orgscan.controls import builtin_controls, merge_controls
from orgscan.model import ACCOUNT_STATES, ApprovedException, Control, split_ou_path

T = TypeVar("T")

# ASCII only and matched in full: \d and \w take any Unicode digit or letter, and $ lets a
# trailing newline through; AWS would refuse all of those, but only at scan time.
ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
OU_ID = re.compile(r"ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32}", re.ASCII)
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
# botocore rejects RoleSessionName / ExternalId shorter than 2 characters.
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)

MANAGEMENT_MODES = ("auto", "caller", "assume", "skip")
STRATEGIES = ("live", "credential-report")


class ConfigError(Exception):
    """A config problem at `path`; str() is the message shown to the user."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


@dataclass(frozen=True, slots=True)
class OrganizationConfig:
    # auto: the caller's own credentials when the caller is in the management account, else
    # (a delegated administrator) the audit role there, like in any member account.
    management_account: str = "auto"
    include_accounts: tuple[str, ...] = ()
    exclude_accounts: tuple[str, ...] = ()
    include_ous: tuple[str, ...] = ()
    exclude_ous: tuple[str, ...] = ()
    # Account lifecycle states that are scanned; accounts in any other state are skipped.
    include_states: tuple[str, ...] = ("ACTIVE", "PENDING_CLOSURE")


@dataclass(frozen=True, slots=True)
class RoleConfig:
    name: str = "OrgScanAudit"
    external_id: str | None = None
    session_name: str = "orgscan"
    duration_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class ScanConfig:
    strategy: str = "live"
    # Accounts are entered at the STS rate and each then takes seconds at its own IAM rate, so
    # hundreds must be in flight to keep both busy; with shared clients each costs little.
    max_accounts_in_flight: int = 256
    management_rate_limit: float = 20.0
    account_rate_limit: float = 10.0
    max_attempts: int = 8
    call_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class RemediationConfig:
    # A separate role: the audit role stays read-only.
    role_name: str = "OrgScanRemediation"


@dataclass(frozen=True, slots=True)
class Config:
    organization: OrganizationConfig = field(default_factory=OrganizationConfig)
    role: RoleConfig = field(default_factory=RoleConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    exceptions: tuple[ApprovedException, ...] = ()
    controls: tuple[Control, ...] = field(default_factory=builtin_controls)
    remediation: RemediationConfig = field(default_factory=RemediationConfig)

    def for_remediation(self) -> Config:
        """What `orgscan remediate` enters accounts with: the remediation role, in the
        management account too, never the caller's own credentials (the role is the one
        principal meant to change keys)."""
        return replace(
            self,
            role=replace(self.role, name=self.remediation.role_name),
            organization=replace(self.organization, management_account="assume"),
        )

    def digest(self) -> str:
        """SHA-256 of the effective configuration, so evidence names the exact settings used."""
        canonical = json.dumps(asdict(self), sort_keys=True, default=str, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Section:
    """Reads one mapping, tracking which keys were consumed so the rest can be reported."""

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_describe(data)}")
        for key in data:
            if not isinstance(key, str):
                raise ConfigError(path, f"keys must be strings, got {_describe(key)}")
        self.data: Mapping[str, Any] = data
        self.path = path

    def get(self, key: str, default: T, check: Callable[[object, str], T]) -> T:
        if key not in self.data:
            return default
        return check(self.data[key], _join(self.path, key))

    def require(self, key: str, check: Callable[[object, str], T]) -> T:
        if key not in self.data or self.data[key] is None:
            raise ConfigError(_join(self.path, key), "is required")
        return check(self.data[key], _join(self.path, key))

    def reject_unknown(self, schema: type[Any]) -> None:
        """Keys not among the dataclass's fields are errors; the fields are the only list."""
        known = tuple(f.name for f in fields(schema))
        for key in self.data:
            if key not in known:
                raise ConfigError(
                    _join(self.path, key),
                    f"unknown key; expected one of: {', '.join(known)}",
                )


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"expected a non-empty string, got {_describe(value)}")
    return value


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[object, str], str]:
    def check(value: object, path: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(path, f"expected {what}, got {_describe(value)}")
        return value

    return check


def _optional(check: Callable[[object, str], T]) -> Callable[[object, str], T | None]:
    """`check`, but null is allowed and means 'not set'."""

    def allow_null(value: object, path: str) -> T | None:
        return None if value is None else check(value, path)

    return allow_null


_role_name = _matching(ROLE_NAME, "an IAM role name (1-64 of A-Za-z0-9+=,.@_-)")


def _choice(options: tuple[str, ...]) -> Callable[[object, str], str]:
    def check(value: object, path: str) -> str:
        if value not in options:
            listed = " or ".join(repr(o) for o in options) if len(options) == 2 else None
            expected = listed or "one of " + ", ".join(repr(o) for o in options)
            raise ConfigError(path, f"expected {expected}, got {_describe(value)}")
        assert isinstance(value, str)
        return value

    return check


def _integer(low: int, high: int) -> Callable[[object, str], int]:
    def check(value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                path, f"expected an integer from {low} to {high}, got {_describe(value)}"
            )
        return value

    return check


def _rate(value: object, path: str) -> float:
    # Below 0.1/s a single account's scan would take hours: almost surely a typo.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 10_000:
        raise ConfigError(
            path,
            f"expected a number of requests per second from 0.1 to 10000, got {_describe(value)}",
        )
    return float(value)


def _seconds(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ConfigError(
            path, f"expected seconds above 0 and at most 3600, got {_describe(value)}"
        )
    return float(value)


def _date(value: object, path: str) -> date:
    # A datetime is a date too, but comparing one with a date raises: only a plain date will do.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(path, f"expected a date as YYYY-MM-DD, got {_describe(value)}")


def _list_of(item: Callable[[object, str], T]) -> Callable[[object, str], tuple[T, ...]]:
    def check(value: object, path: str) -> tuple[T, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {_describe(value)}")
        return tuple(item(element, _join(path, index)) for index, element in enumerate(value))

    return check


def _account_id(value: object, path: str) -> str:
    # YAML reads an unquoted id as an int, and one with leading zeros as octal: only a
    # 12-digit int survives that unchanged, so anything else asks for quotes.
    if isinstance(value, int) and not isinstance(value, bool):
        if ACCOUNT_ID.fullmatch(str(value)):
            return str(value)
        raise ConfigError(path, f"expected a 12-digit account id in quotes, got {value!r}")
    return _matching(ACCOUNT_ID, "a 12-digit account id")(value, path)


def _ou_ref(value: object, path: str) -> str:
    text = _string(value, path)
    if text.startswith(("ou-", "r-")):
        return _matching(OU_ID, "an OU id like 'ou-ab12-cd34ef56' or a path like 'Root/Prod'")(
            text, path
        )
    try:
        names = split_ou_path(text)
    except ValueError as exc:
        raise ConfigError(
            path, f"expected an OU path like 'Root/Prod' ('\\/' for a '/' in a name): {exc}"
        ) from None
    if names[0] != "Root":
        raise ConfigError(
            path, f"expected an OU id (ou-...) or a path starting with 'Root/', got {text!r}"
        )
    return text


def _states(value: object, path: str) -> tuple[str, ...]:
    states = _list_of(_choice(ACCOUNT_STATES))(value, path)
    if not states:
        raise ConfigError(path, "expected at least one account state; empty would scan nothing")
    return states


def _replaced_include_suspended(value: object) -> ConfigError:
    """include_suspended meant 'Status other than ACTIVE is skipped unless true'; include_states
    says it per state, and scans PENDING_CLOSURE by default. Never translated silently."""
    if value is True:
        fix = "write include_states: [ACTIVE, PENDING_CLOSURE, SUSPENDED] instead"
    else:
        fix = (
            "remove it; the default include_states: [ACTIVE, PENDING_CLOSURE] scans closing "
            "accounts too (write include_states: [ACTIVE] to skip them as before)"
        )
    return ConfigError(
        "organization.include_suspended",
        "was replaced by organization.include_states, the list of account states to scan "
        f"(one or more of {', '.join(ACCOUNT_STATES)}); {fix}",
    )


def _organization(data: object) -> OrganizationConfig:
    s = _Section(data, "organization")
    if "include_suspended" in s.data:
        raise _replaced_include_suspended(s.data["include_suspended"])
    s.reject_unknown(OrganizationConfig)
    d = OrganizationConfig()
    return OrganizationConfig(
        management_account=s.get(
            "management_account", d.management_account, _choice(MANAGEMENT_MODES)
        ),
        include_accounts=s.get("include_accounts", (), _list_of(_account_id)),
        exclude_accounts=s.get("exclude_accounts", (), _list_of(_account_id)),
        include_ous=s.get("include_ous", (), _list_of(_ou_ref)),
        exclude_ous=s.get("exclude_ous", (), _list_of(_ou_ref)),
        include_states=s.get("include_states", d.include_states, _states),
    )


def _role(data: object) -> RoleConfig:
    s = _Section(data, "role")
    s.reject_unknown(RoleConfig)
    d = RoleConfig()
    return RoleConfig(
        name=s.get("name", d.name, _role_name),
        external_id=s.get(
            "external_id",
            None,
            _optional(_matching(EXTERNAL_ID, "a string of 2-1224 of A-Za-z0-9+=,.@:/_-")),
        ),
        session_name=s.get(
            "session_name",
            d.session_name,
            _matching(SESSION_NAME, "a session name (2-64 of A-Za-z0-9+=,.@_-)"),
        ),
        # AssumeRole accepts 900 s to 12 h; the role's own maximum may be lower.
        duration_seconds=s.get("duration_seconds", d.duration_seconds, _integer(900, 43200)),
    )


def _scan(data: object) -> ScanConfig:
    s = _Section(data, "scan")
    s.reject_unknown(ScanConfig)
    d = ScanConfig()
    return ScanConfig(
        strategy=s.get("strategy", d.strategy, _choice(STRATEGIES)),
        max_accounts_in_flight=s.get(
            "max_accounts_in_flight", d.max_accounts_in_flight, _integer(1, 1024)
        ),
        management_rate_limit=s.get("management_rate_limit", d.management_rate_limit, _rate),
        account_rate_limit=s.get("account_rate_limit", d.account_rate_limit, _rate),
        max_attempts=s.get("max_attempts", d.max_attempts, _integer(1, 50)),
        call_timeout=s.get("call_timeout", d.call_timeout, _seconds),
    )


def _exception(value: object, path: str) -> ApprovedException:
    s = _Section(value, path)
    s.reject_unknown(ApprovedException)
    return ApprovedException(
        account=s.require("account", _account_id),
        user=s.require("user", _string),
        reason=s.require("reason", _string),
        owner=s.require("owner", _string),
        expires=s.require("expires", _date),
        ticket=s.get("ticket", None, _string),
    )


def _control(value: object, path: str) -> Control:
    s = _Section(value, path)
    s.reject_unknown(Control)
    return Control(
        framework=s.require("framework", _string),
        version=s.require("version", _version),
        id=s.require("id", _version),
        title=s.require("title", _string),
        level=s.get("level", None, _string),
        rationale=s.get("rationale", None, _string),
    )


def _version(value: object, path: str) -> str:
    # YAML reads 2.0 as a float and 800 as an int; a version or control id is text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ConfigError(path, f"expected a quoted string, got {_describe(value)}; quote it")
    return _string(value, path)


def _remediation(data: object) -> RemediationConfig:
    s = _Section(data, "remediation")
    s.reject_unknown(RemediationConfig)
    return RemediationConfig(
        role_name=s.get("role_name", RemediationConfig().role_name, _role_name)
    )


def parse_config(data: object) -> Config:
    """Validate an already-parsed YAML document."""
    top = _Section(data, "")
    top.reject_unknown(Config)
    return Config(
        organization=_organization(top.data.get("organization")),
        role=_role(top.data.get("role")),
        scan=_scan(top.data.get("scan")),
        exceptions=top.get("exceptions", (), _list_of(_exception)),
        controls=merge_controls(builtin_controls(), top.get("controls", (), _list_of(_control))),
        remediation=_remediation(top.data.get("remediation")),
    )


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice: YAML would keep the last one silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(str(path), f"not valid YAML{where}: {problem}") from None
    return parse_config(data)
