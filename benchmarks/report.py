"""Shared by the benchmark scripts: each one owns a section of docs/benchmarks.md and rewrites only that."""

from __future__ import annotations

import datetime
import platform
import re
import shlex
import sys
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
_HEADER = "# Benchmarks\n\nEvery section is written by the script it names; rerun that script to refresh it.\n"


def machine() -> str:
    """The CPU (model, vector ISA, usable cores), torch's build and kernels, the GPUs, and Python."""
    from visionzoo.engine.hardware import machine as this_machine

    return f"{this_machine().describe()}; Python {platform.python_version()}"


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section `name`, stamped with the date, machine and the command to rerun it."""
    command = shlex.join(["python", f"benchmarks/{name}.py", *sys.argv[1:]])  # the options this run was given
    stamp = f"_{datetime.date.today().isoformat()}, {machine()}_\n\nCommand: `{command}`\n"
    section = f"<!-- begin:{name} -->\n## {name}\n\n{stamp}\n{body.strip()}\n<!-- end:{name} -->\n"
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(rf"<!-- begin:{re.escape(name)} -->.*?<!-- end:{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def markdown_table(rows: list[dict[str, object]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)
