"""Geometry the phantom is drawn with: a voxel grid in world RAS+ mm, smooth warps, rotations, and the shapes
organs are made of (warped ellipsoids, swept tubes along polylines), each with a bounding box and q < 1 inside."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class Grid:
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
class Warp:
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


def random_warp(rng: np.random.Generator, amp: tuple[float, float] = (1.5, 4.0),
                 wavelength: tuple[float, float] = (70.0, 150.0), terms: int = 3) -> Warp:
    """`terms` plane waves of random direction, amplitude (mm) and wavelength (mm) and phase."""
    amps = np.stack([_unit(rng) * rng.uniform(*amp) for _ in range(terms)])
    waves = np.stack([_unit(rng) * (2 * math.pi / rng.uniform(*wavelength)) for _ in range(terms)])
    phases = rng.uniform(0, 2 * math.pi, size=terms)
    return Warp(amps, waves, phases)


def rotation(degrees_xyz: Sequence[float]) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx for angles in degrees about the world axes."""
    ax, ay, az = (math.radians(a) for a in degrees_xyz)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


class Ellipsoids:
    """Union of warped ellipsoids; q < 1 inside (q = the smallest normalised radius over the parts)."""

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], warp: Warp) -> None:
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


class Sweep:
    """A warped tube: union of balls along a polyline (radii vary); q < 1 inside.

    `squash` scales the cross-section per world axis (e.g. a flattened vein).
    """

    def __init__(self, points: np.ndarray, radii: np.ndarray, warp: Warp,
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


def polyline(control: np.ndarray, radii: Sequence[float], step: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline through control points every `step` mm, interpolating the radii."""
    control = np.asarray(control, dtype=np.float64)
    seg = np.linalg.norm(np.diff(control, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(math.ceil(arc[-1] / step)) + 1)
    t = np.linspace(0.0, arc[-1], n)
    points = np.stack([np.interp(t, arc, control[:, d]) for d in range(3)], axis=1)
    return points, np.interp(t, arc, np.asarray(radii, dtype=np.float64))
