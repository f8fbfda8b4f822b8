"""One synthetic patient: body outline, spine, ribs, lungs, bowel, the nine organs and 0-3 lesions in the liver,
kidneys and pancreas, jittered per patient and painted into a tissue-code map and the complete label map on a
case's voxel grid (`rasterise`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from unimos.phantoms.shapes import Ellipsoids, Grid, Sweep, Warp, polyline, random_warp, rotation

CLASSES: tuple[str, ...] = ("liver", "spleen", "kidney_right", "kidney_left", "pancreas", "aorta",
                            "inferior_vena_cava", "stomach", "gallbladder")
"""The demo's organs; label value i+1 in the complete label maps is CLASSES[i]."""
LESIONS: tuple[str, ...] = ("liver_tumor", "kidney_tumor", "pancreas_tumor")
"""The demo's lesion classes; label value len(CLASSES)+i+1 is LESIONS[i]."""
ALL_CLASSES: tuple[str, ...] = CLASSES + LESIONS
LESION_ORGANS: dict[str, tuple[str, ...]] = {
    "liver_tumor": ("liver",), "kidney_tumor": ("kidney_right", "kidney_left"), "pancreas_tumor": ("pancreas",)}
"""The organs each lesion class grows in (a kidney tumour in either kidney, as in KiTS)."""
LESION_DIAMETER_MM: dict[str, tuple[float, float]] = {
    "liver_tumor": (5.0, 30.0), "kidney_tumor": (5.0, 25.0), "pancreas_tumor": (5.0, 18.0)}
"""Drawn lesion diameters; narrower in the thinner organs so that a lesion does not fill the organ's width."""

# Tissue codes (what the image is painted from; the label map is painted alongside).

T_AIR, T_FAT, T_MUSCLE, T_CAVITY, T_CORTICAL, T_CANCELLOUS, T_CSF, T_DISC, T_RIB = range(9)
T_LUNG, T_BOWEL_WALL, T_BOWEL_CONTENT, T_BOWEL_AIR = range(9, 13)
T_LIVER, T_HEP_VESSEL, T_SPLEEN, T_KID_CORTEX, T_KID_MEDULLA, T_PANCREAS = range(13, 19)
T_AORTA, T_IVC, T_STOMACH_WALL, T_STOMACH_CONTENT, T_STOMACH_AIR, T_GALLBLADDER = range(19, 25)
T_LESION_LOW, T_LESION_HIGH = range(25, 27)  # hypo- and hyper-dense (CT) / -intense (MR) lesions
N_TISSUES = 27


@dataclass
class _Body:
    centre: np.ndarray  # world (x, y) of the body's centre
    semi: np.ndarray  # outer semi-axes (x, y) in mm
    scale: np.ndarray  # anatomy scale (x, y, z) relative to the nominal patient
    diaphragm: float  # mm offset of the diaphragm


@dataclass
class _Organ:
    name: str
    shape: Ellipsoids | Sweep
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
    rot = rotation(np.asarray(angles, dtype=np.float64) + rng.uniform(-angle_jitter, angle_jitter, size=3))
    return c, a, rot


def _sweep(rng: np.random.Generator, body: _Body, control: Sequence[Sequence[float]], radii: Sequence[float],
           step: float, size_jitter: float = 0.12, shift_sd: float = 2.5, warp: Warp | None = None,
           squash: Sequence[float] = (1.0, 1.0, 1.0)) -> Sweep:
    ctrl = np.stack([_place(rng, body, p, shift_sd) for p in control])
    r = np.asarray(radii, dtype=np.float64) * rng.uniform(1 - size_jitter, 1 + size_jitter)
    points, rads = polyline(ctrl, r, step)
    return Sweep(points, rads, warp or random_warp(rng), squash)


def _sample_organs(rng: np.random.Generator, body: _Body) -> list[_Organ]:
    """The nine organs in painting priority (earlier ones win where shapes touch)."""
    organs: list[_Organ] = []
    wiggle = rng.uniform(-4.0, 4.0, size=(4, 2))
    aorta = [(-9 + wiggle[0, 0], -9 + wiggle[0, 1], -100), (-8, -8, -30), (-10 + wiggle[1, 0], -10, 30),
             (-11, -14 + wiggle[1, 1], 110)]
    organs.append(_Organ("aorta", _sweep(rng, body, aorta, [10.0, 10.0, 10.5, 11.0], 3.0, size_jitter=0.1,
                                          shift_sd=1.0, warp=random_warp(rng, (0.5, 1.5))), T_AORTA))
    ivc = [(20 + wiggle[2, 0], -9, -100), (20, -8 + wiggle[2, 1], -20), (19 + wiggle[3, 0], -6, 40),
           (14, -4 + wiggle[3, 1], 62)]
    organs.append(_Organ("inferior_vena_cava",
                         _sweep(rng, body, ivc, [10.0, 10.0, 11.0, 10.0], 3.0, size_jitter=0.1, shift_sd=1.0,
                                warp=random_warp(rng, (0.5, 1.5)), squash=(1.0, 0.72, 1.0)), T_IVC))

    def kidney_tissue(q, x, y, z):
        return np.where(q > 0.68, T_KID_CORTEX, T_KID_MEDULLA)

    right = _ellipsoid(rng, body, (46, -28, -22), (19, 15, 44), angles=(-12, 14, 20))
    organs.append(_Organ("kidney_right", Ellipsoids([right], random_warp(rng, (1.0, 2.5))), kidney_tissue))
    left = _ellipsoid(rng, body, (-46, -27, -10), (19, 15, 44), angles=(-12, -14, -20))
    organs.append(_Organ("kidney_left", Ellipsoids([left], random_warp(rng, (1.0, 2.5))), kidney_tissue))
    gb = _ellipsoid(rng, body, (30, 40, -2), (11, 21, 12), angles=(35, 0, -15), size_jitter=0.15)
    organs.append(_Organ("gallbladder", Ellipsoids([gb], random_warp(rng, (0.8, 2.0))), T_GALLBLADDER))
    pancreas = [(18, 8, -16), (4, 14, -8), (-20, 12, -2), (-46, -4, 8), (-58, -13, 14)]
    organs.append(_Organ("pancreas", _sweep(rng, body, pancreas, [12.0, 8.0, 8.0, 8.5, 6.5], 2.5,
                                            size_jitter=0.12, shift_sd=2.0), T_PANCREAS))
    spleen = _ellipsoid(rng, body, (-70, -26, 36), (15, 38, 33), angles=(10, 0, -35))
    organs.append(_Organ("spleen", Ellipsoids([spleen], random_warp(rng)), T_SPLEEN))
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
    organs.append(_Organ("liver", Ellipsoids([right_lobe, left_lobe], random_warp(rng, (2.0, 5.0))),
                         T_LIVER))
    return organs


def _hepatic_vessels(rng: np.random.Generator, body: _Body) -> list[Sweep]:
    root = (16, -4, 55)
    ends = [(70, -12, 48), (38, 28, 50), (-16, 28, 50), (40, -6, 10)]
    return [_sweep(rng, body, [root, end], [4.5, 2.5], 2.0, size_jitter=0.1, shift_sd=3.0,
                   warp=random_warp(rng, (1.0, 3.0))) for end in ends]


def _bowel(rng: np.random.Generator, body: _Body) -> list[Sweep]:
    loops: list[Sweep] = []
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
class Phantom:
    """One drawn patient: what its image is painted from and its complete label, on one grid."""

    tissue: np.ndarray  # uint8 tissue codes on the RAS grid
    label: np.ndarray  # uint8 complete label (1..12 = ALL_CLASSES)
    organ_label: np.ndarray  # uint8 the same with every lesion read as the organ it grows in (1..9 = CLASSES)


def _body_layers(grid: Grid, body: _Body) -> np.ndarray:
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


def _paint_ribs(grid: Grid, body: _Body, tissue: np.ndarray, rng: np.random.Generator) -> None:
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


def rasterise(grid: Grid, rng: np.random.Generator, lesion_share: Mapping[str, float] | None = None) -> Phantom:
    """Draw one new patient from `rng` and paint it on `grid`: body layers, discs and ribs, the organs in priority
    order, hepatic vessels inside the liver, lesions, psoas muscles, bowel loops.

    `lesion_share`: for each lesion class, the chance that this patient has 1-3 such lesions (absent: none).
    """
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
    organ_label = label.copy()
    for lesion, share in sorted((lesion_share or {}).items()):
        if rng.uniform() < share:
            for _ in range(int(rng.integers(1, 4))):
                _paint_lesion(grid, rng, tissue, label, lesion)
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
    return Phantom(tissue, label, organ_label)


def _paint_lesion(grid: Grid, rng: np.random.Generator, tissue: np.ndarray, label: np.ndarray, lesion: str) -> None:
    """One roughly spherical lesion of a drawn diameter, hypo- or hyper-dense, centred deep enough inside one of its
    organs (drawn at random) that most of it lies in the organ; voxels outside the organ are not painted."""
    organ = ALL_CLASSES.index(str(rng.choice(LESION_ORGANS[lesion]))) + 1
    radius = rng.uniform(*LESION_DIAMETER_MM[lesion]) / 2.0
    where = np.argwhere(label == organ)
    if not len(where):
        return
    lo, hi = where.min(axis=0), where.max(axis=0) + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    inside = label[box] == organ
    depth = ndimage.distance_transform_edt(np.pad(inside, 1), sampling=grid.spacing)[1:-1, 1:-1, 1:-1]
    deep = np.argwhere(depth >= min(0.6 * radius, 0.8 * float(depth.max())))
    ijk = deep[int(rng.integers(len(deep)))] + lo
    centre = grid.origin + grid.spacing * ijk
    semi = radius * rng.uniform(0.85, 1.15, size=3)
    shape = Ellipsoids([(centre, semi, rotation(rng.uniform(0.0, 180.0, size=3)))], random_warp(rng, (0.3, 1.0),
                                                                                                  (20.0, 40.0)))
    sub = grid.box(*shape.bounds())
    if sub is None:
        return
    sl, bx, by, bz = sub
    hit = (shape.q(bx, by, bz) < 1.0) & (label[sl] == organ)
    tissue[sl][hit] = T_LESION_LOW if rng.uniform() < 0.7 else T_LESION_HIGH
    label[sl][hit] = ALL_CLASSES.index(lesion) + 1


def _paint_lungs(grid: Grid, body: _Body, tissue: np.ndarray) -> None:
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

