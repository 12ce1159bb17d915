"""Writes the evidence package into an output directory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from orgscan import evidence as codec
from orgscan.formats import DEFAULT_FORMATS, FORMATS
from orgscan.fs import write_atomic
from orgscan.model import ScanResult
from orgscan.reports import manifest
from orgscan.reports.asff import AsffRenderer
from orgscan.reports.csv import CsvRenderer
from orgscan.reports.html import HtmlRenderer
from orgscan.reports.interface import Renderer
from orgscan.reports.ocsf import OcsfRenderer
from orgscan.reports.oscal import OscalRenderer
from orgscan.reports.sarif import SarifRenderer


class EvidenceRenderer(Renderer):
    """findings.json itself, so the package is written by one loop over renderers."""

    filename = codec.FILENAME

    def render(self, result: ScanResult) -> bytes:
        return codec.encode(result)


def _renderer(name: str, sarif_suppressed: str) -> Renderer:
    if name == "html":
        return HtmlRenderer()
    if name == "sarif":
        return SarifRenderer(sarif_suppressed)
    if name == "csv":
        return CsvRenderer()
    if name == "ocsf":
        return OcsfRenderer()
    if name == "asff":
        return AsffRenderer()
    if name == "oscal":
        return OscalRenderer()
    raise ValueError(f"no renderer for format {name!r}")


def renderers(
    *, sarif_suppressed: str = "include", formats: Iterable[str] = DEFAULT_FORMATS
) -> list[Renderer]:
    """The package's files in the order they are written: the evidence first, then each of
    `formats` (names from `orgscan.formats.FORMATS`)."""
    chosen = set(formats)
    return [EvidenceRenderer()] + [
        _renderer(name, sarif_suppressed) for name in FORMATS if name in chosen
    ]


def formats_of(filenames: Iterable[str]) -> tuple[str, ...]:
    """The formats whose files are among `filenames` (e.g. a manifest's entries): how
    `orgscan report` rebuilds the package a run wrote, with no record beyond the manifest."""
    present = set(filenames)
    return tuple(name for name in FORMATS if _renderer(name, "include").filename in present)


def listed_formats(directory: Path) -> tuple[str, ...]:
    """The formats of the package a findings.json came with, as its manifest lists them: the
    manifest already names every file, so no other record of the formats is needed."""
    try:
        listed = json.loads((directory / manifest.FILENAME).read_bytes())["files"]
        return formats_of(entry["name"] for entry in listed)
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_FORMATS


def write_reports(
    result: ScanResult,
    directory: Path,
    *,
    sarif_suppressed: str = "include",
    formats: Iterable[str] = DEFAULT_FORMATS,
    sign: Callable[[Mapping[str, bytes]], bytes] | None = None,
) -> list[Path]:
    """Every output for the result, then manifest.json over them; the paths in that order.

    Everything renders in memory before the first write, so a renderer that fails leaves the
    directory as it was rather than half a package. `sarif_suppressed="omit"` leaves excepted
    findings out of the SARIF file (GitHub ignores suppressions).
    """
    chosen = renderers(sarif_suppressed=sarif_suppressed, formats=formats)
    contents = {r.filename: r.render(result) for r in chosen}
    contents[manifest.FILENAME] = manifest.render(result, contents)
    # An attestation from an earlier write (--resume, --force) signs files about to change: it
    # goes before them, so the directory never pairs it with the new manifest.
    (directory / manifest.ATTESTATION).unlink(missing_ok=True)
    paths = []
    for name, data in contents.items():
        path = directory / name
        write_atomic(path, data)
        paths.append(path)
    if sign is not None:
        path = directory / manifest.ATTESTATION
        write_atomic(path, sign(contents))
        paths.append(path)
    return paths


def package_files() -> list[str]:
    """The names of every file a package may hold: every format's (an older run may have
    written any), the manifest and the attestation."""
    return [r.filename for r in renderers(formats=FORMATS)] + [
        manifest.FILENAME,
        manifest.ATTESTATION,
    ]
