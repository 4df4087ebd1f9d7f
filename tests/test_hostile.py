"""Every hostile input of tests/hostile/ through the CLI: one error line and nothing changed, or a correct run;
never a traceback, never a hang."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hostile import CASES, Outcome

from visionzoo.cli import main

DEADLINE_S = 60  # the slowest case trains for a second; a hang ends here instead of stalling the suite


class Hung(BaseException):
    """Not an Exception: code that survives any Exception (a dataset's bad file) must not swallow the deadline."""


def _raise_hung(signum: int, frame: object) -> None:
    raise Hung(f"still running after {DEADLINE_S} s")


def _run(argv: list[str]) -> int:
    previous = signal.signal(signal.SIGALRM, _raise_hung)
    signal.alarm(DEADLINE_S)
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        return int(exit_.code)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of everything below `folder`, links not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            stat = os.lstat(os.path.join(dirpath, name))
            found[os.path.join(dirpath, name)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a default run directory would land here, and be seen
    case = CASES[name](tmp_path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = _run(case.argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err[-3000:]
    if case.error is not None:
        lines = err.strip().splitlines()
        assert code == 2 and (len(lines) == 1 or case.mid_run), err[-3000:]
        assert [line for line in lines if ": error: " in line] == lines[-1:], err[-3000:]
        assert lines[-1].startswith("visionzoo") and case.error in lines[-1], lines[-1]
        after = _snapshot(tmp_path)
        assert {path: after.get(path) for path in before} == before, "a refused command changed files"
        assert after.keys() == before.keys() or case.mid_run, "a refused command wrote files"
    else:
        assert code == 0, err[-3000:]
    if case.check is not None:
        case.check(Outcome(code, out, err, tmp_path))
