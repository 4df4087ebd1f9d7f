"""The CLI in a process of its own: its own session, so that whatever it left running can be found and killed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

TIMEOUT_S = 300  # generous: two CPU cores shared with other jobs; the runs themselves take seconds


@contextlib.contextmanager
def started(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A running process (session leader); on leaving, everything left in its session is killed."""
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    with started(command, cwd, env) as process:
        stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def session_ends(leader: int, within_s: float) -> bool:
    """Whether every process of the session `leader` started has ended within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(leader, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
