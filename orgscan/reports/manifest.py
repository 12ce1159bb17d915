"""`manifest.json`: the size and SHA-256 of every file in the package, and the run it belongs to.

An auditor (or `verify_package`) recomputes the digests to show that the package is the one
orgscan wrote: nothing changed, nothing missing, nothing added.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orgscan.model import ScanResult, ScanStatus
from orgscan.reports import json as findings_json

FILENAME = "manifest.json"
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
    if findings_json.FILENAME not in files:
        raise ValueError(f"a package without {findings_json.FILENAME} has no evidence")
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
        "findings_sha256": sha256(files[findings_json.FILENAME]),
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


def _check_run(directory: Path, manifest: dict[str, Any]) -> list[str]:
    """findings.json must be the run the manifest names."""
    try:
        evidence = json.loads((directory / findings_json.FILENAME).read_bytes())
        run = evidence["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # the digest check has already said what is wrong with the file
    return [
        f"{findings_json.FILENAME}: {field} is {run.get(key)!r}, the manifest says "
        f"{manifest.get(field)!r}"
        for field, key in (("run_id", "id"), ("organization_id", "organization_id"))
        if run.get(key) != manifest.get(field)
    ]


def verify_package(directory: Path) -> list[str]:
    """Problems with the package in `directory`; an empty list means it verified."""
    manifest, problems = _load(directory)
    if manifest is None:
        return problems
    listed: dict[str, dict[str, Any]] = {}
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
        data = path.read_bytes()
        if len(data) != entry.get("size"):
            problems.append(f"{name}: size is {len(data)}, the manifest says {entry.get('size')}")
        if sha256(data) != entry.get("sha256"):
            problems.append(f"{name}: SHA-256 does not match the manifest")
    present = {p.name for p in directory.iterdir()} - {FILENAME}
    problems += [f"{name}: not in the manifest" for name in sorted(present - listed.keys())]
    if findings_json.FILENAME not in listed:
        problems.append(f"{findings_json.FILENAME}: not in the manifest")
    elif listed[findings_json.FILENAME].get("sha256") != manifest.get("findings_sha256"):
        problems.append(f"{FILENAME}: findings_sha256 differs from the entry for findings.json")
    if (directory / findings_json.FILENAME).is_file():
        problems += _check_run(directory, manifest)
    return problems
