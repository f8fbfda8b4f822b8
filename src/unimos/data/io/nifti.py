"""NIfTI (.nii.gz, .nii) through nibabel, whose affine is already RAS+: the reader, and the writer of volumes and
of prediction files (`--format nifti`).

A new format module follows this one: functions that read (and write) it, then one `register_input` /
`register_output` call at the bottom.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.openers import ImageOpener
from nibabel.spatialimages import HeaderDataError
from numpy.typing import DTypeLike

from unimos.data.io.common import (
    GEOMETRY_FIX,
    Kind,
    Shape3,
    as_kind,
    check_affine,
    full_path,
    label_values,
    memory_error,
    shape_3d,
    size_text,
    smallest_int_dtype,
    storage_dtype,
)
from unimos.data.io.registry import InputFormat, OutputFormat, register_input, register_output
from unimos.data.volume import Volume
from unimos.errors import InputError, OutputError
from unimos.utils.atomic import atomic_path

NIFTI_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii")

# What nibabel raises on truncated, corrupt or foreign files (found by cutting and flipping bytes of real files).
_NIBABEL_READ_ERRORS: tuple[type[BaseException], ...] = (
    ImageFileError, HeaderDataError, OSError, EOFError, zlib.error, ValueError,
)
# zlib's documented limit: deflate expands at most 1032-fold (one bit per 258-byte match), so a .nii.gz of N bytes
# holds at most 1032 N bytes; exact, unlike the gzip trailer's size, which is mod 2^32 and only of the last member.
_DEFLATE_MAX_RATIO = 1032


# ----------------------------------------------------------------------------------------------- reading


def _sniff_gzip(path: Path, where: str) -> None:
    """Refuse a `.nii.gz` that is not gzip data, telling a misnamed plain NIfTI apart from a foreign file."""
    with open(path, "rb") as handle:
        head = handle.read(348)
    if head[:2] == b"\x1f\x8b":
        return
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00",):
        raise InputError(where, "is an uncompressed NIfTI file but its name ends in .nii.gz",
                         "rename it to end in .nii (or gzip it)")
    raise InputError(where, "is not a NIfTI image (a .nii.gz file must be gzip data, and this one is not)",
                     "check that this is the image you meant, and export it again as NIfTI (.nii.gz)")


def _corrupt_nifti_error(where: str, err: BaseException) -> InputError:
    """The one error for a NIfTI file nibabel cannot read."""
    reason = f"{type(err).__name__}: {err}".strip()[:300]
    if isinstance(err, ImageFileError):
        return InputError(where, f"is not a readable NIfTI image: its header is missing, cut short or of another "
                                 f"format ({reason})",
                          "check that this is the image you meant; copy or export it again as NIfTI")
    return InputError(where, f"cannot be read as NIfTI: the file is truncated, corrupt or not an image ({reason})",
                      "the file was probably not copied or written completely; copy or export it again")


def _load_nifti(path: Path) -> nib.Nifti1Image:
    """nibabel's image object for `path` (header read, voxels not yet), with every nibabel failure as InputError."""
    where = full_path(path)
    if path.name.lower().endswith(".nii.gz"):
        _sniff_gzip(path, where)
    try:
        img = nib.load(str(path), mmap=False)
    except _NIBABEL_READ_ERRORS as err:
        raise _corrupt_nifti_error(where, err) from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(where, f"is a {type(img).__name__}, not a NIfTI image", "export it again as NIfTI (.nii.gz)")
    return img


def _check_pixdim(img: nib.Nifti1Image, path: Path, where: str) -> None:
    """Refuse voxel sizes of 0, negative or NaN when they make the affine (no sform): nibabel would quietly use 1 mm
    for a zero and the absolute value for a negative one, so the scan would be resampled to a made-up size."""
    if int(img.header["sform_code"]) > 0:
        return
    try:
        with ImageOpener(str(path)) as handle:  # the header as stored: nibabel fixed its copy while loading
            stored = type(img.header).from_fileobj(handle, check=False)
    except _NIBABEL_READ_ERRORS as err:
        raise _corrupt_nifti_error(where, err) from err
    n_spatial = int(np.clip(stored["dim"][0], 1, 3))
    pixdim = np.asarray(stored["pixdim"][1:1 + n_spatial], dtype=np.float64)
    if not np.all(np.isfinite(pixdim) & (pixdim > 0)):
        raise InputError(where, f"its header gives voxel sizes (pixdim) of {pixdim.tolist()} mm, and a voxel size must "
                                "be a positive number (there is no sform to take the geometry from instead)",
                         GEOMETRY_FIX)


def _nifti_affine(img: nib.Nifti1Image, path: Path, where: str) -> np.ndarray:
    """The RAS+ affine of a loaded NIfTI image, refused when it cannot be trusted."""
    _check_pixdim(img, path, where)
    return check_affine(img.affine, where)


def _nifti_geometry(path: Path) -> tuple[Shape3, np.ndarray]:
    """Shape and affine from a NIfTI header, without reading voxels."""
    where = full_path(path)
    img = _load_nifti(path)
    return shape_3d(img.shape, where), _nifti_affine(img, path, where)


def _check_nifti_size(img: nib.Nifti1Image, path: Path, where: str) -> None:
    """Refuse, before allocating, a header whose voxels cannot be in the file (a huge dim in a tiny file)."""
    n_voxels = int(np.prod([int(d) for d in img.shape], dtype=object))
    needed = n_voxels * img.header.get_data_dtype().itemsize
    offset = int(getattr(img.dataobj, "offset", 0))  # the header's copy says 0 once nibabel has loaded it
    size = path.stat().st_size
    compressed = path.name.lower().endswith(".gz")
    room = _DEFLATE_MAX_RATIO * size if compressed else size - offset
    if needed + (offset if compressed else 0) <= room:
        return
    dims = "x".join(str(int(d)) for d in img.shape)
    claim = f"its header describes {dims} voxels of {img.header.get_data_dtype()} ({size_text(needed)})"
    if compressed:
        held = (f"the file is {size_text(size)} of gzip data, which expands to at most {size_text(room)} "
                f"(deflate's limit is {_DEFLATE_MAX_RATIO}:1)")
    else:
        held = f"the file holds {size_text(max(room, 0))} of voxels"
    raise InputError(where, f"{claim}, but {held}: the header's dimensions are wrong or the file is truncated",
                     "copy or export the image again; if it was written by your own code, check the shape it "
                     "stores in the header")


def _read_nifti(path: Path, kind: Kind) -> Volume:
    """Read a NIfTI file: images scaled by scl_slope/inter to float32, labels as integers."""
    where = full_path(path)
    img = _load_nifti(path)
    shape = shape_3d(img.shape, where)
    affine = _nifti_affine(img, path, where)
    _check_nifti_size(img, path, where)
    try:
        # Labels come unscaled in their stored type when slope/inter are trivial; images always scaled.
        raw = np.asanyarray(img.dataobj) if kind == "label" else img.get_fdata(dtype=np.float32)
        array = as_kind(np.asarray(raw).reshape(shape), kind, where)
    except _NIBABEL_READ_ERRORS as err:
        raise _corrupt_nifti_error(where, err) from err
    except MemoryError:
        raise memory_error(where, shape, 4) from None
    # NIfTI voxels are stored in Fortran order; a C-order copy is a 3D transpose (3.6 s for 512 x 512 x 400), so
    # the array keeps its layout and the resampling reads it as it is (preprocess/resample.py).
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)
    return Volume(array, affine, path)



# ----------------------------------------------------------------------------------------------- writing


def _array_for_nifti(array: np.ndarray, dtype: DTypeLike | None) -> np.ndarray:
    """Voxels in the type to store: `dtype` if given (integers rounded and range-checked), else a NIfTI-safe type."""
    if dtype is None:
        if array.dtype == bool:
            return array.astype(np.uint8)
        if array.dtype == np.float16:
            return array.astype(np.float32)
        if array.dtype in (np.int64, np.uint64):  # nibabel refuses 64-bit integers without an explicit type
            low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
            return array.astype(smallest_int_dtype(low, high))
        return array
    target = np.dtype(dtype)
    if np.issubdtype(target, np.integer) and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"cannot store NaN/Inf voxels as {target}")
        array = np.round(array)
    if np.issubdtype(target, np.integer) and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise ValueError(f"values {array.min()}..{array.max()} do not fit in {target}")
    return array.astype(target, copy=False)


def write_nifti(volume: Volume, path: str | Path, dtype: DTypeLike | None = None) -> Path:
    """Write `volume` as NIfTI atomically, with sform and qform both set to its affine (code 1, scanner)."""
    path = Path(path)
    if not path.name.lower().endswith(NIFTI_EXTENSIONS):
        raise OutputError(full_path(path), "is not a NIfTI file name", "give a name ending in .nii.gz or .nii")
    img = nib.Nifti1Image(_array_for_nifti(volume.array, dtype), volume.affine)
    img.set_sform(volume.affine, code=1)
    img.set_qform(volume.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path



def _write_prediction(labels: Volume, path: Path, class_names: Sequence[str], source: Path | None) -> Path:
    """A prediction as NIfTI: label values checked against `class_names`, stored in the smallest unsigned type."""
    label_values(labels, class_names)
    return write_nifti(labels, path, dtype=storage_dtype(len(class_names)))


register_input(InputFormat(name="nifti", title="NIfTI", description="NIfTI (.nii.gz, .nii)", read=_read_nifti,
                           geometry=_nifti_geometry, extensions=NIFTI_EXTENSIONS))
register_output(OutputFormat(name="nifti", suffix=".nii.gz", write=_write_prediction))
