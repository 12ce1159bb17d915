"""The file system: atomic writes, and the output directory checked before any AWS call.

A crash never leaves a half-written report that looks complete, and a package is never a mix
of two runs. A leaf: it knows nothing of what the files hold.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


class OutputError(Exception):
    """The output directory cannot take this run's package."""


def _file_mode() -> int:
    # mkstemp makes 0600 files; an evidence package is meant to be shared, so follow the umask.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed entry in `directory` durable: without this a power loss just
    after a rename can leave the old file, or none, and a created file can vanish."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def prepare_output(
    directory: Path, package: Iterable[str], *, force: bool = False, resuming: bool = False
) -> None:
    """Make sure the package (the file names in `package`) can be written, and that no older
    run would be mixed into it.

    With `force` the older run's files are removed first; anything else in the directory
    is left alone. When resuming into the run's own directory, its package is replaced whole.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".orgscan-write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    existing = [name for name in package if (directory / name).exists()]
    if not existing or resuming:
        return
    if not force:
        raise OutputError(
            f"{directory} already holds a run ({', '.join(existing)}); "
            "choose another directory, or pass --force to replace it"
        )
    for name in existing:
        (directory / name).unlink()


def previous_run_path(directory: Path, evidence: str) -> Path:
    path = directory / evidence
    if not path.is_file():
        raise OutputError(f"--resume: {directory} holds no {evidence} to continue")
    return path
