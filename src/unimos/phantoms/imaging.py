"""Images from a phantom's tissue codes: per-patient CT (HU) and MR intensity tables, blur, noise, and the MR
bias field and Rician magnitude noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from unimos.phantoms.anatomy import (
    N_TISSUES,
    T_AIR,
    T_AORTA,
    T_BOWEL_AIR,
    T_BOWEL_CONTENT,
    T_BOWEL_WALL,
    T_CANCELLOUS,
    T_CAVITY,
    T_CORTICAL,
    T_CSF,
    T_DISC,
    T_FAT,
    T_GALLBLADDER,
    T_HEP_VESSEL,
    T_IVC,
    T_KID_CORTEX,
    T_KID_MEDULLA,
    T_LESION_HIGH,
    T_LESION_LOW,
    T_LIVER,
    T_LUNG,
    T_MUSCLE,
    T_PANCREAS,
    T_RIB,
    T_SPLEEN,
    T_STOMACH_AIR,
    T_STOMACH_CONTENT,
    T_STOMACH_WALL,
)
from unimos.phantoms.shapes import Grid

# (mean, per-patient jitter sd); CT in HU, MR in arbitrary units (T1-like, fat bright).
_CT_TABLE: dict[int, tuple[float, float]] = {
    T_AIR: (-1000, 0), T_FAT: (-100, 8), T_MUSCLE: (50, 5), T_CAVITY: (-95, 8), T_CORTICAL: (700, 40),
    T_CANCELLOUS: (380, 40), T_CSF: (12, 3), T_DISC: (85, 8), T_RIB: (520, 50), T_LUNG: (-850, 25),
    T_BOWEL_WALL: (45, 8), T_BOWEL_CONTENT: (20, 10), T_BOWEL_AIR: (-900, 30), T_LIVER: (60, 5),
    T_HEP_VESSEL: (150, 15), T_SPLEEN: (50, 4), T_KID_CORTEX: (155, 12), T_KID_MEDULLA: (105, 12),
    T_PANCREAS: (40, 4), T_AORTA: (215, 20), T_IVC: (130, 12), T_STOMACH_WALL: (42, 5),
    T_STOMACH_CONTENT: (20, 5), T_STOMACH_AIR: (-800, 30), T_GALLBLADDER: (10, 3),
    T_LESION_LOW: (5, 5), T_LESION_HIGH: (190, 15),
}
_MR_TABLE: dict[int, tuple[float, float]] = {
    T_AIR: (0, 0), T_FAT: (1150, 60), T_MUSCLE: (300, 20), T_CAVITY: (1080, 60), T_CORTICAL: (40, 10),
    T_CANCELLOUS: (450, 40), T_CSF: (150, 20), T_DISC: (260, 25), T_RIB: (60, 15), T_LUNG: (30, 10),
    T_BOWEL_WALL: (380, 30), T_BOWEL_CONTENT: (250, 40), T_BOWEL_AIR: (15, 5), T_LIVER: (430, 25),
    T_HEP_VESSEL: (120, 20), T_SPLEEN: (640, 30), T_KID_CORTEX: (580, 30), T_KID_MEDULLA: (430, 30),
    T_PANCREAS: (520, 30), T_AORTA: (70, 15), T_IVC: (110, 20), T_STOMACH_WALL: (390, 25),
    T_STOMACH_CONTENT: (230, 30), T_STOMACH_AIR: (15, 5), T_GALLBLADDER: (170, 25),
    T_LESION_LOW: (200, 30), T_LESION_HIGH: (880, 50),
}


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


def ct_image(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An int16 CT image in HU: this patient's intensities, a slight blur, Gaussian noise."""
    img = _intensity_table(rng, "CT")[tissue]
    img = ndimage.gaussian_filter(img, sigma=0.7, mode="nearest", truncate=3.0)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(8.0, 20.0))
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16)


def _bias_field(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field, about 0.7..1.4, from a few low-frequency cosines over the field of view."""
    u = [(grid.axes[d] - grid.axes[d].mean()) / max(float(np.ptp(grid.axes[d])), 1.0) for d in range(3)]
    x, y, z = u[0][:, None, None], u[1][None, :, None], u[2][None, None, :]
    log_field = np.zeros(grid.shape, dtype=np.float32)
    for _ in range(4):
        w = rng.normal(0.0, 2.2, size=3)
        log_field += np.float32(rng.uniform(0.05, 0.12)) * np.cos(
            np.float32(w[0]) * x + np.float32(w[1]) * y + np.float32(w[2]) * z + np.float32(rng.uniform(0, 6.3)))
    return np.exp(log_field)


def mr_image(tissue: np.ndarray, grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """An int16 MR magnitude image: this patient's intensities, a slight blur, a bias field, Rician noise."""
    img = _intensity_table(rng, "MR")[tissue]
    img = ndimage.gaussian_filter(img, sigma=0.7, mode="nearest", truncate=3.0)
    img *= _bias_field(grid, rng)
    sigma = np.float32(rng.uniform(15.0, 35.0))
    real = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
    imag = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    img = np.sqrt(real * real + imag * imag)  # Rician magnitude
    return np.clip(np.rint(img), 0, 32767).astype(np.int16)


