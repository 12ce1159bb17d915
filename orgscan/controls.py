"""The rule's control mappings: the packaged data file, merged with the user's config."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

import yaml

from orgscan.model import Control


def builtin_controls() -> tuple[Control, ...]:
    text = resources.files("orgscan").joinpath("controls.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return tuple(Control(**entry) for entry in data["controls"])


def merge_controls(builtin: Iterable[Control], overrides: Iterable[Control]) -> tuple[Control, ...]:
    """The user's entries replace every packaged entry of the same framework and version."""
    overrides = tuple(overrides)
    replaced = {control.key for control in overrides}
    return tuple(c for c in builtin if c.key not in replaced) + overrides
