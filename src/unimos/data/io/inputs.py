"""What the user names as input: a file, a folder holding one series, or a folder batch of either; each checked for
access first and read by the registered format that claims it, with one clear error otherwise.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from unimos.data.io.common import Kind, Shape3, check_kind, full_path, visible_children
from unimos.data.io.registry import (
    InputFormat,
    file_format,
    folder_format,
    image_extension,
    input_formats,
    supported_text,
)
from unimos.data.volume import Volume
from unimos.errors import InputError

_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")
T = TypeVar("T")


def case_id_from_path(path: str | Path) -> str:
    """Case id: file name without image extension and nnU-Net channel suffix (`_0000`), or a folder's name."""
    path = Path(path)
    ext = image_extension(path)
    if ext is None or path.is_dir():
        return path.name
    return _CHANNEL_SUFFIX.sub("", path.name[: -len(ext)])


def _missing_error(path: Path) -> InputError:
    """The error for a path that does not exist, suggesting near names in its folder."""
    where = full_path(path)
    parent = Path(where).parent
    if not parent.is_dir():
        return InputError(where, "does not exist", f"check the path: its folder {parent} does not exist either")
    try:
        names = [p.name for p in parent.iterdir()]
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)
    hint = f" (similar names there: {', '.join(close)})" if close else ""
    return InputError(where, "does not exist", f"check the file name and folder{hint}")


def _permission_error(path: str | Path) -> InputError:
    """The error for an input the current user may not read."""
    return InputError(full_path(path), "cannot be read: permission denied",
                      "give your user read permission (e.g. chmod u+r), or copy the data somewhere readable")


def _check_access(path: Path) -> None:
    """Refuse a missing, unreadable or empty input before any library sees it (their messages are cryptic)."""
    where = full_path(path)
    if not path.exists():
        raise _missing_error(path)
    needed = os.R_OK | (os.X_OK if path.is_dir() else 0)
    if not os.access(path, needed):
        raise _permission_error(path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(where, "is empty (0 bytes)", "the file was not written completely; copy or export it again")



def _format_error(path: Path) -> InputError:
    """The error for a file whose name gives no supported format (or that belongs in a folder format's folder)."""
    for fmt in input_formats():
        if fmt.misplaced_file is not None and (error := fmt.misplaced_file(path)) is not None:
            return error
    return InputError(full_path(path), f"has an unknown image format ('{''.join(path.suffixes) or path.name}'); "
                                       f"unimos reads {supported_text()}", "convert it to NIfTI (.nii.gz)")


def _folder_error(path: Path) -> InputError:
    """The error for a folder given where one image or series is expected."""
    titles = " or ".join(fmt.title for fmt in input_formats() if fmt.holds is not None)
    return InputError(full_path(path), f"is a folder without {titles} files, not one image",
                      "give one image file or a folder holding one DICOM series")


def _format_of(path: Path) -> InputFormat:
    """The registered format that reads `path` (checked for access first); a clear error when none does."""
    _check_access(path)
    fmt = folder_format(path) if path.is_dir() else file_format(path)
    if fmt is None:
        raise _folder_error(path) if path.is_dir() else _format_error(path)
    return fmt


def _permission_errors_named(path: Path, read: Callable[[], T]) -> T:
    """Run `read()`, turning a PermissionError raised deep inside a library into the one clear error."""
    try:
        return read()
    except PermissionError as err:
        raise _permission_error(err.filename or path) from err


def read_volume(path: str | Path, kind: Kind = "image") -> Volume:
    """Read one 3D image (float32) or label map (integers) from NIfTI, NRRD, MetaImage or a DICOM series folder."""
    check_kind(kind)
    path = Path(path)
    return _permission_errors_named(path, lambda: _format_of(path).read(path, kind))


def read_geometry(path: str | Path) -> tuple[Shape3, np.ndarray]:
    """Shape and RAS+ affine of an input from its header only (no voxels), for fast validation of many files."""
    path = Path(path)
    return _permission_errors_named(path, lambda: _format_of(path).geometry(path))


def list_inputs(path: str | Path) -> list[Path]:
    """Inputs named by `path`: a file, one series folder (DICOM), or a folder batch of image files / series folders."""
    path = Path(path)
    _check_access(path)
    if path.is_file():
        return [path]
    where = full_path(path)
    children = visible_children(path)
    images = [p for p in children if p.is_file() and image_extension(p) is not None]
    if (fmt := folder_format(path)) is not None:
        if images:
            raise InputError(where, f"mixes {fmt.title} files with {len(images)} image file(s) such as "
                                    f"{images[0].name}", f"keep {fmt.description} in a folder of its own")
        if fmt.check_folder is not None:
            fmt.check_folder(path)
        return [path]
    series_dirs = [p for p in children if p.is_dir() and folder_format(p) is not None]
    inputs = sorted(images + series_dirs)
    if inputs:
        return inputs
    if not children:
        raise InputError(where, "is empty", f"put the images ({supported_text()}) in it, or give the right folder")
    subfolders = [p.name for p in children if p.is_dir()]
    hint = f"; it has subfolders ({', '.join(subfolders[:5])}): give the one holding the images, e.g. imagesTr" \
        if subfolders else ""
    raise InputError(where, f"holds no readable images ({len(children)} other entries){hint}",
                     f"give a folder of {supported_text()}")
