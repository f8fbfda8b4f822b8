"""Training batches: sampler draws -> patches from the cache -> tensors (image, label, region, candidate tables)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from unimos.preprocess.cache import CachedCase
from unimos.preprocess.slices import resize_slices, resized_position
from unimos.training.patches import cut_patch
from unimos.training.sampler import Draw, Sampler, build_sampler, index_case


class PatchSource:
    """Cuts batches of patches from cached cases, centred where a sampler says."""

    def __init__(self, cases: Sequence[CachedCase], patch_size: Sequence[int], sampler: str = "cmd",
                 foreground_fraction: float = 0.67, seed: int = 0, roi_margin: Sequence[int] | None = None,
                 slice_resize: int = 0) -> None:
        """`patch_size` of 3 values cuts 3D patches; of 2 values, axial slices (X, Y) through the drawn centre.
        `roi_margin` (voxels per axis) keeps random centres near the labeled organs (sampler.index_case).
        `slice_resize` > 0 (2D only): the slice is first resized to that square, the patch cut from it."""
        self.cases = list(cases)
        self.slices = len(patch_size) == 2
        if slice_resize and not self.slices:
            raise ValueError("slice_resize needs 2D patches")
        self.slice_resize = int(slice_resize)
        self.patch_size = tuple(int(p) for p in patch_size) + ((1,) if self.slices else ())
        index_rng = np.random.default_rng(seed)
        self.sampler: Sampler = build_sampler(sampler, [index_case(c, index_rng, roi_margin) for c in self.cases],
                                              foreground_fraction)
        self._fill = [float(np.min(c.image())) for c in self.cases]
        self.num_classes = len(self.cases[0].meta["candidate_table"]) if self.cases else 0

    def cut(self, draw: Draw) -> dict[str, np.ndarray]:
        """One patch (image, label, region) for a draw; overhang is padded with no supervision."""
        if self.slice_resize:
            return self._cut_resized_slice(draw)
        case = self.cases[draw.case]
        image = cut_patch(case.image(), draw.centre, self.patch_size, self._fill[draw.case])
        label_array, region_array = case.label(), case.region()
        if label_array is None:
            label = np.zeros(self.patch_size, dtype=np.int64)
            region = np.zeros(self.patch_size, dtype=bool)
        else:
            label = cut_patch(label_array, draw.centre, self.patch_size, 0).astype(np.int64)
            region = cut_patch(region_array, draw.centre, self.patch_size, False)
        if self.slices:
            image, label, region = image[..., 0], label[..., 0], region[..., 0]
        return {"image": image, "label": label, "region": region}

    def _cut_resized_slice(self, draw: Draw) -> dict[str, np.ndarray]:
        """The draw's axial slice resized to slice_resize^2 (preprocess.slices), a patch cut around the centre."""
        case = self.cases[draw.case]
        z = int(draw.centre[2])
        size = (self.slice_resize, self.slice_resize)
        image = torch.from_numpy(np.array(case.image()[..., z], dtype=np.float32))[None]
        shape = image.shape[2:]
        image = resize_slices(image, size)[0].numpy()
        label_array, region_array = case.label(), case.region()
        if label_array is None:
            label, region = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=bool)
        else:
            pair = np.stack([np.asarray(label_array[..., z]), np.asarray(region_array[..., z])]).astype(np.int64)
            label, region = resize_slices(torch.from_numpy(pair)[None], size, labels=True)[0].numpy()
            region = region.astype(bool)
        centre = resized_position(draw.centre[:2], shape, size)
        patch = self.patch_size[:2]
        return {"image": cut_patch(image, centre, patch, self._fill[draw.case]),
                "label": cut_patch(label, centre, patch, 0), "region": cut_patch(region, centre, patch, False)}

    def batch(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A batch of `batch_size` patches with each sample's candidate table."""
        draws = [self.sampler.draw(rng) for _ in range(batch_size)]
        return self.batch_from_draws(draws)

    def batch_from_draws(self, draws: Sequence[Draw]) -> dict[str, torch.Tensor]:
        parts = [self.cut(d) for d in draws]
        tables = np.stack([np.asarray(self.cases[d.case].meta["candidate_table"], dtype=bool) for d in draws])
        return {
            "image": torch.from_numpy(np.stack([p["image"] for p in parts]).astype(np.float32)),
            "label": torch.from_numpy(np.stack([p["label"] for p in parts])),
            "region": torch.from_numpy(np.stack([p["region"] for p in parts])),
            "tables": torch.from_numpy(tables),
            "incomplete": torch.tensor([has_unknown_classes(self.cases[d.case].meta) for d in draws]),
            "sliced": torch.tensor([is_sparse(self.cases[d.case].meta) for d in draws]),
        }


def has_unknown_classes(meta: dict) -> bool:
    """Whether some voxel of the case has an unknown class: a partial label (a candidate set of several classes)
    or a sparse one (unannotated slices); padding outside the image does not count."""
    table = np.asarray(meta["candidate_table"], dtype=bool)
    return bool(meta.get("has_label")) and (bool((table.sum(axis=1) > 1).any())
                                            or meta.get("annotated_slices") is not None)


def is_sparse(meta: dict) -> bool:
    """Whether the case's label is sparse (annotated slices, or a sparse source's 'ignore' voxels)."""
    return meta.get("annotated_slices") is not None or meta.get("kind") == "sparse"

