"""The names of the package's optional formats, for `--formats` and the config's
`output.formats`. findings.json (the evidence) and manifest.json are always written."""

from __future__ import annotations

from collections.abc import Iterable

# In the order the files are written.
FORMATS = ("html", "sarif", "csv", "ocsf", "asff", "oscal")
# Today's four reports beside the evidence, plus OCSF.
DEFAULT_FORMATS = ("html", "sarif", "csv", "ocsf")
ALL = "all"


def parse_formats(names: Iterable[str]) -> tuple[str, ...]:
    """Names (or `all`) as a tuple in FORMATS order; ValueError naming what is unknown."""
    chosen = {name.strip().lower() for name in names if name.strip()}
    unknown = sorted(chosen - {*FORMATS, ALL})
    if unknown:
        raise ValueError(
            f"unknown format {', '.join(map(repr, unknown))}; expected {ALL!r} or any of: "
            + ", ".join(FORMATS)
        )
    if not chosen:
        raise ValueError(f"no format named; expected {ALL!r} or any of: " + ", ".join(FORMATS))
    return FORMATS if ALL in chosen else tuple(f for f in FORMATS if f in chosen)
