"""A 3D array that carries its geometry: the voxel-to-world affine travels with the voxels everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

AFFINE_TOLERANCE_MM = 1e-2
"""Two affines describe the same grid when every entry agrees to this (mm): files of one scan differ by header
rounding (NIfTI keeps float32 affines; a DICOM series' positions are decimal strings), never by a voxel's share."""


@dataclass(frozen=True)
class Volume:
    """One 3D image or label map in nibabel conventions.

    Attributes:
        array: voxels indexed (i, j, k).
        affine: 4x4 matrix mapping voxel indices to world RAS+ millimetres (nibabel's convention).
        path: the file it was read from, if any (for error messages).
    """

    array: np.ndarray
    affine: np.ndarray
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume needs a 3D array, got shape {self.array.shape}")
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"Volume needs a 4x4 affine, got shape {affine.shape}")
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k in millimetres."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Axis codes such as 'RAS' or 'LPS' (nibabel: the direction each axis increases towards)."""
        return "".join(nib.aff2axcodes(self.affine))

    def with_array(self, array: np.ndarray) -> "Volume":
        """The same geometry holding other voxels (same shape required)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the volume's {self.array.shape}")
        return Volume(array, self.affine, self.path)


def same_grid(a: Volume, b: Volume) -> bool:
    """Whether two volumes lie on one voxel grid: the same shape and affines equal to `AFFINE_TOLERANCE_MM`."""
    return a.shape == b.shape and bool(np.allclose(a.affine, b.affine, rtol=0.0, atol=AFFINE_TOLERANCE_MM))
