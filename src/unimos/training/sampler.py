"""Which case and which patch centre a training sample comes from.

Paper 002 draws class -> modality -> dataset -> case so that organs annotated in few sources are seen as
often as common ones; the chosen class fixes the patch centre, picked only among cases annotating that class.
Samplers are small classes with one job each; all randomness comes from a numpy Generator passed in, whose
state is saved in checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unimos.data.labels import foreground_box
from unimos.preprocess.cache import CachedCase
from unimos.utils.registry import Registry

MAX_CENTRES_PER_CLASS = 4000


@dataclass(frozen=True)
class Draw:
    """One sample to cut: case index in the sampler's list, patch centre (voxel),
    and the class that chose it (0 = none)."""

    case: int
    centre: tuple[int, ...]
    cls: int


@dataclass
class CaseIndex:
    """What a sampler needs to know of a cached case, computed once."""

    modality: str
    source: str
    annotated: frozenset[int]
    shape: tuple[int, ...]
    centres: dict[int, np.ndarray]  # class -> (N, 3) voxel coordinates of that class inside the annotated region
    roi: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (low, high exclusive) of random centres; None: all


def index_case(case: CachedCase, rng: np.random.Generator, roi_margin: Sequence[int] | None = None) -> CaseIndex:
    """Per class, a bounded random subset of the voxel coordinates where the class is labeled.

    With `roi_margin` (voxels per axis), random draws keep to the labeled organs' bounding box grown by it: the
    fine stage of a coarse-to-fine cascade (paper 001) trains only where the coarse stage will send it."""
    centres: dict[int, np.ndarray] = {}
    roi = None
    label = case.label()
    if label is not None:
        label = np.asarray(label)
        for cls in case.meta["annotated_classes"]:
            coords = np.argwhere(label == cls)
            if len(coords) > MAX_CENTRES_PER_CLASS:
                coords = coords[rng.choice(len(coords), MAX_CENTRES_PER_CLASS, replace=False)]
            if len(coords):
                centres[int(cls)] = coords.astype(np.int32)
        if roi_margin is not None:
            roi = foreground_box(label, roi_margin)
    return CaseIndex(case.meta["modality"], case.meta["source"], frozenset(case.meta["annotated_classes"]),
                     tuple(case.meta["shape"]), centres, roi)


class Sampler:
    """Base: draws a case and a centre; `foreground_fraction` of draws are class-centred, the rest random."""

    def __init__(self, cases: Sequence[CaseIndex], foreground_fraction: float = 0.67) -> None:
        if not cases:
            raise ValueError("a sampler needs at least one case")
        self.cases = list(cases)
        self.foreground_fraction = foreground_fraction
        self.classes = sorted({c for case in self.cases for c in case.centres})

    def draw(self, rng: np.random.Generator) -> Draw:
        if self.classes and rng.random() < self.foreground_fraction:
            return self.draw_foreground(rng)
        return self.draw_random(rng)

    def draw_random(self, rng: np.random.Generator) -> Draw:
        """A case (uniformly over modality -> source -> case) and a uniform random centre (inside its ROI if any)."""
        modality = _choice(rng, sorted({c.modality for c in self.cases}))
        source = _choice(rng, sorted({c.source for c in self.cases if c.modality == modality}))
        index = _choice(rng, [i for i, c in enumerate(self.cases) if c.source == source and c.modality == modality])
        return Draw(index, _random_centre(self.cases[index], rng), 0)

    def draw_foreground(self, rng: np.random.Generator) -> Draw:
        raise NotImplementedError

    def _centre_of(self, index: int, cls: int, rng: np.random.Generator) -> Draw:
        coords = self.cases[index].centres[cls]
        return Draw(index, tuple(int(v) for v in coords[rng.integers(0, len(coords))]), cls)


def _random_centre(case: CaseIndex, rng: np.random.Generator) -> tuple[int, ...]:
    low, high = case.roi if case.roi is not None else ((0,) * len(case.shape), case.shape)
    return tuple(int(rng.integers(lo, hi)) for lo, hi in zip(low, high))


def _choice(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(0, len(options)))]


SAMPLERS: Registry[Sampler] = Registry("sampler")


@SAMPLERS.register("cmd")
class ClassModalityDatasetSampler(Sampler):
    """Paper 002's hierarchy: class -> modality -> dataset -> case,
    each level uniform among what annotates the class."""

    def draw_foreground(self, rng: np.random.Generator) -> Draw:
        cls = _choice(rng, self.classes)
        having = [i for i, c in enumerate(self.cases) if cls in c.centres]
        modality = _choice(rng, sorted({self.cases[i].modality for i in having}))
        source = _choice(rng, sorted({self.cases[i].source for i in having if self.cases[i].modality == modality}))
        index = _choice(rng, [i for i in having if self.cases[i].source == source
                              and self.cases[i].modality == modality])
        return self._centre_of(index, cls, rng)


@SAMPLERS.register("mdc")
class ModalityDatasetClassSampler(Sampler):
    """Modality -> dataset -> class (among the dataset's annotated classes) -> case."""

    def draw_foreground(self, rng: np.random.Generator) -> Draw:
        with_fg = [c for c in self.cases if c.centres]
        modality = _choice(rng, sorted({c.modality for c in with_fg}))
        source = _choice(rng, sorted({c.source for c in with_fg if c.modality == modality}))
        members = [i for i, c in enumerate(self.cases) if c.source == source and c.modality == modality and c.centres]
        cls = _choice(rng, sorted({k for i in members for k in self.cases[i].centres}))
        index = _choice(rng, [i for i in members if cls in self.cases[i].centres])
        return self._centre_of(index, cls, rng)


@SAMPLERS.register("random")
class RandomSampler(Sampler):
    """Uniform over cases; the centre is a labeled voxel of a random annotated class of that case (or random)."""

    def draw_foreground(self, rng: np.random.Generator) -> Draw:
        index = int(rng.integers(0, len(self.cases)))
        if not self.cases[index].centres:
            return Draw(index, _random_centre(self.cases[index], rng), 0)
        return self._centre_of(index, _choice(rng, sorted(self.cases[index].centres)), rng)


def build_sampler(name: str, cases: Sequence[CaseIndex], foreground_fraction: float = 0.67) -> Sampler:
    return SAMPLERS.get(name)(cases, foreground_fraction)
