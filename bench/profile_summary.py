"""Summarise a py-spy "raw" (collapsed stacks) profile: self time by package, top functions.

Usage: python bench/profile_summary.py bench/results/profile-concurrent-api.txt [--top 30]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (label, pattern on the frame's file path); first match wins.
PACKAGES: tuple[tuple[str, str], ...] = (
    ("ours: chat/", r"/chat/[^/]+\.py"),
    ("ours: profiles/", r"/profiles/[^/]+\.py"),
    ("ours: chatproject/", r"/chatproject/[^/]+\.py"),
    ("uvicorn", r"/uvicorn/"),
    ("django", r"/django/"),
    ("asgiref", r"/asgiref/"),
    ("openai SDK", r"/openai/"),
    ("httpx2", r"/httpx2/"),
    ("aiohttp", r"/aiohttp/"),
    ("yarl/multidict", r"/(yarl|multidict)/"),
    ("pydantic", r"/pydantic"),
    ("rest_framework", r"/rest_framework/"),
    ("cryptography", r"/cryptography/"),
    ("asyncio (stdlib)", r"/asyncio/"),
    ("logging (stdlib)", r"/logging/"),
    ("sqlite3/db", r"sqlite3"),
    ("other stdlib", r"/lib/python3\.\d+/"),
)

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        stacks.append((frames, int(count)))
    return stacks


def function_of(frame: str) -> tuple[str, str]:
    """(function, file) without the line number."""
    match = FRAME.match(frame)
    if not match:
        return frame, ""
    return match["func"], match["file"]


def package_of(file: str) -> str:
    for label, pattern in PACKAGES:
        if re.search(pattern, file):
            return label
    return "native / other" if not file or not file.endswith(".py") else "other"


def short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3.13/", "/lib/python3.12/", "/lib/python3.14/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return "/".join(file.split("/")[-2:])


def summarise(text: str, *, top: int = 30) -> str:
    stacks = parse(text)
    total = sum(count for _, count in stacks) or 1
    self_by_package: Counter[str] = Counter()
    self_by_function: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        func, file = function_of(frames[-1])
        self_by_package[package_of(file)] += count
        self_by_function[(func, file)] += count
        for key in {function_of(frame) for frame in frames}:
            inclusive[key] += count

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    out = [f"{total} samples (CPU only: idle threads excluded)", "", "Self time by package:"]
    out += [f"  {pct(n)}  {label}" for label, n in self_by_package.most_common()]
    out += ["", f"Top {top} functions by self time:"]
    out += [f"  {pct(n)}  {func}  ({short(file)})" for (func, file), n in self_by_function.most_common(top)]
    out += ["", f"Top {top} functions by inclusive time:"]
    out += [f"  {pct(n)}  {func}  ({short(file)})" for (func, file), n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarise(args.profile.read_text(), top=args.top))


if __name__ == "__main__":
    main()
