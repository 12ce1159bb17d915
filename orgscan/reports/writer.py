"""Writes the evidence package into an output directory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from orgscan import evidence as codec
from orgscan.fs import write_atomic
from orgscan.model import ScanResult
from orgscan.reports import manifest
from orgscan.reports.csv import CsvRenderer
from orgscan.reports.html import HtmlRenderer
from orgscan.reports.interface import Renderer
from orgscan.reports.sarif import SarifRenderer


class EvidenceRenderer(Renderer):
    """findings.json itself, so the package is written by one loop over renderers."""

    filename = codec.FILENAME

    def render(self, result: ScanResult) -> bytes:
        return codec.encode(result)


def renderers(*, sarif_suppressed: str = "include") -> list[Renderer]:
    """The package's files in the order they are written: the evidence first."""
    return [EvidenceRenderer(), HtmlRenderer(), SarifRenderer(sarif_suppressed), CsvRenderer()]


def write_reports(
    result: ScanResult,
    directory: Path,
    *,
    sarif_suppressed: str = "include",
    sign: Callable[[Mapping[str, bytes]], bytes] | None = None,
) -> list[Path]:
    """Every output for the result, then manifest.json over them; the paths in that order.

    Everything renders in memory before the first write, so a renderer that fails leaves the
    directory as it was rather than half a package. `sarif_suppressed="omit"` leaves excepted
    findings out of the SARIF file (GitHub ignores suppressions).
    """
    contents = {r.filename: r.render(result) for r in renderers(sarif_suppressed=sarif_suppressed)}
    contents[manifest.FILENAME] = manifest.render(result, contents)
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
    """The names of every file of a package: the renderings, the manifest and the attestation."""
    return [r.filename for r in renderers()] + [manifest.FILENAME, manifest.ATTESTATION]
