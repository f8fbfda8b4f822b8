"""What every format module shares: RAS+ geometry from ITK's LPS, 3D shapes, voxel types, and the wording of errors.

Nothing here knows a file format; the format modules (nifti.py, sitk_files.py, dicom.py, ...) build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from unimos.data.volume import Volume
from unimos.errors import InputError, ResourceError

Kind = Literal["image", "label"]
Shape3 = tuple[int, int, int]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def full_path(path: str | Path) -> str:
    """The full path used in error messages, so the user can find the file whatever the working folder."""
    return str(Path(path).expanduser().absolute())


def affine_from_lps(spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]) -> np.ndarray:
    """RAS+ 4x4 affine (nibabel) from ITK's LPS spacing, origin and row-major direction (first three axes used)."""
    dim = len(spacing)
    dir_matrix = np.asarray(direction, dtype=np.float64).reshape(dim, dim)[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ dir_matrix @ np.diag(np.asarray(spacing[:3], dtype=np.float64))
    affine[:3, 3] = _LPS_TO_RAS @ np.asarray(origin[:3], dtype=np.float64)
    return affine


def lps_from_affine(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """ITK spacing, origin and row-major direction from a RAS+ affine: the exact inverse of `affine_from_lps`."""
    affine = np.asarray(affine, dtype=np.float64)
    lps = _LPS_TO_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if not np.all(spacing > 0):
        raise ValueError(f"affine has a zero-length axis, spacing {spacing.tolist()}")
    direction = lps / spacing
    origin = _LPS_TO_RAS @ affine[:3, 3]
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())


def _affine_problem(affine: np.ndarray) -> str | None:
    """Why an affine cannot map voxels to the world (non-finite or singular), or None when it can."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        return "its voxel-to-world affine contains NaN or Inf"
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(norms == 0):
        return f"its voxel-to-world affine is singular (voxel size {norms.round(6).tolist()} mm has a zero)"
    # Determinant relative to the column lengths: 1 for orthogonal axes, 0 when axes are parallel (scale-free).
    if abs(np.linalg.det(affine[:3, :3])) / np.prod(norms) < 1e-6:
        return "its voxel-to-world affine is singular (two voxel axes point the same way)"
    return None


GEOMETRY_FIX = ("fix the header geometry (pixdim/sform/qform or spacing and direction) in the tool that wrote the "
                 "file, then export it again")


def check_affine(affine: np.ndarray, where: str) -> np.ndarray:
    """Refuse an affine that cannot place voxels in the world: every later step (resampling, outputs) needs it."""
    problem = _affine_problem(affine)
    if problem is not None:
        raise InputError(where, problem, GEOMETRY_FIX)
    return np.asarray(affine, dtype=np.float64)


def shape_3d(shape: Sequence[int], where: str) -> Shape3:
    """Shape with trailing singleton dimensions beyond the third dropped; 2D and true 4D+ shapes are refused."""
    dims = [int(s) for s in shape]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) == 3:
        return dims[0], dims[1], dims[2]
    if len(dims) < 3:
        raise InputError(where, f"holds a {len(dims)}D image of shape {tuple(dims)}, but unimos needs one 3D volume "
                                "per file",
                         "save the image as a 3D volume (stack 2D slices into one file; a single slice as shape "
                         "(X, Y, 1))")
    raise InputError(where, f"holds a {len(dims)}D array of shape {tuple(dims)}, but unimos needs one 3D volume "
                            "per file",
                     "give one file per channel named like nnU-Net (case_0000.nii.gz, case_0001.nii.gz, ...); "
                     "for a time series save each frame as its own file")


def smallest_int_dtype(low: int, high: int) -> np.dtype:
    """Smallest of uint8/int16/int32/int64 holding [low, high]: label maps stay small in memory."""
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _label_array(array: np.ndarray, where: str) -> np.ndarray:
    """Integer label array; float files are accepted only when every voxel is a whole number."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        if np.iscomplexobj(array):
            raise InputError(where, "is read as a label map but holds complex numbers",
                             "give a label map of integer class ids")
        bad = ~np.isfinite(array)
        bad[~bad] = array[~bad] != np.round(array[~bad])
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            examples = ", ".join(f"{v:g}" for v in np.unique(array[bad])[:3])
            raise InputError(where, f"is read as a label map but {n_bad} of {array.size} voxels are not whole numbers "
                                    f"(e.g. {examples})",
                             "give the label map of integer class ids, not an image or probability map; labels "
                             "that were resampled must use nearest-neighbour interpolation")
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = int(array.min()), int(array.max())
    dtype = smallest_int_dtype(low, high)
    return array if array.dtype == dtype else array.astype(dtype)


def as_kind(array: np.ndarray, kind: Kind, where: str) -> np.ndarray:
    """Images as float32 intensities, labels as the smallest integer type."""
    if kind == "label":
        return _label_array(array, where)
    return array if array.dtype == np.float32 else array.astype(np.float32)


def check_kind(kind: str) -> None:
    """Catch a misspelt kind early (a programming error, not a user one)."""
    if kind not in ("image", "label"):
        raise ValueError(f"kind must be 'image' or 'label', got {kind!r}")


def count_nonfinite(volume: Volume) -> int:
    """Number of NaN/Inf voxels; reading allows them so validation can report them with all other problems."""
    array = volume.array
    if not np.issubdtype(array.dtype, np.inexact):
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def size_text(n_bytes: float) -> str:
    """A byte count for people: '1.2 KiB', '119.2 GiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GiB"


def memory_error(where: str, shape: Sequence[int], itemsize: int) -> ResourceError:
    """The error for a volume whose voxels do not fit in memory (instead of a MemoryError traceback)."""
    need = float(np.prod([float(d) for d in shape])) * itemsize
    return ResourceError(where, f"reading its {'x'.join(str(int(d)) for d in shape)} voxels needs about "
                                f"{size_text(need)} of memory, and the allocation failed",
                         "free memory or use a machine with more, or crop or downsample the scan first")



def label_values(labels: Volume, class_names: Sequence[str]) -> np.ndarray:
    """The label array, checked: whole numbers, each one a value `class_names` names."""
    array = labels.array
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"label map must hold integers, got {array.dtype}")
    if len(class_names) < 1:
        raise ValueError("class_names must name at least background (index 0)")
    if array.size and (int(array.min()) < 0 or int(array.max()) >= len(class_names)):
        raise ValueError(f"label values {int(array.min())}..{int(array.max())} exceed the {len(class_names)} class "
                         "names (index 0 = background)")
    return array


def storage_dtype(n_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if n_classes <= 256 else np.dtype(np.uint16)



def visible_children(folder: Path) -> list[Path]:
    """Entries of a folder, sorted, without hidden files (including unfinished atomic writes)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))

