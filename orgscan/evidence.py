"""The evidence codec: `findings.json`, the remediation plan and the journal's lines.

Each format is its model dataclasses as a pydantic `TypeAdapter` writes them, with the
evidence auditors read (key counts, the summary) as the model's computed fields: one
definition per field, no mirrored writer and reader. Reading is strict (no type coercion;
timestamps in UTC with a `Z`), and every complaint names the field by its JSON path. The
JSON Schema of findings.json comes from the same adapter, so it cannot drift from the code:
`python -m orgscan.evidence --write-schema` regenerates the copy shipped in the package.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from orgscan.model import ScanResult, evidence_complete
from orgscan.rules import MULTIPLE_ACTIVE_KEYS

T = TypeVar("T")

FILENAME = "findings.json"
# 2.0: findings.json is the model as the codec writes it. Each account holds its users (1.x
# listed them apart), and every field is always present, null where it has no value (1.x left
# out last-use data of users without a finding and errors that did not happen).
# 2.1: four rules. Each finding names its resource (a user, an access key, the account's root)
# and carries a line of detail; every key its last use's source and age; each account its root
# keys and each rule's coverage; the run its rules and their thresholds; each exception the
# rules it covers.
SCHEMA_VERSION = "2.1"
# 1.0 named the account lifecycle `status`; 1.1 called it `state` and added, optional on read,
# partial accounts, unreadable users, unknown last uses and `scanned_at`. Both are read by
# translating them into the 2.0 shape first (`upgraded`); there is no second reader.
# 2.0 evidence knew one rule, one active key per user: it is read as that rule's evidence.
READABLE_VERSIONS = ("1.0", "1.1", "2.0", SCHEMA_VERSION)
SCHEMA_PATH = Path(__file__).parent / "schema" / "findings.schema.json"
SCHEMA_ID = "https://github.com/orgscan/orgscan/blob/main/orgscan/schema/findings.schema.json"
# Validation errors shown in one message; the rest are counted.
SHOWN_ERRORS = 5


class EvidenceError(Exception):
    """Evidence that is missing, unreadable, malformed, or of a schema this orgscan cannot read."""


def json_path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as a JSON path: `accounts[2].users[0].arn`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(the document)"


def _explained(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    shown = [f"{json_path(e['loc'])}: {e['msg']}" for e in errors[:SHOWN_ERRORS]]
    if len(errors) > SHOWN_ERRORS:
        shown.append(f"and {len(errors) - SHOWN_ERRORS} more")
    return "; ".join(shown)


def _without_computed(data: Any, node: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    """`data` without the computed fields the codec writes (counts, the summary): they are
    derived from what they count, never read back. Found where the serialization schema marks
    them readOnly; every other field, known or not, is left for the strict validator."""
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    if isinstance(data, dict) and "properties" in node:
        fields = node["properties"]
        return {
            key: _without_computed(value, fields[key], defs) if key in fields else value
            for key, value in data.items()
            if not fields.get(key, {}).get("readOnly")
        }
    if isinstance(data, list) and "items" in node:
        return [_without_computed(item, node["items"], defs) for item in data]
    for option in node.get("anyOf", ()):  # e.g. an optional object: null or the object
        if option.get("type") != "null":
            return _without_computed(data, option, defs)
    return data


class Codec(Generic[T]):
    """One dataclass to and from JSON, with the header fields its file type begins with."""

    def __init__(self, cls: type[T], header: Mapping[str, str] | None = None) -> None:
        self.adapter: TypeAdapter[T] = TypeAdapter(cls)
        self.header = dict(header or {})
        self._written = self.adapter.json_schema(mode="serialization")

    def document(self, value: T) -> dict[str, Any]:
        return {**self.header, **self.adapter.dump_python(value, mode="json")}

    def dump(self, value: T) -> bytes:
        """The document as indented UTF-8 JSON, written by pydantic-core in one pass: a quarter
        of the time of `document` and json.dumps for a 25,000-user findings.json."""
        body = self.adapter.dump_json(value, indent=2)
        assert body.startswith(b"{\n"), "the codec encodes dataclasses: JSON objects"
        header = b"".join(
            b"  " + json.dumps({k: v})[1:-1].encode() + b",\n" for k, v in self.header.items()
        )
        return b"{\n" + header + body[2:] + b"\n"

    def decode(self, data: Mapping[str, Any], where: str) -> T:
        """The dataclass, validated strictly: EvidenceError naming each bad or unknown field.
        Fields the model computes (counts, the summary) are not read back: they follow. The
        header is the caller's to check."""
        body = {key: value for key, value in data.items() if key not in self.header}
        body = _without_computed(body, self._written, self._written.get("$defs", {}))
        try:
            return self.adapter.validate_json(json.dumps(body), strict=True)
        except ValidationError as exc:
            raise EvidenceError(f"{where}: {_explained(exc)}") from None


FINDINGS = Codec(ScanResult, {"schema_version": SCHEMA_VERSION})


def document(result: ScanResult) -> dict[str, Any]:
    """findings.json as a JSON value."""
    return FINDINGS.document(result)


def encode(result: ScanResult) -> bytes:
    """findings.json's bytes: what `orgscan report` must reproduce exactly."""
    return FINDINGS.dump(result)


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """An older document in the current shape, meaning what it meant then."""
    version = data.get("schema_version")
    if version in ("1.0", "1.1"):
        data = _from_1x(data)
    if version in ("1.0", "1.1", "2.0"):
        data = _from_2_0(data)
    return data


def _from_2_0(data: dict[str, Any]) -> dict[str, Any]:
    """2.0 in the 2.1 shape: the one rule it evaluated, each finding about its user, and that
    rule's coverage of each account as the account's status said (a partial account was
    incomplete, a skipped or failed one not scanned). Exceptions and control mappings without
    `rules`/`rule` are that rule's, by the model's defaults."""
    rule = {"id": MULTIPLE_ACTIVE_KEYS, "thresholds": {}}
    run = data.get("run")
    if isinstance(run, dict):
        data = data | {"run": run | {"rules": [rule]}}
    for name in ("findings",):
        if isinstance(data.get(name), list):
            data = data | {name: [_about_user(f) for f in data[name]]}
    delta = data.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("findings"), list):
        data = data | {
            "delta": delta | {"findings": [_about_user(f, detail=False) for f in delta["findings"]]}
        }
    if isinstance(data.get("accounts"), list):
        data = data | {"accounts": [_covered(a) for a in data["accounts"]]}
    return data


def _about_user(finding: Any, detail: bool = True) -> Any:
    if not isinstance(finding, dict):
        return finding  # the validator names what is wrong with it
    about = {"resource_type": "user", "resource_id": finding.get("arn")}
    if detail:
        about["detail"] = f"{finding.get('active_key_count')} active access keys"
        about["access_key_id"] = None
    return finding | about


_COVERAGE_OF_STATUS = {"scanned": "complete", "partial": "incomplete"}


def _covered(account: Any) -> Any:
    if not isinstance(account, dict):
        return account
    coverage = _COVERAGE_OF_STATUS.get(str(account.get("scan_status")), "not-scanned")
    gaps = ["some users or last uses could not be read"] if coverage == "incomplete" else []
    return account | {
        "coverage": [{"rule_id": MULTIPLE_ACTIVE_KEYS, "coverage": coverage, "gaps": gaps}]
    }


def _from_1x(data: dict[str, Any]) -> dict[str, Any]:
    """A 1.x document in the 2.0 shape, meaning what it meant then.

    1.0's account `status` becomes `state`, and each user moves into its account. Fields 1.x
    left out are absent here too: the model's defaults (null, none) are what their absence meant.
    """
    for name in ("accounts", "users"):
        if not isinstance(data.get(name), list):
            raise EvidenceError(f"{name}: expected a list")
    users: dict[str, list[Any]] = {}
    for index, user in enumerate(data["users"]):
        if not isinstance(user, dict) or not isinstance(user.get("account_id"), str):
            raise EvidenceError(f"users[{index}]: expected a user with an account_id")
        users.setdefault(user["account_id"], []).append(user)
    accounts = []
    for account in data["accounts"]:
        if not isinstance(account, dict):
            accounts.append(account)  # the validator names what is wrong with it
            continue
        fields = {("state" if key == "status" else key): v for key, v in account.items()}
        identity = {key: fields.pop(key) for key in ACCOUNT_FIELDS if key in fields}
        own = users.pop(str(identity.get("id")), [])
        accounts.append({"account": identity, **fields, "users": own})
    if users:
        raise EvidenceError(
            "users: listed for accounts the evidence does not have: " + ", ".join(sorted(users))
        )
    return {key: value for key, value in data.items() if key != "users"} | {"accounts": accounts}


# The fields 1.x wrote flat on each account that the model keeps in `Account`.
ACCOUNT_FIELDS = ("id", "name", "email", "state", "ou_path", "ou_ids")


def decode(data: dict[str, Any], where: str) -> ScanResult:
    """The result findings.json records, with `run.complete` derived from its accounts."""
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise EvidenceError(
            f"{where}: schema_version {version!r} is not supported; this orgscan reads "
            + ", ".join(map(repr, READABLE_VERSIONS[:-1]))
            + f" or {READABLE_VERSIONS[-1]!r}"
        )
    try:
        current = upgraded(data)
    except EvidenceError as exc:
        raise EvidenceError(f"{where}: {exc}") from None
    result = FINDINGS.decode(current, where)
    # The stored flag is a claim; completeness is what the accounts themselves show.
    result.run.complete = evidence_complete(result)
    return result


def load(path: Path) -> dict[str, Any]:
    """findings.json as stored, before any reading or deriving."""
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise EvidenceError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EvidenceError(f"{path}: expected a JSON object")
    return data


def parse(data: dict[str, Any], path: Path) -> ScanResult:
    return decode(data, str(path))


def read(path: Path) -> ScanResult:
    return decode(load(path), str(path))


def stored_complete_contradiction(data: dict[str, Any], result: ScanResult) -> str | None:
    """What is wrong when the stored `run.complete` claims other than the evidence shows."""
    stored = data.get("run", {}).get("complete")
    if stored == result.run.complete:
        return None
    return (
        f"run.complete is {json.dumps(stored)}, but the accounts and errors it records show "
        f"{'a complete' if result.run.complete else 'an incomplete'} sweep"
    )


def schema() -> dict[str, Any]:
    """The JSON Schema of the findings.json this orgscan writes, from the codec's adapter."""
    generated = FINDINGS.adapter.json_schema(mode="serialization")
    # The codec writes every field of every object, and nothing else: all are required (a
    # default only says what a field absent from a 1.x file means); no others are allowed, as
    # the model's config (`model.EVIDENCE`) says.
    for definition in [generated, *generated["$defs"].values()]:
        if "properties" in definition:
            definition["required"] = list(definition["properties"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **generated,
        "title": f"orgscan findings.json, schema_version {SCHEMA_VERSION}",
        "properties": {"schema_version": {"const": SCHEMA_VERSION}, **generated["properties"]},
        "required": ["schema_version", *generated["required"]],
    }


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if argv != ["--write-schema"]:
        print("usage: python -m orgscan.evidence --write-schema", file=sys.stderr)
        return 2
    SCHEMA_PATH.parent.mkdir(exist_ok=True)
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(SCHEMA_PATH)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
