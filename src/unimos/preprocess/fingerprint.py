"""The data fingerprint a plan is derived from: spacings, sizes and intensity statistics per modality."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from unimos.data.io import read_volume
from unimos.data.manifest import Case, Manifest
from unimos.preprocess.normalise import body_mask
from unimos.preprocess.resample import orientation_to_ras

SAMPLES_PER_CASE = 20_000
# Gas inside hollow organs (stomach, bowel) is labeled with them; counting it would put the CT clip's lower
# percentile in air and squash soft-tissue contrast after normalisation, so CT statistics leave it out.
CT_GAS_HU = -500.0


@dataclass(frozen=True)
class CaseFingerprint:
    case_id: str
    modality: str
    shape_ras: tuple[int, int, int]
    spacing_ras_mm: tuple[float, float, float]
    samples: list[float]
    from_labels: bool


def fingerprint_case(case: Case, seed: int) -> CaseFingerprint:
    """Shape and spacing in RAS axis order, and a seeded sample of foreground intensities.

    Foreground is the labeled organs when the case has labels (as nnU-Net does), else the body.
    """
    image = read_volume(case.image_paths[0], kind="image")
    ornt = orientation_to_ras(image.affine)
    order = np.argsort(ornt[:, 0])  # source axis feeding each RAS axis
    shape = tuple(int(image.shape[a]) for a in order)
    spacing = tuple(float(image.spacing_mm[a]) for a in order)
    foreground = None
    if case.label_path is not None:
        label = read_volume(case.label_path, kind="label").array
        if label.shape == image.shape:
            foreground = label > 0
            foreground &= np.isin(label, [v for v, m in case.source.label_map.items() if m.kind in ("class", "sided")])
    from_labels = foreground is not None and bool(foreground.any())
    if not from_labels:
        foreground = body_mask(image.array, case.modality)
    values = image.array[foreground]
    values = values[np.isfinite(values)]
    if case.modality == "CT" and from_labels:
        values = values[values > CT_GAS_HU]
    rng = np.random.default_rng(seed)
    if len(values) > SAMPLES_PER_CASE:
        values = rng.choice(values, SAMPLES_PER_CASE, replace=False)
    return CaseFingerprint(case.case_id, case.modality, shape, spacing,  # type: ignore[arg-type]
                           [float(v) for v in values], from_labels)


def collect_fingerprint(manifest: Manifest, seed: int = 0, workers: int = 2,
                        progress: Callable[[int, int], None] | None = None) -> dict:
    """Fingerprint of the training cases (split != test), summarised per modality."""
    cases = [c for c in manifest.cases if c.split != "test"]
    results: list[CaseFingerprint] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(fingerprint_case, case, seed + i) for i, case in enumerate(cases)]
        for done, future in enumerate(futures, start=1):
            results.append(future.result())
            if progress:
                progress(done, len(futures))
    modalities: dict[str, dict] = {}
    for modality in sorted({r.modality for r in results}):
        group = [r for r in results if r.modality == modality]
        labeled = [r for r in group if r.from_labels]
        pool_values = np.concatenate([np.asarray(r.samples) for r in (labeled or group)] or [np.zeros(1)])
        modalities[modality] = {
            "n_cases": len(group),
            "intensity_source": "labeled foreground" if labeled else "body",
            "percentile_00_5": float(np.percentile(pool_values, 0.5)),
            "percentile_99_5": float(np.percentile(pool_values, 99.5)),
            "mean": float(pool_values.mean()),
            "std": float(pool_values.std()),
        }
    spacings = np.array([r.spacing_ras_mm for r in results]) if results else np.ones((1, 3))
    shapes_mm = np.array([np.multiply(r.shape_ras, r.spacing_ras_mm) for r in results]) if results else np.ones((1, 3))
    return {
        "n_cases": len(results),
        "median_spacing_mm": np.median(spacings, axis=0).round(4).tolist(),
        "spacing_percentile_10_mm": np.percentile(spacings, 10, axis=0).round(4).tolist(),
        "median_extent_mm": np.median(shapes_mm, axis=0).round(2).tolist(),
        "modalities": modalities,
        "cases": [{k: v for k, v in asdict(r).items() if k != "samples"} for r in results],
    }
