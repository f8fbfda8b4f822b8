"""A synthetic abdominal collection for trying unimos end to end: `make_demo_data(out)`.

It writes real NIfTI files and a manifest that mixes every kind of annotation unimos handles: a fully labeled
CT source, two partially labeled CT sources (one with the two kidneys merged into one label value), a sparsely
labeled CT source (every 5th axial slice), a partially labeled MR source, an unlabeled CT source and a held-out
CT test source. For every case the complete 9-class label is written too, with a second manifest that treats
every source as fully labeled (an upper bound to compare with).

The anatomy is drawn analytically on each case's own voxel grid, in world RAS+ millimetres (nibabel: +x towards
the patient's right, +y anterior, +z superior): a body outline (skin fat, muscle wall, intra-abdominal fat),
spine, ribs, psoas and paraspinal muscles, lung bases, bowel loops, and the nine organs as smoothly warped
ellipsoids and swept tubes, each jittered per patient (size, position, rotation, low-frequency shape). Every
organ is present and visible in every image, also where a source does not annotate it, so treating unannotated
organs as background is visibly wrong. All randomness flows from `np.random.default_rng(seed)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml
from scipy import ndimage

from unimos.errors import OutputError
from unimos.utils.atomic import atomic_path, write_text_atomic

CLASSES: tuple[str, ...] = ("liver", "spleen", "kidney_right", "kidney_left", "pancreas", "aorta",
                            "inferior_vena_cava", "stomach", "gallbladder")
"""The demo taxonomy; label value i+1 in the complete label maps is CLASSES[i]."""

COMPLETE_LABELS: dict[int, str] = {i + 1: name for i, name in enumerate(CLASSES)}

FOV_LR_MM = 240.0
FOV_AP_MM = 180.0
FOV_SI_MM = (150.0, 180.0)
INPLANE_MM = (0.7, 1.5)
INPLANE_QUICK_MM = (1.2, 1.5)
SLICE_MM = (1.5, 5.0)
SLICE_QUICK_MM = (3.0, 5.0)
MAX_VOXELS = 4_500_000
"""Per-case voxel budget (2 CPU cores): fine in-plane spacings are drawn with thicker slices."""
SPARSE_STEP = 5

LabelName = str | tuple[str, str]


@dataclass(frozen=True)
class DemoSource:
    """One source of the demo collection and how its label files are written."""

    name: str
    modality: str
    kind: str
    count: int
    quick_count: int
    labels: dict[int, LabelName] | None
    split: str = "train"


SOURCES: tuple[DemoSource, ...] = (
    DemoSource("ct_full", "CT", "full", 3, 2, dict(COMPLETE_LABELS)),
    DemoSource("ct_abdomen_a", "CT", "partial", 6, 3,
               {1: "liver", 2: "spleen", 3: "stomach", 4: "gallbladder"}),
    DemoSource("ct_abdomen_b", "CT", "partial", 6, 3,
               {1: ("kidney_right", "kidney_left"), 2: "pancreas", 3: "aorta", 4: "inferior_vena_cava"}),
    DemoSource("ct_sparse", "CT", "sparse", 4, 2, dict(COMPLETE_LABELS)),
    DemoSource("mr_partial", "MR", "partial", 4, 2,
               {1: "liver", 2: "spleen", 3: "kidney_left", 4: "kidney_right"}),
    DemoSource("ct_unlabeled", "CT", "unlabeled", 6, 3, None),
    DemoSource("ct_test", "CT", "full", 5, 2, dict(COMPLETE_LABELS), split="test"),
)

# The semi-supervised demo (`unimos demo --ssl`): labels scarce, unlabeled scans plenty, so that what the unlabeled
# scans carry can show (with 3 labeled CTs and 6 unlabeled, their complete labels added only +0.012 mean DSC at
# 500 iterations: bench/README.md, "Semi-supervised ceiling"). Counts chosen by measuring that ceiling on a
# development seed (bench/ssl_variants.py).
SSL_SOURCES: tuple[DemoSource, ...] = (
    DemoSource("ct_labeled", "CT", "full", 1, 1, dict(COMPLETE_LABELS)),
    DemoSource("ct_unlabeled", "CT", "unlabeled", 12, 4, None),
    DemoSource("ct_test", "CT", "full", 5, 2, dict(COMPLETE_LABELS), split="test"),
)

# ----------------------------------------------------------------------------------------------------------------
# Tissue codes (what the image is painted from; the label map is painted alongside).

T_AIR, T_FAT, T_MUSCLE, T_CAVITY, T_CORTICAL, T_CANCELLOUS, T_CSF, T_DISC, T_RIB = range(9)
T_LUNG, T_BOWEL_WALL, T_BOWEL_CONTENT, T_BOWEL_AIR = range(9, 13)
T_LIVER, T_HEP_VESSEL, T_SPLEEN, T_KID_CORTEX, T_KID_MEDULLA, T_PANCREAS = range(13, 19)
T_AORTA, T_IVC, T_STOMACH_WALL, T_STOMACH_CONTENT, T_STOMACH_AIR, T_GALLBLADDER = range(19, 25)
N_TISSUES = 25

# (mean, per-patient jitter sd); CT in HU, MR in arbitrary units (T1-like, fat bright).
_CT_TABLE: dict[int, tuple[float, float]] = {
    T_AIR: (-1000, 0), T_FAT: (-100, 8), T_MUSCLE: (50, 5), T_CAVITY: (-95, 8), T_CORTICAL: (700, 40),
    T_CANCELLOUS: (380, 40), T_CSF: (12, 3), T_DISC: (85, 8), T_RIB: (520, 50), T_LUNG: (-850, 25),
    T_BOWEL_WALL: (45, 8), T_BOWEL_CONTENT: (20, 10), T_BOWEL_AIR: (-900, 30), T_LIVER: (60, 5),
    T_HEP_VESSEL: (150, 15), T_SPLEEN: (50, 4), T_KID_CORTEX: (155, 12), T_KID_MEDULLA: (105, 12),
    T_PANCREAS: (40, 4), T_AORTA: (215, 20), T_IVC: (130, 12), T_STOMACH_WALL: (42, 5),
    T_STOMACH_CONTENT: (20, 5), T_STOMACH_AIR: (-800, 30), T_GALLBLADDER: (10, 3),
}
_MR_TABLE: dict[int, tuple[float, float]] = {
    T_AIR: (0, 0), T_FAT: (1150, 60), T_MUSCLE: (300, 20), T_CAVITY: (1080, 60), T_CORTICAL: (40, 10),
    T_CANCELLOUS: (450, 40), T_CSF: (150, 20), T_DISC: (260, 25), T_RIB: (60, 15), T_LUNG: (30, 10),
    T_BOWEL_WALL: (380, 30), T_BOWEL_CONTENT: (250, 40), T_BOWEL_AIR: (15, 5), T_LIVER: (430, 25),
    T_HEP_VESSEL: (120, 20), T_SPLEEN: (640, 30), T_KID_CORTEX: (580, 30), T_KID_MEDULLA: (430, 30),
    T_PANCREAS: (520, 30), T_AORTA: (70, 15), T_IVC: (110, 20), T_STOMACH_WALL: (390, 25),
    T_STOMACH_CONTENT: (230, 30), T_STOMACH_AIR: (15, 5), T_GALLBLADDER: (170, 25),
}


# ----------------------------------------------------------------------------------------------------------------
# Geometry helpers.


class _Grid:
    """An axis-aligned RAS voxel grid: voxel (i, j, k) sits at origin + spacing * (i, j, k) in world mm."""

    def __init__(self, spacing: Sequence[float], shape: Sequence[int], origin: Sequence[float]) -> None:
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.shape = tuple(int(s) for s in shape)
        self.origin = np.asarray(origin, dtype=np.float64)
        self.axes = [(self.origin[d] + self.spacing[d] * np.arange(self.shape[d])).astype(np.float32)
                     for d in range(3)]

    def ras_affine(self) -> np.ndarray:
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = self.origin
        return affine

    def index_range(self, d: int, lo: float, hi: float) -> tuple[int, int]:
        i0 = max(0, int(math.ceil((lo - self.origin[d]) / self.spacing[d])))
        i1 = min(self.shape[d], int(math.floor((hi - self.origin[d]) / self.spacing[d])) + 1)
        return i0, i1

    def box(self, lo: Sequence[float], hi: Sequence[float]):
        """Slices and broadcastable world coordinates of the voxels inside [lo, hi], or None when empty."""
        slices = []
        for d in range(3):
            i0, i1 = self.index_range(d, lo[d], hi[d])
            if i1 <= i0:
                return None
            slices.append(slice(i0, i1))
        x = self.axes[0][slices[0]][:, None, None]
        y = self.axes[1][slices[1]][None, :, None]
        z = self.axes[2][slices[2]][None, None, :]
        return tuple(slices), x, y, z


@dataclass(frozen=True)
class _Warp:
    """A smooth displacement: sum of a few low-frequency plane waves (amplitude vectors in mm)."""

    amps: np.ndarray  # (K, 3)
    waves: np.ndarray  # (K, 3) rad/mm
    phases: np.ndarray  # (K,)

    @property
    def reach(self) -> float:
        return float(np.linalg.norm(self.amps, axis=1).sum())

    def apply(self, x: np.ndarray, y: np.ndarray, z: np.ndarray):
        xd, yd, zd = x, y, z
        for amp, wave, phase in zip(self.amps, self.waves, self.phases):
            s = np.sin(float(wave[0]) * x + float(wave[1]) * y + float(wave[2]) * z + float(phase))
            xd = xd + float(amp[0]) * s
            yd = yd + float(amp[1]) * s
            zd = zd + float(amp[2]) * s
        return xd, yd, zd


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _random_warp(rng: np.random.Generator, amp: tuple[float, float] = (1.5, 4.0),
                 wavelength: tuple[float, float] = (70.0, 150.0), terms: int = 3) -> _Warp:
    amps = np.stack([_unit(rng) * rng.uniform(*amp) for _ in range(terms)])
    waves = np.stack([_unit(rng) * (2 * math.pi / rng.uniform(*wavelength)) for _ in range(terms)])
    phases = rng.uniform(0, 2 * math.pi, size=terms)
    return _Warp(amps, waves, phases)


def _rotation(degrees_xyz: Sequence[float]) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx for angles in degrees about the world axes."""
    ax, ay, az = (math.radians(a) for a in degrees_xyz)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


class _Ellipsoids:
    """Union of warped ellipsoids; q < 1 inside (q = the smallest normalised radius over the parts)."""

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], warp: _Warp) -> None:
        self.parts = parts  # (centre, semi-axes, rotation whose columns are the ellipsoid's axes)
        self.warp = warp

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        pad = self.warp.reach + 1.0
        lo = np.min([c - np.max(a) for c, a, _ in self.parts], axis=0) - pad
        hi = np.max([c + np.max(a) for c, a, _ in self.parts], axis=0) + pad
        return lo, hi

    def q(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        xd, yd, zd = self.warp.apply(x, y, z)
        best = None
        for centre, semi, rot in self.parts:
            dx, dy, dz = xd - float(centre[0]), yd - float(centre[1]), zd - float(centre[2])
            q2 = None
            for j in range(3):
                u = (float(rot[0, j]) * dx + float(rot[1, j]) * dy + float(rot[2, j]) * dz) / float(semi[j])
                q2 = u * u if q2 is None else q2 + u * u
            best = q2 if best is None else np.minimum(best, q2)
        return np.sqrt(np.broadcast_to(best, np.broadcast_shapes(x.shape, y.shape, z.shape)))


class _Sweep:
    """A warped tube: union of balls along a polyline (radii vary); q < 1 inside.

    `squash` scales the cross-section per world axis (e.g. a flattened vein).
    """

    def __init__(self, points: np.ndarray, radii: np.ndarray, warp: _Warp,
                 squash: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.radii = np.asarray(radii, dtype=np.float64)
        self.warp = warp
        self.squash = np.asarray(squash, dtype=np.float64)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        pad = self.warp.reach + 1.0
        reach = self.radii[:, None] * self.squash[None, :]
        return (self.points - reach).min(axis=0) - pad, (self.points + reach).max(axis=0) + pad

    def q(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        xd, yd, zd = (np.broadcast_to(a, shape) for a in self.warp.apply(x, y, z))
        q2 = np.full(shape, np.inf, dtype=np.float32)
        axes = (x.ravel(), y.ravel(), z.ravel())
        pad = self.warp.reach + 1.0
        for point, radius in zip(self.points, self.radii):
            reach = radius * self.squash + pad
            sub = []
            for d in range(3):
                i0, i1 = np.searchsorted(axes[d], [point[d] - reach[d], point[d] + reach[d]])
                if i1 <= i0:
                    break
                sub.append(slice(int(i0), int(i1)))
            else:
                sub_t = tuple(sub)
                d2 = ((xd[sub_t] - float(point[0])) / float(self.squash[0])) ** 2
                d2 += ((yd[sub_t] - float(point[1])) / float(self.squash[1])) ** 2
                d2 += ((zd[sub_t] - float(point[2])) / float(self.squash[2])) ** 2
                np.minimum(q2[sub_t], d2 / float(radius * radius), out=q2[sub_t])
        return np.sqrt(q2)


def _polyline(control: np.ndarray, radii: Sequence[float], step: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline through control points every `step` mm, interpolating the radii."""
    control = np.asarray(control, dtype=np.float64)
    seg = np.linalg.norm(np.diff(control, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(math.ceil(arc[-1] / step)) + 1)
    t = np.linspace(0.0, arc[-1], n)
    points = np.stack([np.interp(t, arc, control[:, d]) for d in range(3)], axis=1)
    return points, np.interp(t, arc, np.asarray(radii, dtype=np.float64))


# ----------------------------------------------------------------------------------------------------------------
# One synthetic patient.


@dataclass
class _Body:
    centre: np.ndarray  # world (x, y) of the body's centre
    semi: np.ndarray  # outer semi-axes (x, y) in mm
    scale: np.ndarray  # anatomy scale (x, y, z) relative to the nominal patient
    diaphragm: float  # mm offset of the diaphragm


@dataclass
class _Organ:
    name: str
    shape: _Ellipsoids | _Sweep
    tissue: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray] | int


_NOMINAL_SEMI = np.array([108.0, 78.0])


def _sample_body(rng: np.random.Generator) -> _Body:
    semi = np.array([rng.uniform(102.0, 112.0), rng.uniform(74.0, 82.0)])
    scale = np.array([semi[0] / _NOMINAL_SEMI[0], semi[1] / _NOMINAL_SEMI[1], rng.uniform(0.95, 1.05)])
    return _Body(rng.uniform(-3.0, 3.0, size=2), semi, scale, rng.uniform(-6.0, 6.0))


def _place(rng: np.random.Generator, body: _Body, nominal: Sequence[float], shift_sd: float = 2.5) -> np.ndarray:
    """Nominal anatomy position (mm, relative to the body centre) -> jittered world position."""
    p = np.asarray(nominal, dtype=np.float64) * body.scale
    p[:2] += body.centre
    return p + np.clip(rng.normal(0.0, shift_sd, size=3), -2.5 * shift_sd, 2.5 * shift_sd)


def _ellipsoid(rng: np.random.Generator, body: _Body, centre: Sequence[float], semi: Sequence[float],
               angles: Sequence[float] = (0, 0, 0), size_jitter: float = 0.12, angle_jitter: float = 8.0):
    c = _place(rng, body, centre)
    a = np.asarray(semi, dtype=np.float64) * rng.uniform(1 - size_jitter, 1 + size_jitter, size=3)
    rot = _rotation(np.asarray(angles, dtype=np.float64) + rng.uniform(-angle_jitter, angle_jitter, size=3))
    return c, a, rot


def _sweep(rng: np.random.Generator, body: _Body, control: Sequence[Sequence[float]], radii: Sequence[float],
           step: float, size_jitter: float = 0.12, shift_sd: float = 2.5, warp: _Warp | None = None,
           squash: Sequence[float] = (1.0, 1.0, 1.0)) -> _Sweep:
    ctrl = np.stack([_place(rng, body, p, shift_sd) for p in control])
    r = np.asarray(radii, dtype=np.float64) * rng.uniform(1 - size_jitter, 1 + size_jitter)
    points, rads = _polyline(ctrl, r, step)
    return _Sweep(points, rads, warp or _random_warp(rng), squash)


def _sample_organs(rng: np.random.Generator, body: _Body) -> list[_Organ]:
    """The nine organs in painting priority (earlier ones win where shapes touch)."""
    organs: list[_Organ] = []
    wiggle = rng.uniform(-4.0, 4.0, size=(4, 2))
    aorta = [(-9 + wiggle[0, 0], -9 + wiggle[0, 1], -100), (-8, -8, -30), (-10 + wiggle[1, 0], -10, 30),
             (-11, -14 + wiggle[1, 1], 110)]
    organs.append(_Organ("aorta", _sweep(rng, body, aorta, [10.0, 10.0, 10.5, 11.0], 3.0, size_jitter=0.1,
                                          shift_sd=1.0, warp=_random_warp(rng, (0.5, 1.5))), T_AORTA))
    ivc = [(20 + wiggle[2, 0], -9, -100), (20, -8 + wiggle[2, 1], -20), (19 + wiggle[3, 0], -6, 40),
           (14, -4 + wiggle[3, 1], 62)]
    organs.append(_Organ("inferior_vena_cava",
                         _sweep(rng, body, ivc, [10.0, 10.0, 11.0, 10.0], 3.0, size_jitter=0.1, shift_sd=1.0,
                                warp=_random_warp(rng, (0.5, 1.5)), squash=(1.0, 0.72, 1.0)), T_IVC))

    def kidney_tissue(q, x, y, z):
        return np.where(q > 0.68, T_KID_CORTEX, T_KID_MEDULLA)

    right = _ellipsoid(rng, body, (46, -28, -22), (19, 15, 44), angles=(-12, 14, 20))
    organs.append(_Organ("kidney_right", _Ellipsoids([right], _random_warp(rng, (1.0, 2.5))), kidney_tissue))
    left = _ellipsoid(rng, body, (-46, -27, -10), (19, 15, 44), angles=(-12, -14, -20))
    organs.append(_Organ("kidney_left", _Ellipsoids([left], _random_warp(rng, (1.0, 2.5))), kidney_tissue))
    gb = _ellipsoid(rng, body, (30, 40, -2), (11, 21, 12), angles=(35, 0, -15), size_jitter=0.15)
    organs.append(_Organ("gallbladder", _Ellipsoids([gb], _random_warp(rng, (0.8, 2.0))), T_GALLBLADDER))
    pancreas = [(18, 8, -16), (4, 14, -8), (-20, 12, -2), (-46, -4, 8), (-58, -13, 14)]
    organs.append(_Organ("pancreas", _sweep(rng, body, pancreas, [12.0, 8.0, 8.0, 8.5, 6.5], 2.5,
                                            size_jitter=0.12, shift_sd=2.0), T_PANCREAS))
    spleen = _ellipsoid(rng, body, (-70, -26, 36), (15, 38, 33), angles=(10, 0, -35))
    organs.append(_Organ("spleen", _Ellipsoids([spleen], _random_warp(rng)), T_SPLEEN))
    organs.append(_Organ("lung", None, T_LUNG))  # type: ignore[arg-type]  # painted by the diaphragm rule
    stomach = [(-46, -6, 54), (-42, 14, 34), (-32, 26, 16), (-4, 34, 2), (14, 26, -4)]
    stomach_shape = _sweep(rng, body, stomach, [24.0, 22.0, 19.0, 13.0, 9.0], 3.0, shift_sd=2.5)
    air_level = float((stomach_shape.points[:, 1] + stomach_shape.radii * 0.9).max()) - rng.uniform(9.0, 15.0)

    def stomach_tissue(q, x, y, z):
        out = np.where(q > 0.86, T_STOMACH_WALL, T_STOMACH_CONTENT)
        return np.where((q <= 0.86) & (y > air_level), T_STOMACH_AIR, out)

    organs.append(_Organ("stomach", stomach_shape, stomach_tissue))
    right_lobe = _ellipsoid(rng, body, (46, 2, 30), (46, 54, 46), angles=(0, 0, 10))
    left_lobe = _ellipsoid(rng, body, (-6, 26, 42), (40, 24, 26), angles=(0, 10, -10), angle_jitter=6.0)
    organs.append(_Organ("liver", _Ellipsoids([right_lobe, left_lobe], _random_warp(rng, (2.0, 5.0))),
                         T_LIVER))
    return organs


def _hepatic_vessels(rng: np.random.Generator, body: _Body) -> list[_Sweep]:
    root = (16, -4, 55)
    ends = [(70, -12, 48), (38, 28, 50), (-16, 28, 50), (40, -6, 10)]
    return [_sweep(rng, body, [root, end], [4.5, 2.5], 2.0, size_jitter=0.1, shift_sd=3.0,
                   warp=_random_warp(rng, (1.0, 3.0))) for end in ends]


def _bowel(rng: np.random.Generator, body: _Body) -> list[_Sweep]:
    loops: list[_Sweep] = []
    for side in (1.0, -1.0):  # ascending and descending colon
        loops.append(_sweep(rng, body, [(66 * side, 8, -110), (68 * side, 6, -40), (62 * side, 10, 0)],
                            [14.0, 14.0, 12.0], 3.0, shift_sd=3.0))
    loops.append(_sweep(rng, body, [(60, 12, 0), (20, 40, -24), (-25, 40, -22), (-60, 10, -4)],
                        [12.0, 12.0, 12.0, 12.0], 3.0, shift_sd=4.0))  # transverse colon
    for _ in range(int(rng.integers(7, 11))):  # small bowel loops
        centre = (rng.uniform(-50, 50), rng.uniform(5, 50), rng.uniform(-75, -25))
        end = np.asarray(centre) + rng.normal(0, 14, size=3)
        loops.append(_sweep(rng, body, [centre, tuple(end)], [rng.uniform(7, 11)] * 2, 2.5, shift_sd=0.0))
    return loops


@dataclass
class _Phantom:
    tissue: np.ndarray  # uint8 tissue codes on the RAS grid
    label: np.ndarray  # uint8 complete label (1..9 = CLASSES)


def _body_layers(grid: _Grid, body: _Body) -> np.ndarray:
    """2D (x, y) tissue map of the body cross-section: fat, muscle wall, cavity, spine, paraspinal muscles."""
    x = grid.axes[0][:, None] - np.float32(body.centre[0])
    y = grid.axes[1][None, :] - np.float32(body.centre[1])
    a, b = body.semi

    def inside(depth: float, cx: float = 0.0, cy: float = 0.0, sa: float | None = None, sb: float | None = None):
        sa = a - depth if sa is None else sa
        sb = b - depth if sb is None else sb
        return ((x - cx) / sa) ** 2 + ((y - cy) / sb) ** 2 <= 1.0

    sx, sy = body.scale[0], body.scale[1]
    layers = np.full(np.broadcast_shapes(x.shape, y.shape), T_AIR, dtype=np.uint8)
    layers[inside(0.0)] = T_FAT
    layers[inside(8.0 * sx)] = T_MUSCLE
    layers[inside(17.0 * sx)] = T_CAVITY
    for side in (1.0, -1.0):
        layers[inside(0, 22 * side * sx, -58 * sy, 15 * sx, 13 * sy)] = T_MUSCLE  # paraspinal
    layers[inside(0, 0, -36 * sy, 16 * sx, 14 * sy)] = T_CORTICAL  # vertebral body
    layers[inside(0, 0, -36 * sy, 13.5 * sx, 11.5 * sy)] = T_CANCELLOUS
    layers[inside(0, 0, -58 * sy, 11 * sx, 10 * sy)] = T_CORTICAL  # neural arch
    layers[inside(0, 0, -68 * sy, 3.5 * sx, 9 * sy)] = T_CORTICAL  # spinous process
    layers[inside(0, 0, -57 * sy, 6.5 * sx, 6 * sy)] = T_CSF  # canal
    layers[~inside(0.0)] = T_AIR
    return layers


def _paint_ribs(grid: _Grid, body: _Body, tissue: np.ndarray, rng: np.random.Generator) -> None:
    x = grid.axes[0][:, None] - np.float32(body.centre[0])
    y = grid.axes[1][None, :] - np.float32(body.centre[1])
    a, b = body.semi - 12.0 * body.scale[0]
    rho = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    psi = np.abs(np.arctan2(x / a, -y / b))  # 0 posterior, pi/2 lateral, pi anterior
    ring = (np.abs(rho - 1.0) * 0.5 * (a + b) < 3.0) & (psi > 0.38)
    ii, jj = np.nonzero(ring)
    z = grid.axes[2][None, :]
    for top, reach in ((150.0, 2.3), (122.0, 2.3), (94.0, 2.2), (66.0, 2.0), (38.0, 1.4), (10.0, 1.0)):
        top = top * body.scale[2] + rng.uniform(-4, 4)
        sel = psi[ii, jj] < reach
        centre = top - 40.0 * psi[ii, jj][sel]
        hit = np.abs(z - centre[:, None]) < 4.5
        pi, pk = np.nonzero(hit)
        tissue[ii[sel][pi], jj[sel][pi], pk] = T_RIB


def _rasterise(grid: _Grid, rng: np.random.Generator) -> _Phantom:
    body = _sample_body(rng)
    organs = _sample_organs(rng, body)
    vessels = _hepatic_vessels(rng, body)
    bowel = _bowel(rng, body)
    layers = _body_layers(grid, body)
    tissue = np.ascontiguousarray(np.broadcast_to(layers[:, :, None], grid.shape))
    # Intervertebral discs every ~30 mm.
    z = grid.axes[2]
    phase = rng.uniform(0, 30)
    disc = ((z - phase) % (30.0 * body.scale[2])) < 6.0
    if disc.any():
        sub = tissue[:, :, disc]
        sub[sub == T_CANCELLOUS] = T_DISC
        tissue[:, :, disc] = sub
    _paint_ribs(grid, body, tissue, rng)
    label = np.zeros(grid.shape, dtype=np.uint8)
    class_value = {name: i + 1 for i, name in enumerate(CLASSES)}

    def paint(shape, tissue_of, value: int, only=None) -> None:
        lo, hi = shape.bounds()
        box = grid.box(lo, hi)
        if box is None:
            return
        sl, bx, by, bz = box
        q = shape.q(bx, by, bz)
        free = tissue[sl] == T_CAVITY if only is None else only(sl)
        inside = (q < 1.0) & free
        if not inside.any():
            return
        codes = tissue_of(q, bx, by, bz) if callable(tissue_of) else tissue_of
        if isinstance(codes, np.ndarray):
            codes = np.broadcast_to(codes, inside.shape)[inside]
        tissue[sl][inside] = codes
        if value:
            label[sl][inside] = value

    for organ in organs:
        if organ.name == "lung":
            _paint_lungs(grid, body, tissue)
        else:
            paint(organ.shape, organ.tissue, class_value[organ.name])
    liver = class_value["liver"]
    for vessel in vessels:
        paint(vessel, T_HEP_VESSEL, 0, only=lambda sl: label[sl] == liver)
    for side in (1.0, -1.0):  # psoas muscles, widening downwards
        psoas = _sweep(rng, body, [(24 * side, -30, 20), (30 * side, -28, -40), (36 * side, -24, -110)],
                       [4.0, 11.0, 15.0], 3.0, shift_sd=1.5)
        paint(psoas, T_MUSCLE, 0)
    bowel_air = rng.uniform(0, 1, size=len(bowel)) < 0.45

    for loop, has_air in zip(bowel, bowel_air):
        def bowel_tissue(q, x, y, z, has_air=has_air):
            out = np.where(q > 0.8, T_BOWEL_WALL, T_BOWEL_CONTENT)
            return np.where(q < 0.55, T_BOWEL_AIR, out) if has_air else out

        paint(loop, bowel_tissue, 0)
    return _Phantom(tissue, label)


def _paint_lungs(grid: _Grid, body: _Body, tissue: np.ndarray) -> None:
    """Lung bases: free cavity above a domed diaphragm (posterior and lateral recesses reach lower)."""
    x = grid.axes[0][:, None] - np.float32(body.centre[0])
    y = grid.axes[1][None, :] - np.float32(body.centre[1])
    zl = (48.0 + 0.35 * (y / body.scale[1] + 64.0) - 0.0015 * (x / body.scale[0]) ** 2) * body.scale[2]
    zl = zl + np.float32(body.diaphragm)
    zl = np.where(np.abs(x) < 14.0, np.inf, zl)  # the mediastinum stays soft tissue / fat
    k0, _ = grid.index_range(2, float(zl.min()), 1e9)
    if k0 >= grid.shape[2]:
        return
    sub = tissue[:, :, k0:]
    lung = (sub == T_CAVITY) & (grid.axes[2][None, None, k0:] > zl[:, :, None])
    sub[lung] = T_LUNG


# ----------------------------------------------------------------------------------------------------------------
# Images.


def _intensity_table(rng: np.random.Generator, modality: str) -> np.ndarray:
    table = _CT_TABLE if modality == "CT" else _MR_TABLE
    lut = np.zeros(N_TISSUES, dtype=np.float32)
    for code, (mean, sd) in table.items():
        lut[code] = mean + (rng.normal(0.0, sd) if sd else 0.0)
    if modality == "CT":
        lut[T_AORTA] = rng.uniform(180.0, 250.0)
    else:
        if rng.uniform() < 0.5:  # contrast-enhanced: bright vessels instead of flow voids
            lut[T_AORTA] = rng.uniform(900.0, 1100.0)
            lut[T_IVC] = rng.uniform(750.0, 900.0)
            lut[T_HEP_VESSEL] = rng.uniform(700.0, 850.0)
        lut *= rng.uniform(0.85, 1.15)
    return lut


def _ct_image(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = _intensity_table(rng, "CT")[tissue]
    img = ndimage.gaussian_filter(img, sigma=0.7, mode="nearest", truncate=3.0)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(8.0, 20.0))
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16)


def _bias_field(grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field, about 0.7..1.4, from a few low-frequency cosines over the field of view."""
    u = [(grid.axes[d] - grid.axes[d].mean()) / max(float(np.ptp(grid.axes[d])), 1.0) for d in range(3)]
    x, y, z = u[0][:, None, None], u[1][None, :, None], u[2][None, None, :]
    log_field = np.zeros(grid.shape, dtype=np.float32)
    for _ in range(4):
        w = rng.normal(0.0, 2.2, size=3)
        log_field += np.float32(rng.uniform(0.05, 0.12)) * np.cos(
            np.float32(w[0]) * x + np.float32(w[1]) * y + np.float32(w[2]) * z + np.float32(rng.uniform(0, 6.3)))
    return np.exp(log_field)


def _mr_image(tissue: np.ndarray, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    img = _intensity_table(rng, "MR")[tissue]
    img = ndimage.gaussian_filter(img, sigma=0.7, mode="nearest", truncate=3.0)
    img *= _bias_field(grid, rng)
    sigma = np.float32(rng.uniform(15.0, 35.0))
    real = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
    imag = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    img = np.sqrt(real * real + imag * imag)  # Rician magnitude
    return np.clip(np.rint(img), 0, 32767).astype(np.int16)


# ----------------------------------------------------------------------------------------------------------------
# Cases and files.


@dataclass(frozen=True)
class _CaseRecord:
    case_id: str
    image: str
    label: str | None
    complete: str
    split: str
    annotated_slices: list[int] | None


def _sample_grid(rng: np.random.Generator, quick: bool) -> _Grid:
    inplane = rng.uniform(*(INPLANE_QUICK_MM if quick else INPLANE_MM))
    lo, hi = SLICE_QUICK_MM if quick else SLICE_MM
    height = rng.uniform(*FOV_SI_MM)
    nx, ny = int(round(FOV_LR_MM / inplane)), int(round(FOV_AP_MM / inplane))
    thinnest = max(lo, height / max(1, MAX_VOXELS // (nx * ny)))
    thickness = rng.uniform(thinnest, hi)
    nz = int(round(height / thickness))
    spacing = (inplane, inplane, thickness)
    centre = (rng.uniform(-4.0, 4.0), rng.uniform(-4.0, 4.0), rng.uniform(0.0, 10.0))
    origin = [centre[d] - (n - 1) / 2.0 * spacing[d] for d, n in enumerate((nx, ny, nz))]
    return _Grid(spacing, (nx, ny, nz), origin)


def _oriented(array: np.ndarray, grid: _Grid, lps: bool) -> tuple[np.ndarray, np.ndarray]:
    """The array and affine as written: RAS as drawn, or LPS (voxel axes 0 and 1 reversed, same world geometry)."""
    affine = grid.ras_affine()
    if not lps:
        return array, affine
    flipped = np.ascontiguousarray(array[::-1, ::-1, :])
    lps_affine = affine.copy()
    for d in (0, 1):
        lps_affine[:3, 3] += affine[:3, d] * (grid.shape[d] - 1)
        lps_affine[:3, d] = -affine[:3, d]
    return flipped, lps_affine


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(array, affine)
    img.header.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def _value_lut(labels: dict[int, LabelName]) -> np.ndarray:
    """Complete label value -> this source's label-file value (0 for classes the source does not annotate)."""
    lut = np.zeros(len(CLASSES) + 1, dtype=np.uint8)
    for value, meaning in labels.items():
        for name in (meaning if isinstance(meaning, tuple) else (meaning,)):
            lut[CLASSES.index(name) + 1] = value
    return lut


_MIN_ORGAN_MM3 = 300.0


def _make_case(out: Path, source: DemoSource, index: int, rng: np.random.Generator, quick: bool,
               lps: bool) -> _CaseRecord:
    case_id = f"{source.name}_{index:03d}"
    grid = _sample_grid(rng, quick)
    voxel_mm3 = float(np.prod(grid.spacing))
    for _attempt in range(8):
        phantom = _rasterise(grid, rng)
        counts = np.bincount(phantom.label.ravel(), minlength=len(CLASSES) + 1)
        if (counts[1:] * voxel_mm3 >= _MIN_ORGAN_MM3).all():
            break
    else:  # pragma: no cover - the nominal anatomy keeps every organ well inside the field of view
        raise RuntimeError(f"demo case {case_id}: an organ fell outside the field of view")
    if source.modality == "CT":
        image = _ct_image(phantom.tissue, rng)
    else:
        image = _mr_image(phantom.tissue, grid, rng)
    image_rel = f"images/{case_id}_0000.nii.gz"
    complete_rel = f"labels_complete/{case_id}.nii.gz"
    array, affine = _oriented(image, grid, lps)
    _save_nifti(array, affine, out / image_rel)
    complete, _ = _oriented(phantom.label, grid, lps)
    _save_nifti(complete, affine, out / complete_rel)
    label_rel = None
    slices = None
    if source.labels is not None:
        label_rel = f"labels/{case_id}.nii.gz"
        label = _value_lut(source.labels)[complete]
        if source.kind == "sparse":
            offset = int(rng.integers(0, SPARSE_STEP))
            slices = list(range(offset, grid.shape[2], SPARSE_STEP))
            keep = np.zeros(grid.shape[2], dtype=bool)
            keep[slices] = True
            label[:, :, ~keep] = 0
        _save_nifti(label, affine, out / label_rel)
    return _CaseRecord(case_id, image_rel, label_rel, complete_rel, source.split, slices)


def _labels_yaml(labels: dict[int, LabelName]) -> dict[int, str | list[str]]:
    return {int(v): (list(m) if isinstance(m, tuple) else m) for v, m in labels.items()}


def _manifest_doc(records: list[tuple[DemoSource, list[_CaseRecord]]], complete: bool) -> dict:
    sources = []
    for source, cases in records:
        kind = "full" if complete else source.kind
        entry: dict = {"name": source.name, "modality": source.modality, "kind": kind}
        labels = COMPLETE_LABELS if complete else source.labels
        if labels is not None:
            entry["labels"] = _labels_yaml(labels)
        rows = []
        for case in cases:
            row: dict = {"id": case.case_id, "image": case.image}
            label = case.complete if complete else case.label
            if label is not None:
                row["label"] = label
            row["split"] = case.split
            if not complete and case.annotated_slices is not None:
                row["annotated_slices"] = {2: list(case.annotated_slices)}
            rows.append(row)
        entry["cases"] = rows
        sources.append(entry)
    return {"project": {"name": "unimos-demo", "classes": list(CLASSES)}, "sources": sources}


class _ManifestDumper(yaml.SafeDumper):
    """Block style, lists of scalars inline, sequences indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: D102
        return super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, (str, int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_ManifestDumper.add_representer(list, _represent_list)


def _dump_manifest(doc: dict, header: str) -> str:
    return header + yaml.dump(doc, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False, width=200)


def _readme(seed: int, quick: bool, records: list[tuple[DemoSource, list[_CaseRecord]]]) -> str:
    lines = [
        "# unimos demo collection (synthetic)",
        "",
        f"Written by `unimos.data.demo.make_demo_data(seed={seed}, quick={quick})`. Synthetic abdominal CT and MR",
        "volumes (not patient data) with deliberately mixed annotation, for trying unimos end to end:",
        "",
    ]
    for source, cases in records:
        what = "no labels" if source.labels is None else ", ".join(
            "+".join(m) if isinstance(m, tuple) else m for m in source.labels.values())
        note = {"sparse": f" (only every {SPARSE_STEP}th axial slice, listed per case; 0 elsewhere)",
                "partial": " (other organs are 0 in its label files but present in the images)"}.get(source.kind, "")
        if source.labels and any(isinstance(m, tuple) for m in source.labels.values()):
            note += "; both kidneys share one label value, split by body side"
        lines.append(f"- `{source.name}`: {source.modality}, {source.kind}, {len(cases)} cases, "
                     f"split {source.split}; annotates: {what}{note}")
    lines += [
        "",
        "- `manifest.yaml`: the collection as annotated (train on this).",
        "- `manifest_complete.yaml`: the same images with complete 9-class labels for every case (a fully",
        "  labeled upper bound).",
        "- `images/<case>_0000.nii.gz` (int16; CT in HU), `labels/<case>.nii.gz` (uint8, the source's own label",
        "  values), `labels_complete/<case>.nii.gz` (uint8, 1..9 = " + ", ".join(CLASSES) + ").",
        "- About half the cases are stored RAS, half LPS (same world geometry); spacing varies per case.",
        "",
    ]
    return "\n".join(lines)


def _check_output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(out, "exists and is not a folder", "choose a new or empty folder for the demo data")
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(out, "is not empty", "choose a new or empty folder for the demo data, or delete this one")


def make_demo_data(out: Path, seed: int = 0, quick: bool = False,
                   sources: tuple[DemoSource, ...] = SOURCES) -> Path:
    """Write the synthetic demo collection into `out` (new or empty) and return the path of its manifest.yaml.

    Deterministic for a given (seed, quick, sources). quick=True writes about half the cases at coarser spacing.
    `sources`: the collection's layout (SOURCES, the mixed annotations; SSL_SOURCES, the semi-supervised demo's).
    """
    out = Path(out)
    _check_output_folder(out)
    rng = np.random.default_rng(seed)
    records: list[tuple[DemoSource, list[_CaseRecord]]] = []
    for s_index, source in enumerate(sources):
        count = source.quick_count if quick else source.count
        cases = []
        for index in range(count):
            case_rng = np.random.default_rng(rng.integers(0, 2**63))
            lps = (index + s_index) % 2 == 1
            cases.append(_make_case(out, source, index, case_rng, quick, lps))
        records.append((source, cases))
    header = (f"# unimos demo collection (synthetic), written by make_demo_data(seed={seed}, quick={quick}).\n"
              "# Paths are relative to this file's folder.\n")
    write_text_atomic(out / "manifest_complete.yaml", _dump_manifest(
        _manifest_doc(records, complete=True),
        header + "# Every source as fully labeled (complete labels): an upper bound for comparison.\n"))
    write_text_atomic(out / "README.md", _readme(seed, quick, records))
    return write_text_atomic(out / "manifest.yaml", _dump_manifest(_manifest_doc(records, complete=False), header))
