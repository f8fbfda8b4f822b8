"""NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd) through SimpleITK, and the bridge between SimpleITK images and
`Volume`s: ITK's LPS geometry is converted to RAS+ here (and in `common.affine_from_lps`) and nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from unimos.data.io.common import (
    Kind,
    Shape3,
    affine_from_lps,
    as_kind,
    check_affine,
    full_path,
    lps_from_affine,
    shape_3d,
)
from unimos.data.io.registry import InputFormat, register_input
from unimos.data.volume import Volume
from unimos.errors import InputError

SITK_EXTENSIONS: tuple[str, ...] = (".nrrd", ".nhdr", ".mha", ".mhd")


def sitk_to_volume(img: sitk.Image, path: str | Path | None = None) -> Volume:
    """Volume (voxels indexed i, j, k; RAS+ affine) from a SimpleITK image, keeping its native voxel type."""
    where = full_path(path) if path is not None else "<in-memory SimpleITK image>"
    size = list(img.GetSize())
    components = img.GetNumberOfComponentsPerPixel()
    shape = shape_3d(size + ([components] if components > 1 else []), where)
    affine = check_affine(affine_from_lps(img.GetSpacing(), img.GetOrigin(), img.GetDirection()), where)
    # GetArrayFromImage gives (k, j, i) for 3D and (1, k, j, i) for 4D with a singleton last axis.
    array = sitk.GetArrayFromImage(img).reshape(shape[::-1]).transpose(2, 1, 0)
    return Volume(np.ascontiguousarray(array), affine, Path(path) if path is not None else None)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """SimpleITK image (LPS geometry) of a Volume: the exact inverse of `sitk_to_volume`, for resampling."""
    array = volume.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    spacing, origin, direction = lps_from_affine(volume.affine)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def itk_reason(err: BaseException) -> str:
    """ITK's exception text without the C++ source locations and object addresses: the readable part only."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown in SimpleITK")]
    text = " ".join(lines) or type(err).__name__
    text = re.sub(r"(sitk::ERROR|itk::ERROR|ITK ERROR):\s*(\w+\(0x[0-9a-fA-F]+\):\s*)?", "", text)
    text = re.sub(r"\S+\.(cxx|h|hxx):\d+:?\s*", "", text)
    return text.strip()[:300]


def sitk_reader(path: Path) -> sitk.ImageFileReader:
    """An ImageFileReader bound to `path`."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    return reader


def _corrupt_sitk_error(where: str, err: BaseException) -> InputError:
    """The one error for a NRRD/MetaImage file SimpleITK cannot read."""
    return InputError(where, f"cannot be read as an image ({itk_reason(err)})",
                      "the file is truncated, corrupt or not an image (for .mhd/.nhdr check that the data file "
                      "it names sits beside it); export it again")


def _read_sitk_file(path: Path, kind: Kind) -> Volume:
    """Read a NRRD or MetaImage file through SimpleITK."""
    where = full_path(path)
    try:
        img = sitk_reader(path).Execute()
    except RuntimeError as err:
        raise _corrupt_sitk_error(where, err) from err
    volume = sitk_to_volume(img, path)
    return Volume(as_kind(volume.array, kind, where), volume.affine, volume.path)


def _sitk_file_geometry(path: Path) -> tuple[Shape3, np.ndarray]:
    """Shape and affine from a NRRD/MetaImage header, without reading voxels."""
    where = full_path(path)
    reader = sitk_reader(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise _corrupt_sitk_error(where, err) from err
    components = reader.GetNumberOfComponents()
    shape = shape_3d(list(reader.GetSize()) + ([components] if components > 1 else []), where)
    affine = affine_from_lps(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    return shape, check_affine(affine, where)



register_input(InputFormat(name="simpleitk", title="NRRD/MetaImage",
                           description="NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd)", read=_read_sitk_file,
                           geometry=_sitk_file_geometry, extensions=SITK_EXTENSIONS))
