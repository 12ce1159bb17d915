"""The output directory: checked before any AWS call, and never a mix of two runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from orgscan.reports import json as findings_json
from orgscan.reports import manifest
from orgscan.reports.formats import FORMATS
from orgscan.reports.writer import renderers


class OutputError(Exception):
    """The output directory cannot take this run's package."""


def package_files() -> list[str]:
    # Every format's file, not only the default ones: an older run may have written any.
    return [r.filename for r in renderers(formats=FORMATS)] + [
        manifest.FILENAME,
        manifest.ATTESTATION,
    ]


def prepare_output(directory: Path, *, force: bool = False, resuming: bool = False) -> None:
    """Make sure the package can be written, and that no older run would be mixed into it.

    With `force` the older run's files are removed first; anything else in the directory
    is left alone. When resuming into the run's own directory, its package is replaced whole.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".orgscan-write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    existing = [name for name in package_files() if (directory / name).exists()]
    if not existing or resuming:
        return
    if not force:
        raise OutputError(
            f"{directory} already holds a run ({', '.join(existing)}); "
            "choose another directory, or pass --force to replace it"
        )
    for name in existing:
        (directory / name).unlink()


def previous_run_path(directory: Path) -> Path:
    path = directory / findings_json.FILENAME
    if not path.is_file():
        raise OutputError(f"--resume: {directory} holds no {findings_json.FILENAME} to continue")
    return path
