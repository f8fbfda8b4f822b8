"""Overlap and surface metrics for one binary structure: DSC, NSD and HD95, measured in millimetres.

Definitions (P = prediction, G = reference, both restricted to the scored region):

- **Surface**: the voxels of a mask with at least one face neighbour outside it (6-connectivity in 3D, 4 in a
  2D slice); beyond the array border counts as outside. The same voxel surfaces as MONAI's `get_mask_edges`.
- **Surface distance**: Euclidean distance in mm between voxel centres, from a surface voxel of one mask to the
  nearest surface voxel of the other. Coordinates are voxel index x spacing, so anisotropic grids are measured
  correctly; the nearest point comes from a k-d tree over the surface points (exact, and it needs memory for
  the surfaces only, not a distance map over the bounding box).
- **DSC** = 2 |P & G| / (|P| + |G|).
- **NSD** at tolerance t (Nikolov et al. 2021, "normalised surface Dice"): (surface voxels of P within t of the
  surface of G + surface voxels of G within t of the surface of P) / (surface voxels of P + of G). Surface
  voxels are counted rather than surfel areas, as in MONAI's `compute_surface_dice` (use_subvoxels=False).
- **HD95**: the 95th percentile (linear interpolation) of both directed distance sets pooled, the MedPy and
  nnU-Net convention. MONAI's `compute_hausdorff_distance` takes the larger of the two directed percentiles
  instead; the two agree when the errors are symmetric.

Empty masks (decided inside the scored region; NaN means "not defined", never "zero"):

    reference   prediction   DSC   NSD   HD95   status
    empty       empty        NaN   NaN   NaN    both_empty      (not scored: leave out of every mean)
    empty       non-empty    0     0     NaN    false_positive
    non-empty   empty        0     0     NaN    missed
    non-empty   non-empty    ...   ...   ...    scored

Scored region (`ScoringRegion`):

- everything (no mask): P and G are scored in 3D;
- the union of whole slices (a sparse reference: `annotated_slices`, or an ignore value on the unannotated
  slices): every annotated slice is scored as a 2D image, with in-plane surfaces and in-plane distances; the
  slices' surface points are pooled for NSD and HD95, and DSC counts the voxels of all annotated slices.
  Why 2D: the reference says nothing between its slices, so a 3D surface would make the whole area of every
  annotated slice "surface". A surface point on a slice where the other mask is absent is measured to the
  other mask's nearest surface point on any annotated slice (a 3D distance), so missing a structure on a few
  slices costs as much as the distance to where it was found, rather than an infinite distance;
- any other mask (e.g. scattered ignore voxels): P and G are cut to the mask and scored in 3D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

Status = Literal["scored", "both_empty", "false_positive", "missed"]
Box = tuple[slice, ...]

DEFAULT_TOLERANCE_MM = 2.0
HD_PERCENTILE = 95.0


@dataclass(frozen=True)
class StructureScore:
    """Scores of one structure in one case.

    Attributes:
        dsc: Dice similarity coefficient in [0, 1].
        nsd: normalised surface Dice in [0, 1] at the tolerance it was computed with.
        hd95: 95th percentile of the symmetric surface distances, mm.
        status: 'scored', or which empty-mask rule applied (module docstring).
    """

    dsc: float
    nsd: float
    hd95: float
    status: Status


@dataclass(frozen=True, eq=False)
class ScoringRegion:
    """Where a structure is scored: every voxel, a voxel mask, or whole annotated slices (scored in 2D).

    Attributes:
        mask: boolean array of the scored voxels, or None for every voxel.
        slices: voxel axis -> indices of the annotated slices, when the region is made of whole slices (the
            mask is then their union, possibly minus ignore voxels); None to score in 3D.
    """

    mask: np.ndarray | None = None
    slices: dict[int, tuple[int, ...]] | None = None

    @classmethod
    def from_mask(cls, mask: np.ndarray | None,
                  slices: dict[int, Sequence[int]] | None = None) -> "ScoringRegion":
        """The region for an evaluation mask, given or detected as whole slices along one axis.

        Args:
            mask: scored voxels (e.g. the annotated region from `to_project_labels`); None = every voxel.
            slices: the case's annotated slices (axis -> indices), when known; otherwise a mask that is the
                union of whole slices along one axis is recognised as such.
        """
        if mask is None:
            if slices is not None:
                raise ValueError("annotated slices need the mask's shape: pass the evaluation mask too")
            return cls()
        mask = np.asarray(mask, dtype=bool)
        if slices is not None:
            kept = {int(a): tuple(sorted({int(i) for i in idx if 0 <= int(i) < mask.shape[int(a)]}))
                    for a, idx in slices.items()}
            on_slices = np.zeros(mask.shape, dtype=bool)
            for axis, indices in kept.items():
                on_slices[_slice_index(mask.ndim, axis, list(indices))] = True
            return cls(mask & on_slices, kept)
        if mask.all():
            return cls()
        detected = _whole_slices(mask)
        return cls(mask, detected)

    def crop(self, box: Box) -> "ScoringRegion":
        """The same region seen through a bounding box (slice indices shifted, slices outside dropped)."""
        if self.mask is None:
            return self
        slices = None
        if self.slices is not None:
            slices = {}
            for axis, indices in self.slices.items():
                start, stop = box[axis].start or 0, box[axis].stop
                slices[axis] = tuple(i - start for i in indices if start <= i < stop)
        return ScoringRegion(self.mask[box], slices)


def score_structure(prediction: np.ndarray, reference: np.ndarray, spacing_mm: Sequence[float], *,
                    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
                    evaluation_mask: np.ndarray | ScoringRegion | None = None) -> StructureScore:
    """Score one binary structure: DSC, NSD at `tolerance_mm`, HD95 (mm), with the empty-mask rule applied.

    Args:
        prediction: boolean (or 0/1) mask, shape (X, Y, Z) (any number of dimensions when scored in full).
        reference: boolean (or 0/1) mask of the same shape.
        spacing_mm: voxel size along each axis, mm.
        tolerance_mm: NSD tolerance, mm (> 0).
        evaluation_mask: voxels to score (bool array of the same shape, e.g. a sparse reference's annotated
            slices) or a prepared `ScoringRegion`; None scores every voxel.

    Returns:
        A `StructureScore`; see the module docstring for the definitions and the empty-mask rules.
    """
    prediction = np.asarray(prediction).astype(bool, copy=False)
    reference = np.asarray(reference).astype(bool, copy=False)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from reference shape {reference.shape}")
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if spacing.shape != (prediction.ndim,) or not np.all(spacing > 0):
        raise ValueError(f"spacing_mm must give {prediction.ndim} positive voxel sizes, got {list(spacing_mm)}")
    if not tolerance_mm > 0:
        raise ValueError(f"tolerance_mm must be positive, got {tolerance_mm}")
    region = evaluation_mask if isinstance(evaluation_mask, ScoringRegion) else ScoringRegion.from_mask(
        evaluation_mask)
    if region.mask is not None:
        if region.mask.shape != prediction.shape:
            raise ValueError(f"evaluation mask shape {region.mask.shape} differs from the masks' {prediction.shape}")
        prediction = prediction & region.mask
        reference = reference & region.mask

    box = _bounding_box(prediction | reference, margin=1)
    if box is None:
        return StructureScore(math.nan, math.nan, math.nan, "both_empty")
    prediction, reference, region = prediction[box], reference[box], region.crop(box)
    n_pred, n_ref = int(np.count_nonzero(prediction)), int(np.count_nonzero(reference))
    if n_ref == 0:
        return StructureScore(0.0, 0.0, math.nan, "false_positive")
    if n_pred == 0:
        return StructureScore(0.0, 0.0, math.nan, "missed")
    dsc = 2.0 * np.count_nonzero(prediction & reference) / (n_pred + n_ref)

    if region.slices is not None:
        to_ref, to_pred = _slice_surface_distances(prediction, reference, spacing, region.slices)
    else:
        to_ref, to_pred = _surface_distances(prediction, reference, spacing)
    within = np.count_nonzero(to_ref <= tolerance_mm) + np.count_nonzero(to_pred <= tolerance_mm)
    nsd = within / (to_ref.size + to_pred.size)
    hd95 = float(np.percentile(np.concatenate([to_ref, to_pred]), HD_PERCENTILE))
    return StructureScore(float(dsc), float(nsd), hd95, "scored")


# ----------------------------------------------------------------------------------------------- surfaces


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a boolean mask: in it, with a face neighbour outside it (or on the array border)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _surface_distances(prediction: np.ndarray, reference: np.ndarray,
                       spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance of each prediction surface voxel to the reference surface, and the reverse), mm."""
    pred_points = np.argwhere(surface(prediction)) * spacing
    ref_points = np.argwhere(surface(reference)) * spacing
    return _nearest(pred_points, ref_points), _nearest(ref_points, pred_points)


def _slice_surface_distances(prediction: np.ndarray, reference: np.ndarray, spacing: np.ndarray,
                             slices: dict[int, tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Surface distances of the 2D contours on each annotated slice, pooled (module docstring, sparse).

    Within a slice holding both masks the distances are in-plane; contour points on a slice holding only one
    mask are measured in 3D to the other mask's contour points on all annotated slices.
    """
    to_ref: list[np.ndarray] = []
    to_pred: list[np.ndarray] = []
    pred_contours: list[np.ndarray] = []  # 3D mm coordinates of every contour point, for the one-sided slices
    ref_contours: list[np.ndarray] = []
    pred_alone: list[np.ndarray] = []
    ref_alone: list[np.ndarray] = []
    for axis, indices in slices.items():
        in_plane = np.delete(spacing, axis)
        for index in indices:
            pred_2d = np.take(prediction, index, axis=axis)
            ref_2d = np.take(reference, index, axis=axis)
            has_pred, has_ref = bool(pred_2d.any()), bool(ref_2d.any())
            if not (has_pred or has_ref):
                continue
            pred_points = np.argwhere(surface(pred_2d)) * in_plane if has_pred else np.empty((0, 2))
            ref_points = np.argwhere(surface(ref_2d)) * in_plane if has_ref else np.empty((0, 2))
            pred_3d = np.insert(pred_points, axis, index * spacing[axis], axis=1)
            ref_3d = np.insert(ref_points, axis, index * spacing[axis], axis=1)
            pred_contours.append(pred_3d)
            ref_contours.append(ref_3d)
            if has_pred and has_ref:
                to_ref.append(_nearest(pred_points, ref_points))
                to_pred.append(_nearest(ref_points, pred_points))
            elif has_pred:
                pred_alone.append(pred_3d)
            else:
                ref_alone.append(ref_3d)
    if pred_alone:
        to_ref.append(_nearest(np.concatenate(pred_alone), np.concatenate(ref_contours)))
    if ref_alone:
        to_pred.append(_nearest(np.concatenate(ref_alone), np.concatenate(pred_contours)))
    return (np.concatenate(to_ref) if to_ref else np.empty(0),
            np.concatenate(to_pred) if to_pred else np.empty(0))


def _nearest(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest target point (same units), exact."""
    if len(points) == 0:
        return np.empty(0)
    if len(targets) == 0:
        return np.full(len(points), np.inf)
    distances, _ = cKDTree(targets).query(points, k=1)
    return np.asarray(distances, dtype=np.float64)


# ----------------------------------------------------------------------------------------------- boxes


def _bounding_box(mask: np.ndarray, margin: int = 0) -> Box | None:
    """Smallest box holding every true voxel, grown by `margin` voxels (clipped to the array); None if empty."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def _slice_index(ndim: int, axis: int, indices: list[int]) -> tuple:
    index: list = [slice(None)] * ndim
    index[axis] = indices
    return tuple(index)


def _whole_slices(mask: np.ndarray) -> dict[int, tuple[int, ...]] | None:
    """{axis: indices} when `mask` is exactly the union of whole slices along one axis, else None."""
    if mask.ndim != 3:
        return None
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        touched = mask.any(axis=others)
        if np.array_equal(touched, mask.all(axis=others)):
            return {axis: tuple(int(i) for i in np.flatnonzero(touched))}
    return None
