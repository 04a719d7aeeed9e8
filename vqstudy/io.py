"""File I/O shared by the store, the book, the notebooks and the command line.

Writes are atomic (a temporary file in the same folder, renamed over the
target), so a reader never sees half a file; temporary files a killed writer
left behind are removed by the next writer once they are old enough that no
live writer can still own them. Reads of JSON and YAML fail with one line
naming the file, the line and column, and the problem. Exclusive claim files
(``O_CREAT | O_EXCL``) let several processes, on one machine or on several
sharing a folder, split work without doing any item twice.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable

STALE_TEMP_S = 3600.0     # a temporary file this old has no live writer (a write takes milliseconds)
CLAIM_STALE_S = 600.0     # a claim not refreshed for this long has no live owner
# mkstemp's names: ".<target name>.<8 random characters>.tmp" (see write_atomic)
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


class FileFormatError(ValueError):
    """A file that is not what its reader expects; ``str()`` is one line naming the file."""

    def __init__(self, what: str, path: Path, kind: str, detail: str):
        self.path, self.kind, self.detail = Path(path), kind, detail
        super().__init__(f"{what} {path} is not valid {kind}: {detail}")


# --- writing --------------------------------------------------------------------------------------

def write_atomic(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so no reader sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: str | Path, older_than: float = STALE_TEMP_S) -> list[Path]:
    """Delete the temporary files of killed writes in ``folder`` (not recursive); returns what was removed.

    Only files named like :func:`write_atomic`'s temporaries and untouched for
    ``older_than`` seconds go: a concurrent writer's fresh temporary file stays.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for path in folder.iterdir():
        if TEMP_NAME.match(path.name):
            with suppress(FileNotFoundError):
                if now - path.stat().st_mtime >= older_than and path.is_file():
                    path.unlink()
                    removed.append(path)
    return removed


# --- reading --------------------------------------------------------------------------------------

def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; bytes that are not UTF-8 raise :class:`FileFormatError` naming the file."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(what, path, "UTF-8 text",
                              f"byte 0x{data[exc.start]:02x} at position {exc.start} cannot be decoded") from None


def _parse(path: str | Path, what: str, kind: str, parse: Callable[[str], Any], error: type[Exception],
           describe: Callable[[Any, str], str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} not found: {path}")
    text = read_text(path, what)
    try:
        return parse(text)
    except error as exc:
        raise FileFormatError(what, path, kind, describe(exc, text)) from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file; a missing file or a syntax error is one ValueError line naming file, line and column."""
    return _parse(path, what, "JSON", json.loads, json.JSONDecodeError,
                  lambda exc, _: f"line {exc.lineno}, column {exc.colno}: {exc.msg}")


def _yaml_problem(exc: Exception, text: str) -> str:
    """One line from a PyYAML error: where it went wrong and why, without the quoted source lines."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        if exc.context:
            where = exc.context_mark
            text += f" ({exc.context}" + (f" at line {where.line + 1}, column {where.column + 1})"
                                          if where is not None else ")")
        return text
    if isinstance(exc, yaml.reader.ReaderError):   # a character YAML does not allow, e.g. a NUL byte
        before = text[:exc.position]
        where = f"line {before.count(chr(10)) + 1}, column {exc.position - before.rfind(chr(10))}"
        char = f" (character #x{exc.character:04x})" if isinstance(exc.character, int) else ""
        return f"{where}: {exc.reason}{char}"
    return " ".join(str(exc).split())


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """Parse a YAML file (safe loader); errors are one ValueError line naming file, line and problem."""
    import yaml

    return _parse(path, what, "YAML", yaml.safe_load, yaml.YAMLError, _yaml_problem)


# --- exclusive claims -----------------------------------------------------------------------------

def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def claim_is_stale(text: str, mtime: float, stale_after: float = CLAIM_STALE_S) -> bool:
    """Whether a claim's owner is gone: a dead process on this host, or no refresh for ``stale_after`` s."""
    with suppress(ValueError, TypeError, AttributeError):
        owner = json.loads(text)
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) \
                and not _pid_running(owner["pid"]):
            return True
    return time.time() - mtime > stale_after


class ClaimSet:
    """The claim files this process holds; a background thread refreshes them until :meth:`close`.

    :meth:`take` creates a claim file exclusively (``O_CREAT | O_EXCL``) holding
    this process's host and pid. A claim whose owner is gone (see
    :func:`claim_is_stale`) is broken first; a live one makes ``take`` return False.
    """

    def __init__(self, stale_after: float = CLAIM_STALE_S):
        if isinstance(stale_after, bool) or not isinstance(stale_after, (int, float)) or not stale_after > 0:
            raise ValueError(f"invalid stale_after={stale_after!r}: must be a positive number of seconds")
        self.stale_after = float(stale_after)
        self.held: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="claim-refresh", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.stale_after / 4):
            with self._lock:
                held = list(self.held)
            for path in held:
                with suppress(FileNotFoundError):
                    os.utime(path)

    def take(self, path: str | Path) -> bool:
        """Claim ``path``; False when another live owner holds it."""
        path = Path(path)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not self._break_if_stale(path):
                    return False
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(_owner()))
            with self._lock:
                self.held.add(path)
            return True
        return False

    def _break_if_stale(self, path: Path) -> bool:
        """Remove ``path`` if its claim is stale; True when the caller may try to create it again."""
        try:
            mtime, text = path.stat().st_mtime, path.read_text(errors="replace")
        except FileNotFoundError:
            return True
        if not claim_is_stale(text, mtime, self.stale_after):
            return False
        # rename first, so of two processes breaking the same claim only one succeeds; a temporary
        # name, so a kill right here leaves a file the stale-temp clean-up removes
        grabbed = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.rename(path, grabbed)
        except FileNotFoundError:
            return True
        if grabbed.read_text(errors="replace") != text:   # a fresh claim replaced the stale one: restore it
            with suppress(FileExistsError):
                os.link(grabbed, path)
            grabbed.unlink(missing_ok=True)
            return False
        grabbed.unlink(missing_ok=True)
        return True

    def release(self, path: str | Path) -> None:
        path = Path(path)
        with self._lock:
            mine = path in self.held
            self.held.discard(path)
        if mine:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop refreshing and release every claim still held."""
        self._stop.set()
        self._thread.join()
        for path in list(self.held):
            self.release(path)

    def __enter__(self) -> "ClaimSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
