"""Writes the evidence package into an output directory."""

from __future__ import annotations

from pathlib import Path

from orgscan.model import ScanResult
from orgscan.reports import json as findings_json


def write_reports(result: ScanResult, directory: Path) -> list[Path]:
    """Every output for the result; findings.json first, since the rest derive from it."""
    return [findings_json.write(result, directory)]
