"""YAML configuration → frozen dataclasses, each key declared once.

A key is one annotated field: type, default and constraint on one line. pydantic reads those
annotations and checks a document against them; its errors become a ConfigError that names the
key path and what was expected. Unknown keys are errors: a misspelled key silently falling back
to a default is how a sweep skips half an org.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from orgscan.controls import builtin_controls, merge_controls
from orgscan.formats import ALL, DEFAULT_FORMATS, FORMATS, parse_formats
from orgscan.model import ACCOUNT_STATES, ApprovedException, Control, RuleSettings, split_ou_path
from orgscan.rules import load_rules, rule_ids

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


# --- How a value is checked and how a refusal is worded ------------------------------------

# The one pydantic error type this module raises; its context carries the finished message.
_REFUSED = "orgscan_config"


def _refuse(message: str, key: str | None = None) -> PydanticCustomError:
    """`key`: the refused key inside the mapping being checked, which is not yet in the path."""
    return PydanticCustomError(_REFUSED, "{message}", {"message": message, "key": key})


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


@dataclass(frozen=True)
class _Expect:
    """Annotation metadata for one value: `checks` decide, with no type coercion (strict), and
    any refusal reads 'expected <what>, got <the value as given>'."""

    what: str
    checks: tuple[object, ...] = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        checked = handler.generate_schema(Annotated[(source, Strict(), *self.checks)])
        return core_schema.no_info_wrap_validator_function(self._worded, checked)

    def _worded(self, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError:
            raise _refuse(f"expected {self.what}, got {_describe(value)}") from None


def _holds(test: Callable[[Any], object]) -> AfterValidator:
    """A check inside an _Expect, which says what was expected when it fails."""

    def check(value: T) -> T:
        if not test(value):
            raise ValueError("refused")
        return value

    return AfterValidator(check)


def _matching(pattern: re.Pattern[str], what: str) -> _Expect:
    return _Expect(what, (_holds(pattern.fullmatch),))


def _one_of(options: tuple[str, ...]) -> _Expect:
    listed = " or ".join(map(repr, options)) if len(options) == 2 else None
    return _Expect(
        listed or "one of " + ", ".join(map(repr, options)), (_holds(options.__contains__),)
    )


def _integer(low: int, high: int) -> _Expect:
    return _Expect(f"an integer from {low} to {high}", (Field(ge=low, le=high),))


def _unquoted_account_id(value: object) -> object:
    # YAML reads an unquoted id as an int, and one with leading zeros as octal: only a
    # 12-digit int survives that unchanged, so anything else asks for quotes.
    if isinstance(value, int) and not isinstance(value, bool):
        if not ACCOUNT_ID.fullmatch(str(value)):
            raise _refuse(f"expected a 12-digit account id in quotes, got {value!r}")
        return str(value)
    return value


def _plain_date(value: object) -> object:
    # A datetime is a date too, but comparing one with a date raises: only a plain date will do.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise ValueError("not a date")


def _quoted(value: object) -> object:
    # YAML reads 2.0 as a float and 800 as an int; a version or control id is text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _refuse(f"expected a quoted string, got {_describe(value)}; quote it")
    return value


def _ou_ref(text: str) -> str:
    if text.startswith(("ou-", "r-")):
        if not OU_ID.fullmatch(text):
            raise _refuse(
                "expected an OU id like 'ou-ab12-cd34ef56' or a path like 'Root/Prod', "
                f"got {_describe(text)}"
            )
        return text
    try:
        names = split_ou_path(text)
    except ValueError as exc:
        raise _refuse(
            f"expected an OU path like 'Root/Prod' ('\\/' for a '/' in a name): {exc}"
        ) from None
    if names[0] != "Root":
        raise _refuse(f"expected an OU id (ou-...) or a path starting with 'Root/', got {text!r}")
    return text


def _at_least_one_state(states: tuple[str, ...]) -> tuple[str, ...]:
    if not states:
        raise _refuse("expected at least one account state; empty would scan nothing")
    return states


def _replaced_include_suspended(value: object) -> str:
    """include_suspended meant 'Status other than ACTIVE is skipped unless true'; include_states
    says it per state, and scans PENDING_CLOSURE by default. Never translated silently."""
    if value is True:
        fix = "write include_states: [ACTIVE, PENDING_CLOSURE, SUSPENDED] instead"
    else:
        fix = (
            "remove it; the default include_states: [ACTIVE, PENDING_CLOSURE] scans closing "
            "accounts too (write include_states: [ACTIVE] to skip them as before)"
        )
    return (
        "was replaced by organization.include_states, the list of account states to scan "
        f"(one or more of {', '.join(ACCOUNT_STATES)}); {fix}"
    )


def _as_tuple(value: object) -> object:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _refuse(f"expected a list, got {_describe(value)}")
    return tuple(value)


Text = Annotated[str, _Expect("a non-empty string", (_holds(str.strip),))]
AccountId = Annotated[
    str,
    _Expect("a 12-digit account id", (_holds(ACCOUNT_ID.fullmatch),)),
    BeforeValidator(_unquoted_account_id),
]
OuRef = Annotated[Text, AfterValidator(_ou_ref)]
RoleName = Annotated[str, _matching(ROLE_NAME, "an IAM role name (1-64 of A-Za-z0-9+=,.@_-)")]
Quoted = Annotated[Text, BeforeValidator(_quoted)]
PlainDate = Annotated[date, _Expect("a date as YYYY-MM-DD", (BeforeValidator(_plain_date),))]
# Below 0.1/s a single account's scan would take hours: almost surely a typo.
Rate = Annotated[
    float, _Expect("a number of requests per second from 0.1 to 10000", (Field(ge=0.1, le=10_000),))
]
Seconds = Annotated[float, _Expect("seconds above 0 and at most 3600", (Field(gt=0, le=3600),))]
# A YAML list (null meaning empty), kept as a tuple so the config stays hashable.
ListOf = Annotated[tuple[T, ...], BeforeValidator(_as_tuple)]


def _not_empty(value: tuple[T, ...]) -> tuple[T, ...]:
    if not value:
        raise _refuse("expected a non-empty list")
    return value


RuleId = Annotated[str, _Expect("a rule id (see rules.yaml)", (_holds(lambda v: v in rule_ids()),))]
# The rules an exception covers: at least one.
RuleIds = Annotated[ListOf[RuleId], AfterValidator(_not_empty)]


# --- Mappings of keys ---------------------------------------------------------------------


def _keys(kind: type[Any], value: object) -> object:
    """A mapping's keys checked against `kind`'s fields, in the order a reader would meet them."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _refuse(f"expected a mapping, got {_describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise _refuse(f"keys must be strings, got {_describe(key)}")
    for key, message in getattr(kind, "RETIRED", {}).items():
        if key in value:
            raise _refuse(message(value[key]), key=key)
    known = fields(kind)
    names = [f.name for f in known]
    for key in value:
        if key not in names:
            raise _refuse(f"unknown key; expected one of: {', '.join(names)}", key=key)
    # A required key given as null is as missing as one left out, and is reported so.
    required = {f.name for f in known if f.default is MISSING and f.default_factory is MISSING}
    return {k: v for k, v in value.items() if v is not None or k not in required}


class _Section:
    """Annotation metadata for a config section: a mapping (null meaning every default)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            partial(_keys, source), handler(source)
        )


class _Entry:
    """Annotation metadata for a list entry that becomes a model dataclass (an exception, a
    control). The model declares the keys; each is checked as Text unless `kinds` names it."""

    def __init__(self, **kinds: object) -> None:
        self.kinds = kinds

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        known = {f.name: f for f in fields(source)}
        if unknown := self.kinds.keys() - known:
            raise TypeError(f"{source.__name__} has no field {', '.join(sorted(unknown))}")
        entries = {}
        for name, spec in known.items():
            if name not in self.kinds and spec.type not in ("str", "str | None"):
                raise TypeError(f"{source.__name__}.{name}: name its check in the _Entry")
            entries[name] = core_schema.typed_dict_field(
                handler.generate_schema(self.kinds.get(name, Text)),
                required=spec.default is MISSING and spec.default_factory is MISSING,
            )
        checked = core_schema.typed_dict_schema(entries, extra_behavior="forbid")
        built = core_schema.no_info_after_validator_function(lambda v: source(**v), checked)
        return core_schema.no_info_before_validator_function(partial(_keys, source), built)


class _Keyed:
    # Unknown keys are refused by _keys first, with the list of known ones; this is pydantic's
    # own guard behind it.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")
    __slots__ = ()
    # Keys that were replaced by others: each names its successor when a document still has
    # it (from the value it was given), rather than being one more unknown key.
    RETIRED: ClassVar[Mapping[str, Callable[[object], str]]] = {}


# --- The configuration --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrganizationConfig(_Keyed):
    RETIRED: ClassVar[Mapping[str, Callable[[object], str]]] = {
        "include_suspended": _replaced_include_suspended
    }

    # auto: the caller's own credentials when the caller is in the management account, else
    # (a delegated administrator) the audit role there, like in any member account.
    management_account: Annotated[str, _one_of(MANAGEMENT_MODES)] = "auto"
    include_accounts: ListOf[AccountId] = ()
    exclude_accounts: ListOf[AccountId] = ()
    include_ous: ListOf[OuRef] = ()
    exclude_ous: ListOf[OuRef] = ()
    # Account lifecycle states that are scanned; accounts in any other state are skipped.
    include_states: Annotated[
        ListOf[Annotated[str, _one_of(ACCOUNT_STATES)]], AfterValidator(_at_least_one_state)
    ] = ("ACTIVE", "PENDING_CLOSURE")


@dataclass(frozen=True, slots=True)
class RoleConfig(_Keyed):
    name: RoleName = "OrgScanAudit"
    external_id: (
        Annotated[str, _matching(EXTERNAL_ID, "a string of 2-1224 of A-Za-z0-9+=,.@:/_-")] | None
    ) = None
    session_name: Annotated[
        str, _matching(SESSION_NAME, "a session name (2-64 of A-Za-z0-9+=,.@_-)")
    ] = "orgscan"
    # AssumeRole accepts 900 s to 12 h; the role's own maximum may be lower.
    duration_seconds: Annotated[int, _integer(900, 43200)] = 3600


@dataclass(frozen=True, slots=True)
class ScanConfig(_Keyed):
    strategy: Annotated[str, _one_of(STRATEGIES)] = "live"
    # Accounts are entered at the STS rate and each then takes seconds at its own IAM rate, so
    # hundreds must be in flight to keep both busy; with shared clients each costs little.
    max_accounts_in_flight: Annotated[int, _integer(1, 1024)] = 256
    management_rate_limit: Rate = 20.0
    account_rate_limit: Rate = 10.0
    # Each limiter cuts its rate when throttled, to what AWS was found to admit, and recovers
    # it up to the configured one (other tools share each account's IAM limit); false: fixed.
    adaptive_rate: Annotated[bool, _Expect("true or false")] = True
    max_attempts: Annotated[int, _integer(1, 50)] = 8
    call_timeout: Seconds = 60.0


@dataclass(frozen=True, slots=True)
class RemediationConfig(_Keyed):
    # A separate role: the audit role stays read-only.
    role_name: RoleName = "OrgScanRemediation"


@dataclass(frozen=True, slots=True)
class SecurityHubConfig(_Keyed):
    # The role `orgscan publish-securityhub` assumes in each finding's account; none (the
    # default) keeps publishing off, and the command refuses.
    role_name: RoleName | None = None


@dataclass(frozen=True, slots=True)
class OutputConfig(_Keyed):
    # The files written beside findings.json and manifest.json; 'all' writes every format.
    formats: Annotated[
        ListOf[Annotated[str, _one_of((ALL, *FORMATS))]], AfterValidator(parse_formats)
    ] = DEFAULT_FORMATS


# A threshold in days: up to ten years.
MAX_THRESHOLD_DAYS = 3650


def default_rules() -> tuple[RuleSettings, ...]:
    return tuple(RuleSettings(rule.id, dict(rule.parameters)) for rule in load_rules())


def _rules(value: object) -> object:
    """`rules:` as the enabled rules with their thresholds, in rules.yaml's order: each rule id
    maps to `enabled` (default true) and the rule's own parameters (default from rules.yaml)."""
    if value is None:
        return default_rules()
    if not isinstance(value, Mapping):
        raise _refuse(f"expected a mapping of rule ids, got {_describe(value)}")
    known = {rule.id: rule for rule in load_rules()}
    for rule_id, settings in value.items():
        if rule_id not in known:
            raise _refuse(f"unknown rule; expected one of: {', '.join(known)}", key=str(rule_id))
        if settings is not None and not isinstance(settings, Mapping):
            raise _refuse(f"expected a mapping, got {_describe(settings)}", key=rule_id)
    enabled = []
    for rule_id, rule in known.items():
        settings = dict(value.get(rule_id) or {})
        names = ["enabled", *rule.parameters]
        for key, given in settings.items():
            where = f"{rule_id}.{key}"
            if key not in names:
                raise _refuse(f"unknown key; expected one of: {', '.join(names)}", key=where)
            if key == "enabled":
                if not isinstance(given, bool):
                    raise _refuse(f"expected true or false, got {_describe(given)}", key=where)
            elif (
                not isinstance(given, int)
                or isinstance(given, bool)
                or not 1 <= given <= MAX_THRESHOLD_DAYS
            ):
                raise _refuse(
                    f"expected a number of days from 1 to {MAX_THRESHOLD_DAYS}, "
                    f"got {_describe(given)}",
                    key=where,
                )
        if settings.pop("enabled", True):
            enabled.append(RuleSettings(rule_id, rule.parameters | settings))
    if not enabled:
        raise _refuse("every rule is disabled; enable at least one")
    return tuple(enabled)


def _over_builtin(overrides: tuple[Control, ...]) -> tuple[Control, ...]:
    return merge_controls(builtin_controls(), overrides)


@dataclass(frozen=True, slots=True)
class Config(_Keyed):
    organization: Annotated[OrganizationConfig, _Section()] = field(
        default_factory=OrganizationConfig
    )
    role: Annotated[RoleConfig, _Section()] = field(default_factory=RoleConfig)
    scan: Annotated[ScanConfig, _Section()] = field(default_factory=ScanConfig)
    exceptions: ListOf[
        Annotated[
            ApprovedException,
            _Entry(account=AccountId, expires=PlainDate, rules=RuleIds),
        ]
    ] = ()
    rules: Annotated[tuple[RuleSettings, ...], BeforeValidator(_rules)] = field(
        default_factory=default_rules
    )
    controls: Annotated[
        ListOf[Annotated[Control, _Entry(version=Quoted, id=Quoted, rule=RuleId)]],
        AfterValidator(_over_builtin),
    ] = field(default_factory=builtin_controls)
    remediation: Annotated[RemediationConfig, _Section()] = field(default_factory=RemediationConfig)
    output: Annotated[OutputConfig, _Section()] = field(default_factory=OutputConfig)
    securityhub: Annotated[SecurityHubConfig, _Section()] = field(default_factory=SecurityHubConfig)

    def for_remediation(self) -> Config:
        """What `orgscan remediate` enters accounts with: the remediation role, in the
        management account too, never the caller's own credentials (the role is the one
        principal meant to change keys)."""
        return replace(
            self,
            role=replace(self.role, name=self.remediation.role_name),
            organization=replace(self.organization, management_account="assume"),
        )

    def with_rules(self, ids: Iterable[str]) -> Config:
        """The config narrowed to the rules named (`--rules`): each must be enabled here."""
        wanted = list(dict.fromkeys(ids))
        enabled = {rule.id for rule in self.rules}
        for rule_id in wanted:
            if rule_id not in rule_ids():
                raise ConfigError(
                    "--rules", f"unknown rule {rule_id!r}; expected one of: {', '.join(rule_ids())}"
                )
            if rule_id not in enabled:
                raise ConfigError(
                    "--rules", f"rule {rule_id!r} is disabled by rules.{rule_id}.enabled"
                )
        if not wanted:
            raise ConfigError("--rules", "name at least one rule")
        return replace(self, rules=tuple(rule for rule in self.rules if rule.id in wanted))

    def digest(self) -> str:
        """SHA-256 of the effective configuration, so evidence names the exact settings used."""
        # What is written and where findings are published are not scan settings: a run
        # resumed with other formats is the same sweep, and earlier digests stay valid.
        settings = {k: v for k, v in asdict(self).items() if k not in ("output", "securityhub")}
        # The adaptive rate paces calls and changes nothing that is read or judged: left out,
        # runs made before it, or with it set either way, can be resumed and merged together
        # (findings.json's run.limits still names it).
        del settings["scan"]["adaptive_rate"]
        canonical = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


_DOCUMENT = TypeAdapter(Annotated[Config, _Section()])


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _config_error(exc: ValidationError) -> ConfigError:
    """pydantic's first error (the one a reader going top to bottom meets first) as a
    ConfigError: the location becomes the key path, and the message is ours."""
    error = exc.errors()[0]
    context = error.get("ctx") or {}
    path = ""
    for part in (*error["loc"], *([] if context.get("key") is None else [context["key"]])):
        path = _join(path, part)
    if error["type"] == "missing":
        return ConfigError(path, "is required")
    if error["type"] == _REFUSED:
        return ConfigError(path, context["message"])
    # Every check above words its own refusal; this keeps any other one a clean ConfigError.
    return ConfigError(path, error["msg"])


def parse_config(data: object) -> Config:
    """Validate an already-parsed YAML document."""
    try:
        return _DOCUMENT.validate_python(data)
    except ValidationError as exc:
        raise _config_error(exc) from None


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
