"""The image half of preprocessing, shared by the cache (training) and the predictor (new scans).

reorient to RAS -> resample to the plan's spacing -> crop to the body -> normalise; the returned geometry is
what it takes to put a prediction back onto the input's exact grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unimos.data.plan_spec import ModelPlan
from unimos.data.volume import Volume
from unimos.errors import PlanError
from unimos.preprocess.normalise import body_bbox, body_mask, normalise
from unimos.preprocess.resample import orientation_to_ras, reorient, resample_image, target_shape


@dataclass(frozen=True)
class PreparedGeometry:
    """How the network's grid relates to the input: orientation transform, resampled grid, crop box."""

    original_shape: tuple[int, int, int]
    original_affine: np.ndarray
    ras_orientation: np.ndarray
    ras_shape: tuple[int, int, int]
    resampled_shape: tuple[int, int, int]
    resampled_affine: np.ndarray
    crop_box: tuple[tuple[int, int], ...]

    @property
    def crop(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in self.crop_box)

    @property
    def cropped_affine(self) -> np.ndarray:
        affine = self.resampled_affine.copy()
        affine[:3, 3] = (self.resampled_affine @ np.array([*(b[0] for b in self.crop_box), 1.0]))[:3]
        return affine


def prepare_image(channels: list[Volume], modality: str, plan: ModelPlan) -> tuple[np.ndarray, PreparedGeometry]:
    """Normalised (C, X, Y, Z) float32 array on the plan's grid, cropped to the body, and its geometry."""
    scheme = plan.normalisation.get(modality)
    if scheme is None:
        raise PlanError("plan", f"has no normalisation for modality {modality} (it knows "
                        f"{sorted(plan.normalisation)})", "use a model trained on this modality, or say --modality")
    original = channels[0]
    ornt = orientation_to_ras(original.affine)
    ras = [reorient(c, ornt) for c in channels]
    new_shape = target_shape(ras[0].shape, ras[0].spacing_mm, plan.target_spacing_mm)
    resampled = [resample_image(c, new_shape) for c in ras]
    box = tuple((0, n) for n in new_shape)
    if plan.crop_to_body:
        box = body_bbox(body_mask(resampled[0].array, modality))
    crop = tuple(slice(a, b) for a, b in box)
    image = np.stack([normalise(c.array[crop], modality, scheme) for c in resampled]).astype(np.float32)
    geometry = PreparedGeometry(original.shape, original.affine, ornt, ras[0].shape, tuple(new_shape),
                                resampled[0].affine, box)
    return image, geometry
