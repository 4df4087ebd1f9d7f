"""Every file the project reads from a user or writes: the ground floor, below models and data.

Writes go through `atomic_write` (a temporary file named after its writer, fsync, rename over the target), so a
target is always complete or untouched, a symbolic link at the target is replaced rather than written through,
and the next command can tell a killed writer's leftover (`remove_stale_temporaries`) from a live one's file.

Reads open regular files only: a FIFO, socket or device named like a data file would block the process that
opens it, so only regular files are ever opened or listed. Walks follow symbolic links, as datasets are often
assembled from links, but enter each directory once (by device and inode), so a link to a parent folder neither
repeats images nor loops.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from visionzoo.errors import VisionZooError

logger = logging.getLogger(__name__)

_TEMPORARY = re.compile(r"^\..+\.(?P<host>[^.]*)\.(?P<pid>\d+)\.tmp$")
FOREIGN_TEMPORARY_AGE_S = 3600  # a temporary file of another machine (or version) is a leftover after an hour


def is_regular_file(path: str | Path) -> bool:
    """A regular file, after following links (False for FIFOs, sockets, devices, folders, missing paths)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def require_regular_file(path: str | Path, what: str = "file") -> Path:
    """`path` when it is a regular file; else one error naming it and what it is instead."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VisionZooError(f"{path}: no such {what}") from None
    except OSError as err:
        raise VisionZooError(f"{path}: cannot read it ({err.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise VisionZooError(f"{path}: {kind}, expected a {what}")
    return path


DirectoryKey = tuple[int, int]  # (device, inode)


def directory_key(path: str | Path) -> DirectoryKey:
    """What identifies a directory whatever the links that lead to it: (device, inode)."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def walk_files(folder: str | Path, accept: Callable[[str], bool], seen: set[DirectoryKey] | None = None) -> list[str]:
    """Regular files below `folder` whose name `accept` admits, as paths relative to it, in torchvision
    ImageFolder's order (a folder's files sorted, then its sub-folders', each sorted). Hidden entries are skipped.

    Links are followed, but a directory in `seen` (`directory_key`s, updated; `folder` itself is added) is not
    entered again, so a walk over several folders sharing `seen` lists each file once.
    """
    seen = set() if seen is None else seen
    seen.add(directory_key(folder))
    found: list[str] = []
    stack = [(os.fspath(folder), "")]
    while stack:
        directory, rel = stack.pop()
        with os.scandir(directory) as listing:
            entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
        # is_file() is true for regular files only (also behind links), from the listing itself where it can
        found += [os.path.join(rel, e.name) for e in entries if e.is_file() and accept(e.name)]
        below = []
        for entry in entries:
            if entry.is_dir():
                key = (entry.stat().st_dev, entry.stat().st_ino)
                if key not in seen:
                    seen.add(key)
                    below.append((entry.path, os.path.join(rel, entry.name)))
        stack += reversed(below)
    return found


def expand_inputs(inputs: list[Path], accept: Callable[[str], bool], what: str) -> list[Path]:
    """Files as given, folders expanded (recursively, sorted) to the regular files `accept` admits."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(item / name for name in walk_files(item, accept))
            if not found:
                raise VisionZooError(f"{item}: no {what} in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise VisionZooError(f"{item}: no such file or folder")
    return files


# ------------------------------------------------------------------------------------------------- writing


def _host() -> str:
    return socket.gethostname().replace(".", "_")


def temporary_path(path: Path, pid: int | None = None, host: str | None = None) -> Path:
    """Where `atomic_write` writes `path` first: named after its writer (machine, process), so that a later
    command can tell the leftovers of a killed writer from the file of a live one."""
    return path.with_name(f".{path.name}.{host or _host()}.{pid or os.getpid()}.tmp")


def atomic_write(path: Path, write: Callable[[Path], None], before_replace: Callable[[], None] | None = None) -> None:
    """Call `write(tmp)` for a temporary file beside `path`, fsync it, and rename it over `path`
    (`before_replace` runs just before the rename).

    A failure on the way (a full disk, a folder turned read-only) leaves `path` as it was and no temporary
    file, and is one VisionZooError naming `path`.
    """
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise VisionZooError(
            f"{path}: cannot write it ({err.strerror or err}); the file there, if any, is unchanged"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def is_temporary(name: str) -> bool:
    """A file name `atomic_write` writes to before renaming."""
    return _TEMPORARY.match(name) is not None


def remove_stale_temporaries(folder: Path, every_writer: bool = False) -> int:
    """Delete the temporary files that writers killed during a write left in `folder`: those of a process of
    this machine that no longer runs, and those of other machines older than an hour (`every_writer`: all of
    them, for when every writer is known to be done). Best effort: a folder that cannot be changed stays as it
    is. Returns how many were removed."""
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".tmp")]
    except OSError:
        return 0
    now, removed = time.time(), 0
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        if every_writer:
            stale = found is not None
        elif found is not None and found["host"] == _host():
            stale = not _process_exists(int(found["pid"]))
        else:
            stale = now - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_TEMPORARY_AGE_S
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
                logger.info("removed %s, left by a write that did not finish", entry.path)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def replace_with_link(path: Path, target: Path) -> None:
    """`path` becomes what `target` is now, atomically: a hard link (a copy where the file system has none)
    under a temporary name, renamed over `path`."""
    tmp = temporary_path(path)
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(target, tmp)
        except OSError:
            shutil.copyfile(target, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_yaml(path: Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_bytes(path: Path, data: bytes | memoryview, before_replace: Callable[[], None] | None = None) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), before_replace)


def write_csv(path: Path, header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> None:
    """A CSV with "\\n" line ends (as BSN's files and spreadsheets read them)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def append_text(path: Path, text: str) -> None:
    """Add `text` to the end of a log file (metrics.jsonl): one write of the whole text, fsynced; a symbolic
    link at `path` is refused rather than followed, as `atomic_write` replaces one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise VisionZooError(f"{path}: cannot append to it ({err.strerror or err})") from None


def write_npy(path: Path, array: Any) -> None:
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # np.save on a path would append ".npy" to the temporary name
            np.save(handle, array)

    atomic_write(path, save)


def save_figure(path: Path, figure: Any, dpi: int = 100) -> Path:
    """A matplotlib figure as a PNG (the format named, since the temporary file has no .png suffix)."""
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=dpi, format="png"))
    return path


@contextlib.contextmanager
def building_dir(out: Path, complete_marker: str) -> Iterator[Path]:
    """A fresh folder to fill, renamed to `out` when the block succeeds; so `out` is complete or absent.

    If another process (another rank) finished `out` first, its copy - recognised by `complete_marker` inside
    it - is kept and ours discarded.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        build = tmp / out.name
        build.mkdir()
        yield build
        try:
            build.rename(out)
        except OSError:
            if not (out / complete_marker).exists():
                raise VisionZooError(f"{out}: already exists and holds something else; choose a new path") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block: one builder of a cache at a time."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent builds stay correct (atomic renames), only duplicated
        yield
        return
    with open(path, "a") as handle:  # "a": an existing file (any file) can serve as the lock, untouched
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------------- reading


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_JSON_BYTES = 1 << 30  # a proposals file of all ActivityNet videos is ~100 MB; 1 GiB is past any real one
MAX_JSON_DEPTH = 64  # our deepest format nests 6 levels; Python's parser recurses once per level
MAX_INT_DIGITS = 20  # int64 has 19 digits; longer ones are no count, size or time of ours (and would overflow)
MAX_LISTED_ERRORS = 5  # bad rows shown before "... and N more"


def read_bytes(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """A regular file's bytes, refused (before reading) when larger than `max_bytes`."""
    require_regular_file(path, what)
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise VisionZooError(f"{path}: the {what} is {size:,} bytes, more than the {max_bytes:,} allowed")
        return path.read_bytes()
    except OSError as err:
        raise VisionZooError(f"{path}: cannot read the {what} ({err.strerror})") from None


def decode_text(data: bytes, path: Path, what: str) -> str:
    """Text as spreadsheets write it: UTF-8 (a byte-order mark is dropped), UTF-16 with its mark (Excel's
    "Unicode text"), else Windows-1252 (a superset of Latin-1's printable characters), said once in the log."""
    encodings = ("utf-16",) if data.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig", "cp1252")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        if encoding != "utf-8-sig":
            logger.warning("%s: read as %s (not UTF-8)", path, encoding)
        return text
    raise VisionZooError(f"{path}: the {what} is not text in UTF-8, UTF-16 or Windows-1252/Latin-1")


def read_text(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """A user's text file (CSV, class list), decoded as `decode_text` says."""
    return decode_text(read_bytes(path, what, max_bytes), path, what)


def nesting_depth(text: str) -> int:
    """The deepest nesting of brackets outside double-quoted strings (JSON, YAML's flow style), found without
    recursion, so that a parser that recurses per level is never given more than it can take."""
    import numpy as np

    skeleton = _JSON_STRING.sub("", text).encode("utf-8", "replace")
    codes = np.frombuffer(skeleton, dtype=np.uint8)
    steps = np.isin(codes, (91, 123)).astype(np.int64) - np.isin(codes, (93, 125))
    return int(np.cumsum(steps).max(initial=0))


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class _TooLong(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooLong(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def parse_json(text: str, where: str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON text to Python values, with nesting and integer sizes bounded before the parser could recurse or
    overflow; NaN, Infinity and floats beyond the double range come back as float (the schemas decide)."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise VisionZooError(f"{where}: the {what} nests {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except _TooLong as err:
        raise VisionZooError(f"{where}: the {what} holds {err}") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise VisionZooError(f"{where}: the {what} is not valid JSON ({one_line(str(err))})") from None


def read_json(path: Path, what: str, model: Any = None, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file, bounded (size, depth, integers) and, given a pydantic `model`, validated into it: every
    fault is one VisionZooError naming the file, the place inside it and what is wrong."""
    data = read_bytes(path, what, max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise VisionZooError(f"{path}: the {what} is not UTF-8 text (byte {err.start})") from None
    value = parse_json(text, str(path), what)
    return value if model is None else validate(model, value, str(path), what)


MAX_YAML_BYTES = 16 << 20  # a run's config.yaml is ~2 KB


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file (a --config file, a run's config.yaml) as plain values: `safe_load`, so no tag builds an
    object; its size and flow nesting bounded as JSON's are, and every fault one line naming the file."""
    text = read_text(path, what, MAX_YAML_BYTES)
    depth = nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise VisionZooError(f"{path}: the {what} nests {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed")
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as err:  # ValueError: an integer past Python's digits
        raise VisionZooError(f"{path}: the {what} is not valid YAML ({one_line(str(err))})") from None


class Schema(BaseModel):
    """A file format's schema: values typed once when read, immutable; keys it does not name are ignored (the
    ActivityNet toolkit's files carry many)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class OpenSchema(Schema):
    """A schema whose other keys are kept as found (a run's summary, a card's preprocessing)."""

    model_config = ConfigDict(extra="allow", frozen=True)


def validate(model: Any, value: Any, where: str, what: str) -> Any:
    """`value` as the pydantic `model` (a BaseModel or a TypeAdapter); a ValidationError becomes one line with
    the place of the first fault (`database.v_abc.annotations[3].segment`) and the count of the others."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        check = model.model_validate
    else:
        check = (model if isinstance(model, TypeAdapter) else TypeAdapter(model)).validate_python
    try:
        return check(value)
    except ValidationError as err:
        raise VisionZooError(f"{where}: {validation_message(err, what)}") from None


def validation_message(err: Any, what: str) -> str:
    """The first fault of a pydantic ValidationError: its place, the problem and the value found."""
    first = err.errors(include_url=False)[0]
    place = place_name(first["loc"])
    found = repr(first["input"]) if not isinstance(first["input"], dict | list) else type(first["input"]).__name__
    found = found if len(found) <= 60 else found[:57] + "..."
    more = f" (and {err.error_count() - 1} more faults)" if err.error_count() > 1 else ""
    return one_line(f"{place or 'the ' + what}: {first['msg'][0].lower() + first['msg'][1:]}, got {found}{more}")


def place_name(loc: Iterable[Any]) -> str:
    """A pydantic location as a path into the file: `database.v_abc.annotations[3].segment`."""
    place = ""
    for part in loc:
        if isinstance(part, int):
            place += f"[{part}]"
        elif not str(part).startswith(("function-", "json-or-python", "tagged-union")):
            place += f".{part}" if place else str(part)
    return place


def one_line(text: str) -> str:
    """Any text as a single line (a message built from a user's value stays one line)."""
    return " ".join(text.split())


def too_many(lines: list[str], limit: int = MAX_LISTED_ERRORS) -> str:
    """The first `limit` of many faults, then how many more: one message for 5 or 200,000 bad rows."""
    shown = "; ".join(lines[:limit])
    return shown + (f"; ... and {len(lines) - limit} more" if len(lines) > limit else "")
