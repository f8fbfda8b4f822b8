"""Input sanity for `predict`: a scan the model cannot read correctly is refused, not turned into a confident mask.

Each check returns a `Problem` (file, what looks wrong with the measured number, fix); the predictor refuses the
case with it, or with `PredictOptions.force` predicts anyway and stores the text in the case's record. All checks
read the raw input intensities, before normalisation: min and max over every voxel, percentiles over a seeded
sample of `SAMPLE_VOXELS` voxels.

- Blank or constant volume (max == min), and values of absurd magnitude (beyond +-`ABSURD_MAGNITUDE`).
- DICOM series: a Modality tag naming another imaging modality than the model's (MR given to a CT model...).
- CT model: a CT in Hounsfield units holds air (-1000 HU) or at least fat (-100 HU), so its 1st percentile lies
  below `CT_DARK_HU`; a CT stored with an offset (+1024: air near 0) or an MR does not. A model whose training
  organs reach below 0 (the plan's CT clip, 0.5th-99.5th percentile of the training organs, starts below 0) was
  trained in HU and refuses such a scan. A model whose training window is non-negative may have been trained on other
  units (btcv/ as stored: 8-bit window values 0..255, not HU: its README says readers get HU clipped to [-125, 275],
  but the files store scl_slope 1 and scl_inter 0); it accepts a scan without values below
  `CT_DARK_HU` only when the scan's 1st and 99th percentiles lie in the training window widened by
  `WINDOW_SLACK` of its width and span at least `WINDOW_MIN_SPREAD` of it. (Not caught: an HU scan given to such a
  non-HU model; an MR given to it whose range happens to match its window.)
- MR model: a 1st percentile at or below `MR_AIR_HU` is air in Hounsfield units: the scan is a CT.
- Shape (a warning, never a refusal): an axis with fewer voxels on the model's grid than `THIN_PATCH_SHARE` of the
  patch; 2D models are checked in-plane only (and not at all when they resize whole slices).

Measured by `bench/input_sanity.py` (2026-12-06, all 398 scans of ../shared/data, bench/results/input_sanity.md):
1st percentile of the 206 HU CTs (totalseg 2, dicom_ct 1, openkbp 203) -1024 to -1012; of the 18 btcv CTs 0 (99th
percentile 241 to 255); of the CTs with +1024 added 0 to 12 (HU) and 1024 (btcv); of the 14 chaos_mr MRs 0 to 4
(99th percentile 677 to 1282) and of the 160 acdc MRs 0 to 0.055 (99th 0.63 to 1.003). Training windows of plans
fingerprinted from the data: abdomen_pseudo [-66, 145], openkbp [-214, 1564], btcv [0, 255]. So `CT_DARK_HU`
(-50) lies 960 HU above every HU CT and at least 50 below every offset CT and MR; `MR_AIR_HU` (-500) lies at least
500 from both; against the btcv window an MR's 99th percentile lies at least 1.65 widths above it (slack 0.25), an
acdc MR spans at most 0.004 of it (needed 0.5), a btcv CT + 1024 has its 1st percentile 3 widths above it. Every real
CT passes its own data's model and every MR passes as MR; the btcv CTs pass as MR: 8-bit window values carry no
unit that tells them from an MR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unimos.data.plan_spec import ModelPlan
from unimos.errors import Problem
from unimos.preprocess.resample import orientation_to_ras

SAMPLE_VOXELS = 200_000
ABSURD_MAGNITUDE = 1e6  # no scanner stores more: 16-bit values times a rescale slope, CT with metal about 3e4 HU
CT_DARK_HU = -50.0  # a CT in HU has >= 1% of voxels below this (air -1000 HU, fat -100 HU)
MR_AIR_HU = -500.0  # >= 1% of voxels at or below this: air in HU, a CT (also the CT body mask's threshold)
WINDOW_SLACK = 0.25  # a non-HU scan's 1st/99th percentiles may lie this share of the training window outside it
WINDOW_MIN_SPREAD = 0.5  # ... and must span at least this share of the window (a [0, 1]-scaled MR does not)
THIN_PATCH_SHARE = 0.25  # an axis shorter than this share of the patch (on the model's grid) gets a warning
# DICOM Modality values of imaging modalities a scan can be confused with; others (OT, SC, SEG...) say nothing.
IMAGING_MODALITIES = ("CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "RF")
FORCE = "pass --force to predict it anyway"


@dataclass(frozen=True)
class IntensityStats:
    """What the intensity checks look at: 1st/99th percentiles of a voxel sample, min and max of every voxel."""

    p01: float
    p99: float
    minimum: float
    maximum: float
    n_voxels: int


def intensity_stats(array: np.ndarray, samples: int = SAMPLE_VOXELS, seed: int = 0) -> IntensityStats:
    """Percentiles of a seeded voxel sample (cheap on any size) and the exact min and max."""
    flat = array.ravel(order="K")  # a view for C- and Fortran-ordered arrays alike
    if flat.size > samples:
        sample = flat[np.random.default_rng(seed).integers(0, flat.size, samples)]
    else:
        sample = flat
    p01, p99 = np.percentile(sample.astype(np.float64), [1.0, 99.0])
    return IntensityStats(float(p01), float(p99), float(flat.min()), float(flat.max()), int(flat.size))


def ct_training_window(plan: ModelPlan) -> tuple[float, float] | None:
    """The plan's CT clip (0.5th-99.5th percentile of the training organs), or None when it has none."""
    scheme = plan.normalisation.get("CT")
    if scheme is None or scheme.clip is None:
        return None
    return float(scheme.clip[0]), float(scheme.clip[1])


def constant_problem(stats: IntensityStats, where: str) -> Problem | None:
    """A blank or constant volume: nothing to segment, and normalisation divides by a zero spread."""
    if stats.maximum > stats.minimum:
        return None
    return Problem(where, f"all its {stats.n_voxels} voxels have the value {stats.minimum:g}: a blank or constant "
                          "volume holds nothing to segment",
                   f"check that this is the scan you meant (not an empty export or a mask), or {FORCE}")


def magnitude_problem(stats: IntensityStats, where: str) -> Problem | None:
    """Values no scanner writes: a wrong data type or scaling in the header, not a scan."""
    if max(abs(stats.minimum), abs(stats.maximum)) <= ABSURD_MAGNITUDE:
        return None
    return Problem(where, f"holds values of absurd magnitude ({stats.minimum:.3g} to {stats.maximum:.3g}; no "
                          f"scanner stores values beyond +-{ABSURD_MAGNITUDE:.0e})",
                   "check the data type and scaling the file was written with (NIfTI scl_slope/scl_inter, DICOM "
                   f"RescaleSlope) and export it again, or {FORCE}")


def dicom_tag_problem(tag: str | None, modality: str, where: str) -> Problem | None:
    """A DICOM series whose Modality tag names another imaging modality than the one the model reads it as."""
    if tag is None or tag == modality or tag not in IMAGING_MODALITIES or modality not in IMAGING_MODALITIES:
        return None
    return Problem(where, f"its DICOM Modality tag is {tag}, but the model reads it as {modality} (what it was "
                          "trained on, or what --modality says)",
                   f"use a model trained on {tag} (or, for a model that knows several modalities, --modality {tag}), "
                   f"or {FORCE}")


def _in_window(stats: IntensityStats, window: tuple[float, float]) -> bool:
    """True when the scan's 1st-99th percentiles sit where the training organs' window does (same units)."""
    low, high = window
    width = high - low
    slack = WINDOW_SLACK * width
    return (low - slack <= stats.p01 and stats.p99 <= high + slack
            and stats.p99 - stats.p01 >= WINDOW_MIN_SPREAD * width)


def ct_problem(stats: IntensityStats, plan: ModelPlan, where: str) -> Problem | None:
    """A scan given to a CT model that is not in the units it was trained on (HU, or its own non-HU window)."""
    if stats.p01 <= CT_DARK_HU:
        return None
    hu = (f"its 1st percentile is {stats.p01:g} (a CT in Hounsfield units has air near -1000 and fat near -100, "
          f"so 1% of its voxels lie below {CT_DARK_HU:g})")
    fix = ("convert it to Hounsfield units (apply the scanner's rescale slope and intercept; for a +1024 offset, "
           f"subtract 1024), or use a model trained on MR if it is an MR scan, or {FORCE}")
    window = ct_training_window(plan)
    if window is None:
        return Problem(where, f"{hu}: it is not in HU (e.g. stored with a +1024 offset, air then near 0) or not a CT",
                       fix)
    low, high = window
    if low < 0:
        return Problem(where, f"{hu}: it is not in HU (e.g. stored with a +1024 offset, air then near 0) or not a CT "
                              f"(an MR?), and the model was trained on HU (its training organs span {low:g} to "
                              f"{high:g})", fix)
    if _in_window(stats, window):
        return None
    return Problem(where, f"{hu}, and its 1st-99th percentiles ({stats.p01:g} to {stats.p99:g}) do not match the "
                          f"model's training scans either (training organs {low:g} to {high:g}): it is in other "
                          "units or not a CT (an MR?)",
                   "convert it to the units of the model's training scans (Hounsfield units: apply the scanner's "
                   "rescale slope and intercept, for a +1024 offset subtract 1024; or the same rescaling as theirs), "
                   f"or use a model trained on MR if it is an MR scan, or {FORCE}")


def mr_problem(stats: IntensityStats, where: str) -> Problem | None:
    """A CT in Hounsfield units given to an MR model: its air, near -1000, is a value no MR holds."""
    if stats.p01 > MR_AIR_HU:
        return None
    return Problem(where, f"its 1st percentile is {stats.p01:g}: 1% of its voxels are at or below {MR_AIR_HU:g}, "
                          "like air (-1000) in a CT in Hounsfield units, which an MR does not hold, and the model "
                          "reads it as MR",
                   f"use a model trained on CT for a CT scan (or give the MR scan you meant), or {FORCE}")


def intensity_problem(array: np.ndarray, modality: str, plan: ModelPlan, where: str) -> Problem | None:
    """The first intensity problem of one channel for a model reading it as `modality`, or None."""
    stats = intensity_stats(array)
    problem = constant_problem(stats, where) or magnitude_problem(stats, where)
    if problem is not None:
        return problem
    if modality == "CT":
        return ct_problem(stats, plan, where)
    if modality == "MR":
        return mr_problem(stats, where)
    return None


def thin_axis_warnings(shape: Sequence[int], affine: np.ndarray, target_spacing_mm: Sequence[float],
                       patch: Sequence[int], where: str) -> list[str]:
    """Warnings for input axes with fewer voxels on the model's grid than a quarter of its patch along them.

    Args:
        shape, affine: the input's voxel grid and RAS+ affine (its spacing in mm and axis order).
        target_spacing_mm: the plan's grid (RAS order); patch: the model's patch in voxels on that grid (RAS order;
            two entries for a 2D model, which sees axial slices: only RAS axes 0 and 1 are checked then).
    """
    ornt = orientation_to_ras(affine)
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    checked = len(patch)  # 3, or 2 for a 2D model: its patch covers RAS axes 0 and 1, the axial plane
    patch_text = " x ".join(str(int(p)) for p in patch)
    warnings = []
    for axis, n in enumerate(shape):
        ras = int(ornt[axis][0])
        if ras >= checked:
            continue
        grid_mm = float(target_spacing_mm[ras])
        voxels = max(1, int(round(n * float(spacing[axis]) / grid_mm)))
        if voxels < THIN_PATCH_SHARE * int(patch[ras]):
            warnings.append(f"{where}: axis {axis} has {voxels} voxel(s) on the model's {grid_mm:g} mm grid "
                            f"({n} voxel(s) of {spacing[axis]:.3g} mm in the scan), the model's patch is {patch_text}: "
                            f"predictions along this axis are unreliable (the network learned from {int(patch[ras])} "
                            "voxels of context there and now sees mostly padding)")
    return warnings


def problem_text(problem: Problem) -> str:
    """A refused check as the warning stored in a case's record when --force predicts it anyway."""
    return f"{problem.where}: {problem.problem} (predicted anyway because of --force)"
