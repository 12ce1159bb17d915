"""Summarise a py-spy raw profile (`python -m bench --py-spy DIR`): `python -m bench.profile FILE`.

Prints the share of samples by function where the time is spent (self), by function including
what it calls (total), and by package (self), each line with its share of all samples. Only
samples taken inside the scan are counted (stacks under an asyncio event loop, in orgscan's
process or a worker process), so imports and process start-up do not dilute the picture.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\\d+))?\)$")
# Every sample inside the scan runs under the event loop (coroutines resume from it).
_SCAN_MARKERS = ("BaseEventLoop.run_forever (asyncio/base_events.py",)


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/orgscan/" in path or path.startswith("orgscan/"):
        return "orgscan"
    if "/lib/python" in path:
        rest = path.split("/lib/python", 1)[1].split("/", 1)[1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    return path


def _name(frame: str) -> tuple[str, str]:
    """(function with its file and no line number, package)"""
    match = _FRAME.match(frame)
    if not match:
        return frame, "?"
    path = match["file"].split(":")[0]
    short = path.split("site-packages/")[-1].split("/lib/python3.11/")[-1]
    return f"{match['func']} ({short})", _package(path)


def summarise(path: Path, top: int = 40, everything: bool = False) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if not everything and not any(marker in stack for marker in _SCAN_MARKERS):
            continue
        count = int(count_text)
        samples += count
        frames = [_name(frame) for frame in stack.split(";")]
        own[frames[-1][0]] += count
        packages[frames[-1][1]] += count
        for name in {name for name, _ in frames}:
            total[name] += count
    if not samples:
        return "no samples inside the scan"
    lines = [f"{samples} samples inside the scan"]
    for title, counter in (("self", own), ("total", total), ("package (self)", packages)):
        lines.append(f"\n--- {title}")
        lines += [f"{100 * n / samples:5.1f}%  {name}" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--all", action="store_true", help="count every sample, start-up too")
    args = parser.parse_args()
    print(summarise(args.file, args.top, args.all))


if __name__ == "__main__":
    main()
