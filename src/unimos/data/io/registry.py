"""The format registry: which reader opens an input and which writer makes a prediction file.

A new input format is one module in this folder that calls `register_input(InputFormat(...))`, a new output
format one that calls `register_output(OutputFormat(...))`, plus one import line in `data/io/__init__.py`
(the order of those lines is the order formats are tried and listed). nifti.py shows both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unimos.data.io.common import Kind, Shape3
from unimos.data.volume import Volume
from unimos.errors import InputError, OutputError


@dataclass(frozen=True)
class InputFormat:
    """One way of reading a volume: a file format known by its name's ending, or a folder format (a DICOM series).

    `read(path, kind)` gives the voxels (float32 image or integer labels) with a RAS+ affine; `geometry(path)` the
    shape and affine from the header alone. A file format lists `extensions`; a folder format gives `holds` (does
    this folder hold an input of mine), and may give `check_folder` (refuse a folder that is not exactly one input)
    and `misplaced_file` (the error for one of its files given alone, where its folder was meant).
    """

    name: str
    title: str  # what users call it: "NIfTI", "DICOM"
    description: str  # for messages: "NIfTI (.nii.gz, .nii)", "one DICOM series"
    read: Callable[[Path, Kind], Volume]
    geometry: Callable[[Path], tuple[Shape3, np.ndarray]]
    extensions: tuple[str, ...] = ()
    holds: Callable[[Path], bool] | None = None
    check_folder: Callable[[Path], object] | None = None
    misplaced_file: Callable[[Path], InputError | None] | None = None


@dataclass(frozen=True)
class OutputFormat:
    """One prediction file type: `write(labels, path, class_names, source)` writes it and returns the path.

    `check_source(source)` refuses, before any work, an input this format cannot be written for (DICOM SEG needs a
    DICOM series to reference); None when any input will do.
    """

    name: str  # the --format value
    suffix: str
    write: Callable[[Volume, Path, Sequence[str], Path | None], Path]
    check_source: Callable[[Path | None], None] | None = None


_INPUTS: dict[str, InputFormat] = {}
_OUTPUTS: dict[str, OutputFormat] = {}


def register_input(fmt: InputFormat) -> InputFormat:
    """Add an input format; a name or file extension that another format already has is a programming error."""
    taken = {ext for other in _INPUTS.values() for ext in other.extensions}
    if fmt.name in _INPUTS or taken & set(fmt.extensions):
        raise ValueError(f"input format '{fmt.name}' repeats a registered name or extension")
    if bool(fmt.extensions) == (fmt.holds is not None):
        raise ValueError(f"input format '{fmt.name}' must give either file extensions or a folder test (holds)")
    _INPUTS[fmt.name] = fmt
    return fmt


def register_output(fmt: OutputFormat) -> OutputFormat:
    """Add an output format (a --format value)."""
    if fmt.name in _OUTPUTS:
        raise ValueError(f"output format '{fmt.name}' is registered twice")
    _OUTPUTS[fmt.name] = fmt
    return fmt


def input_formats() -> tuple[InputFormat, ...]:
    """Every input format, in registration order."""
    return tuple(_INPUTS.values())


def file_extensions() -> tuple[str, ...]:
    """The name endings of every file format ('.nii.gz', '.nrrd', ...), in registration order."""
    return tuple(ext for fmt in _INPUTS.values() for ext in fmt.extensions)


def image_extension(path: str | Path) -> str | None:
    """The image extension ending `path` ('.nii.gz', '.nrrd', ...), lower case, or None: the name picks the reader."""
    name = Path(path).name.lower()
    return next((ext for ext in file_extensions() if name.endswith(ext)), None)


def file_format(path: Path) -> InputFormat | None:
    """The file format whose extension ends `path`'s name, or None."""
    ext = image_extension(path)
    return next((fmt for fmt in _INPUTS.values() if ext in fmt.extensions), None)


def folder_format(folder: Path) -> InputFormat | None:
    """The folder format that holds `folder` (e.g. a DICOM series), or None."""
    return next((fmt for fmt in _INPUTS.values() if fmt.holds is not None and fmt.holds(folder)), None)


def supported_text() -> str:
    """What unimos reads, for messages: 'NIfTI (.nii.gz, .nii), ... files or folders each holding one DICOM series'."""
    files = ", ".join(fmt.description for fmt in _INPUTS.values() if fmt.extensions)
    folders = " or ".join(fmt.description for fmt in _INPUTS.values() if fmt.holds is not None)
    return f"{files} files or folders each holding {folders}" if folders else f"{files} files"


def output_names() -> tuple[str, ...]:
    """The --format values, in registration order."""
    return tuple(_OUTPUTS)


def output_format(name: str) -> OutputFormat:
    """The output format called `name`; an unknown name is the user's error, listing the known ones."""
    if name not in _OUTPUTS:
        raise OutputError("--format", f"'{name}' is not an output format", f"use one of {', '.join(_OUTPUTS)}")
    return _OUTPUTS[name]
