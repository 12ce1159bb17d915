"""`manifest.json`: the size and SHA-256 of every file in the package, and the run it belongs to.

An auditor (or `orgscan verify`, `check_package`) recomputes the digests to show that the
package is the one orgscan wrote: nothing changed, nothing missing, nothing added. `verify` also
shows that it says no more than was seen: every field the manifest repeats must be what
findings.json gives, findings.json must agree with itself (its `complete` flag and summary with
its accounts), and every report must re-render from findings.json byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from orgscan import __version__
from orgscan import evidence as codec
from orgscan.model import ScanResult, ScanStatus

FILENAME = "manifest.json"
# The signed attestation (orgscan/attestation.py) signs the manifest, so the manifest cannot
# list it; it is checked with the signer's public key instead (`orgscan verify --key`).
ATTESTATION = "attestation.intoto.jsonl"
MANIFEST_VERSION = "1.0"


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    size: int
    sha256: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entries(files: Mapping[str, bytes]) -> list[FileEntry]:
    return [FileEntry(name, len(data), sha256(data)) for name, data in sorted(files.items())]


def render(result: ScanResult, files: Mapping[str, bytes]) -> bytes:
    """The manifest of `files` (name → content), which must include findings.json."""
    if codec.FILENAME not in files:
        raise ValueError(f"a package without {codec.FILENAME} has no evidence")
    run = result.run
    data = {
        "manifest_version": MANIFEST_VERSION,
        "tool": "orgscan",
        "tool_version": run.tool_version,
        "run_id": run.id,
        "organization_id": run.organization_id,
        "complete": run.complete,
        # Why a run is incomplete at a glance: partly scanned accounts are counted apart.
        "accounts": {str(status): len(result.accounts_with(status)) for status in ScanStatus},
        "findings_sha256": sha256(files[codec.FILENAME]),
        "files": [{"name": e.name, "size": e.size, "sha256": e.sha256} for e in entries(files)],
    }
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _safe_name(name: str) -> bool:
    """A plain file name: a tampered manifest must not make us read outside the package."""
    return name not in {"", ".", ".."} and "/" not in name and "\\" not in name and "\0" not in name


def _load(directory: Path) -> tuple[dict[str, Any] | None, list[str]]:
    path = directory / FILENAME
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, [f"{FILENAME}: missing"]
    except OSError as exc:
        return None, [f"{FILENAME}: cannot read: {exc.strerror or exc}"]
    except ValueError as exc:
        return None, [f"{FILENAME}: not valid JSON: {exc}"]
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None, [f"{FILENAME}: not an orgscan manifest (no list of files)"]
    return data, []


# Differences listed per file before the rest is summarised.
MAX_DIFFERENCES = 10


@dataclass(slots=True)
class PackageCheck:
    """What `orgscan verify` found: problems fail the package; notes say what could not be
    compared and why. `evidence` is findings.json as read (completeness derived from its
    accounts), or None when it cannot be read."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    evidence: ScanResult | None = None
    signed: list[str] = field(default_factory=list)  # who signed what and when, once checked


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _differences(stored: Any, rendered: Any, path: str, added_since: bool) -> list[str]:
    """Where stored JSON differs from the rendering; `added_since`: fields the stored schema
    predates are not differences (they are optional, and missing means their old meaning)."""
    if isinstance(stored, dict) and isinstance(rendered, dict):
        found = []
        for key in [*rendered, *(k for k in stored if k not in rendered)]:
            where = f"{path}.{key}" if path else key
            if key not in stored:
                if not added_since:
                    found.append(f"{where} is missing")
            elif key not in rendered:
                found.append(f"{where} is not a field orgscan writes")
            else:
                found += _differences(stored[key], rendered[key], where, added_since)
        return found
    if isinstance(stored, list) and isinstance(rendered, list):
        if len(stored) != len(rendered):
            return [f"{path} has {len(stored)} entries; from the evidence, {len(rendered)}"]
        return [
            d
            for i, (a, b) in enumerate(zip(stored, rendered, strict=True))
            for d in _differences(a, b, f"{path}[{i}]", added_since)
        ]
    if stored != rendered or type(stored) is not type(rendered):
        return [f"{path} is {_shown(stored)}; from the evidence, {_shown(rendered)}"]
    return []


def _check_evidence(
    data: dict[str, Any], stored: bytes, result: ScanResult, current_schema: bool
) -> list[str]:
    """findings.json against itself: what it claims must follow from what it records."""
    name = codec.FILENAME
    problems = []
    contradiction = codec.stored_complete_contradiction(data, result)
    if contradiction:
        problems.append(f"{name}: {contradiction}")
    rendered = codec.encode(result)
    if rendered == stored:
        return problems
    differences = [
        d
        for d in _differences(
            codec.upgraded(data), json.loads(rendered), "", added_since=not current_schema
        )
        if not d.startswith(("run.complete ", "schema_version "))
    ]
    if current_schema and not differences and not problems:
        differences = ["the same content, but not the bytes orgscan writes"]
    problems += [f"{name}: {d}" for d in differences[:MAX_DIFFERENCES]]
    if len(differences) > MAX_DIFFERENCES:
        problems.append(f"{name}: and {len(differences) - MAX_DIFFERENCES} more difference(s)")
    return problems


def _check_manifest_fields(
    manifest: dict[str, Any], result: ScanResult, files: Mapping[str, bytes], added_since: bool
) -> list[str]:
    """Every field the manifest repeats must be what findings.json gives; the file entries
    and findings_sha256 are checked against the files themselves. `added_since`: fields an
    older package's manifest predates (1.0 had no `accounts`) are not differences."""
    expected = json.loads(render(result, files))
    # A key orgscan never writes is a claim nothing backs (e.g. "sweep": "complete").
    unknown = [
        f"{FILENAME}: {key!r} is not a field orgscan writes; it claims what the evidence "
        "does not back"
        for key in sorted(manifest.keys() - expected.keys())
    ]
    return unknown + [
        f"{codec.FILENAME}: {key} is {expected[key]!r}, the manifest says {manifest.get(key)!r}"
        for key in expected
        if key not in ("files", "findings_sha256")
        and manifest.get(key) != expected[key]
        and not (added_since and key not in manifest)
    ]


def _sarif_mode(data: bytes) -> str:
    """How the SARIF file was written: with excepted findings, or without (for GitHub)."""
    try:
        properties = json.loads(data)["runs"][0]["properties"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "include"
    return "omit" if properties.get("exceptedResults") == "omitted" else "include"


def _check_renderings(
    result: ScanResult, directory: Path, comparable: str | None
) -> tuple[list[str], list[str]]:
    """Every report re-rendered in memory from the evidence, compared byte for byte.

    `comparable` is None when this orgscan wrote the package's schema and version; otherwise
    it says why byte equality is not expected, and a difference is a note, not a problem.
    """
    from orgscan.formats import FORMATS
    from orgscan.reports.writer import renderers  # the writer imports this module

    problems, notes = [], []
    sarif = directory / "orgscan.sarif"
    mode = _sarif_mode(sarif.read_bytes()) if sarif.is_file() else "include"
    # Every format this orgscan knows: each file present must re-render (the manifest check
    # has already said whether the files present are the ones it lists).
    for renderer in renderers(sarif_suppressed=mode, formats=FORMATS):
        name = renderer.filename
        path = directory / name
        if name == codec.FILENAME or not path.is_file():
            continue  # the evidence is checked field by field; a missing file is reported
        if renderer.render(result) == path.read_bytes():
            continue
        if comparable is None:
            problems.append(f"{name}: differs from the report re-rendered from findings.json")
        else:
            notes.append(f"{name}: not compared byte for byte: {comparable}")
    return problems, notes


def _comparable(data: dict[str, Any]) -> str | None:
    """None when this orgscan writes the package's schema and version, else why not."""
    version, tool = data.get("schema_version"), data["run"].get("tool_version")
    if version != codec.SCHEMA_VERSION:
        return f"findings.json has schema {version}, and this orgscan writes {codec.SCHEMA_VERSION}"
    if tool != __version__:
        return f"the package was written by orgscan {tool}, this is orgscan {__version__}"
    return None


def _check_files(directory: Path, manifest: dict[str, Any]) -> tuple[list[str], dict[str, bytes]]:
    """Every file against its manifest entry; the listed files' contents, for what follows."""
    problems: list[str] = []
    listed: dict[str, dict[str, Any]] = {}
    files: dict[str, bytes] = {}
    for entry in manifest["files"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _safe_name(name):
            problems.append(f"{FILENAME}: invalid file entry {entry!r}")
        elif name in listed:
            problems.append(f"{FILENAME}: {name} is listed twice")
        else:
            listed[name] = entry
    for name, entry in sorted(listed.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        content = files[name] = path.read_bytes()
        if len(content) != entry.get("size"):
            size = entry.get("size")
            problems.append(f"{name}: size is {len(content)}, the manifest says {size}")
        if sha256(content) != entry.get("sha256"):
            problems.append(f"{name}: SHA-256 does not match the manifest")
    present = {p.name for p in directory.iterdir()} - {FILENAME, ATTESTATION}
    problems += [f"{name}: not in the manifest" for name in sorted(present - listed.keys())]
    if codec.FILENAME not in listed:
        problems.append(f"{codec.FILENAME}: not in the manifest")
    elif listed[codec.FILENAME].get("sha256") != manifest.get("findings_sha256"):
        problems.append(f"{FILENAME}: findings_sha256 differs from the entry for findings.json")
    return problems, files


def check_package(directory: Path, key: EllipticCurvePublicKey | None = None) -> PackageCheck:
    """Everything `orgscan verify` checks in the package in `directory`; with `key`, also the
    attestation signed by it (signature, subjects, and its statement against findings.json)."""
    check = _check_package(directory)
    if key is not None:
        from orgscan.attestation import check_attestation  # it imports this module

        signature = check_attestation(directory, key, check.evidence)
        check.problems += signature.problems
        check.signed = signature.signed
    return check


def _check_package(directory: Path) -> PackageCheck:
    check = PackageCheck()
    manifest, check.problems = _load(directory)
    files: dict[str, bytes] = {}
    if manifest is not None:
        problems, files = _check_files(directory, manifest)
        check.problems += problems
    path = directory / codec.FILENAME
    if not path.is_file():
        return check  # already reported: missing, or no manifest to say what to expect
    try:
        data = codec.load(path)
        check.evidence = codec.parse(data, path)
    except codec.EvidenceError as exc:
        check.problems.append(str(exc))
        return check
    files[codec.FILENAME] = stored = path.read_bytes()
    comparable = _comparable(data)
    if manifest is not None:
        current_schema = data.get("schema_version") == codec.SCHEMA_VERSION
        check.problems += _check_manifest_fields(
            manifest, check.evidence, files, added_since=not current_schema
        )
    check.problems += _check_evidence(data, stored, check.evidence, comparable is None)
    problems, check.notes = _check_renderings(check.evidence, directory, comparable)
    check.problems += problems
    return check
