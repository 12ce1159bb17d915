"""The renderer seam: one implementation per output format, all over the same result model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from orgscan.model import ScanResult


class Renderer(ABC):
    """Renders a whole result into the bytes of one file of the evidence package.

    A renderer reads nothing but the result, so `orgscan report` can rebuild its file from
    findings.json alone, and it is deterministic: the same result gives the same bytes.
    """

    filename: ClassVar[str]

    @abstractmethod
    def render(self, result: ScanResult) -> bytes:
        """The file's complete content."""
