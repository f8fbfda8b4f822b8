"""Atomic writes: every file unimos writes goes to a temporary name in the same folder, then is renamed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unimos.errors import OutputError

_PARTIAL_MARK = ".partial-"


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


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text to `path` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write JSON (indented, keys in given order) to `path` atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
