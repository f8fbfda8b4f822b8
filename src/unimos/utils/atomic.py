"""Atomic writes: every file unimos writes goes to a temporary name in the same folder, then is renamed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unimos.errors import OutputError

_PARTIAL_MARK = ".partial-"
PAUSE_HOOK = "UNIMOS_TEST_PAUSE_IN_WRITE"
"""Test-only: `FLAG_FILE:SUFFIX` makes the first write of a file ending in SUFFIX create FLAG_FILE and pause with the
data in its temporary file, before the rename, so a test can kill the process at exactly that moment."""


def _temporary_sibling(final: Path) -> Path:
    # Keep the file's own name (and so its extension, which nibabel and SimpleITK read) at the end.
    return final.parent / f".{uuid.uuid4().hex[:12]}{_PARTIAL_MARK}{final.name}"


def is_partial(path: Path) -> bool:
    """True for a temporary name left by an interrupted atomic write."""
    return _PARTIAL_MARK in path.name and path.name.startswith(".")


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it to `final` when the block succeeds, delete it otherwise."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(final.parent, f"cannot create the output folder ({err.strerror})",
                          "choose a writable output location") from err
    tmp = _temporary_sibling(final)
    try:
        yield tmp
        _pause_if_asked(final)
        if not tmp.exists():
            raise OutputError(final, "the writer produced no file", "report this as a bug in unimos")
        os.replace(tmp, final)
    except OSError as err:
        raise OutputError(final, f"cannot write ({err.strerror})",
                          "check free disk space and write permission of the output folder") from err
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _pause_if_asked(final: Path) -> None:
    hook = os.environ.get(PAUSE_HOOK)
    if not hook:
        return
    flag, _, suffix = hook.rpartition(":")
    if flag and final.name.endswith(suffix) and not Path(flag).exists():
        Path(flag).write_text(str(os.getpid()))
        time.sleep(120)


def remove_partials(folder: str | Path) -> int:
    """Delete the temporary files that interrupted atomic writes left in `folder`; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if is_partial(p)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return len(stale)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text to `path` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write JSON (indented, keys in given order) to `path` atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


class NewFiles:
    """What one command created in a folder, removed again if the command fails before `keep()` is called."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder_existed = folder.exists()
        self.before = set(folder.iterdir()) if folder.is_dir() else set()
        self.kept = False

    def keep(self) -> None:
        """From now on a failure leaves the files: they are worth keeping (e.g. a checkpoint to resume from)."""
        self.kept = True

    def remove(self) -> None:
        """Delete the entries of the folder that did not exist before (and the folder, if this command made it)."""
        if not self.folder.is_dir():
            return
        for path in set(self.folder.iterdir()) - self.before:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if not self.folder_existed:
            with contextlib.suppress(OSError):
                self.folder.rmdir()


@contextlib.contextmanager
def removed_on_failure(folder: str | Path) -> Iterator[NewFiles]:
    """A failed command leaves no files of its own behind: what it created in `folder` goes when the block raises
    (Ctrl-C included), unless it called `keep()`; files that were there before are never touched."""
    created = NewFiles(Path(folder))
    try:
        yield created
    except BaseException:
        if not created.kept:
            created.remove()
        raise
