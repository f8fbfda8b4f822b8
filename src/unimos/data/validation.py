"""`inspect`: check every case of a manifest before any work and summarise the collection.

All problems are collected and reported together (file, problem, fix), so a user fixes a dataset in one pass.
Nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from unimos.data.io import count_nonfinite, read_volume
from unimos.data.manifest import Case, Manifest
from unimos.data.volume import Volume, same_grid
from unimos.errors import Problem, UnimosError

MIN_SPACING_MM = 0.05
MAX_SPACING_MM = 50.0


@dataclass(frozen=True)
class CaseSummary:
    """What inspect learned about one readable case."""

    case_id: str
    source: str
    modality: str
    kind: str
    split: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str
    classes_present: tuple[str, ...]


@dataclass
class InspectReport:
    """All problems and per-case summaries of a manifest."""

    manifest: Manifest
    problems: list[Problem] = field(default_factory=list)
    cases: list[CaseSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def coverage(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Source -> class -> (cases annotating the class, cases in the source): `Manifest.coverage`."""
        return self.manifest.coverage()


def _geometry_matches(a: Volume, b: Volume) -> bool:
    return same_grid(a, b)


def _geometry_text(v: Volume) -> str:
    spacing = ", ".join(f"{s:.3g}" for s in v.spacing_mm)
    return f"shape {v.shape}, spacing ({spacing}) mm, {v.orientation}, origin {np.round(v.affine[:3, 3], 2).tolist()}"


def nonfinite_problem(image: Volume) -> Problem | None:
    """The problem of an image holding NaN or infinite voxels (they poison normalisation and every output)."""
    bad = count_nonfinite(image)
    if not bad:
        return None
    return Problem(str(image.path), f"holds {bad} NaN or infinite voxel(s)",
                   "replace them (e.g. with the minimum intensity) or re-export the image")


def spacing_problem(image: Volume) -> Problem | None:
    """The problem of a voxel spacing outside what any scanner writes (a broken header, not a scan)."""
    if all(MIN_SPACING_MM <= s <= MAX_SPACING_MM for s in image.spacing_mm):
        return None
    return Problem(str(image.path), f"has an implausible voxel spacing {image.spacing_mm} mm",
                   f"fix the header: spacing must lie in [{MIN_SPACING_MM}, {MAX_SPACING_MM}] mm")


def check_case(case: Case) -> tuple[list[Problem], CaseSummary | None]:
    """Load one case's files and return its problems and, when its image is readable, its summary."""
    problems: list[Problem] = []
    images: list[Volume] = []
    for path in case.image_paths:
        try:
            images.append(read_volume(path, kind="image"))
        except UnimosError as err:
            problems.extend(err.problems)
    if not images:
        return problems, None
    image = images[0]
    for other in images[1:]:
        if not _geometry_matches(image, other):
            problems.append(Problem(f"{image.path} and {other.path}",
                                    f"channels of case '{case.case_id}' differ in geometry ({_geometry_text(image)} vs "
                                    f"{_geometry_text(other)})", "resample all channels onto one grid"))
    problems.extend(p for p in map(nonfinite_problem, images) if p is not None)
    if (problem := spacing_problem(image)) is not None:
        problems.append(problem)
    present: tuple[str, ...] = ()
    if case.label_path is not None:
        label_problems, present = _check_label(case, image)
        problems.extend(label_problems)
    summary = CaseSummary(case.case_id, case.source.name, case.modality, case.kind, case.split, image.shape,
                          image.spacing_mm, image.orientation, present)
    return problems, summary


def _check_label(case: Case, image: Volume) -> tuple[list[Problem], tuple[str, ...]]:
    try:
        label = read_volume(case.label_path, kind="label")
    except UnimosError as err:
        return list(err.problems), ()
    problems: list[Problem] = []
    if not _geometry_matches(image, label):
        problems.append(Problem(f"{image.path} and {label.path}",
                                f"image and label geometry differ (image: {_geometry_text(image)}; label: "
                                f"{_geometry_text(label)})",
                                "resample the label onto the image grid, or pair the right files"))
    values = [int(v) for v in np.unique(label.array)]
    undeclared = [v for v in values if v not in case.source.label_map]
    if undeclared:
        problems.append(Problem(str(label.path), f"holds label values {undeclared} that source "
                                f"'{case.source.name}' does not declare (declared: {sorted(case.source.label_map)})",
                                "add them to the source's labels as a class, 'background' or 'ignore'"))
    meaningful = [v for v in values if v in case.source.label_map
                  and case.source.label_map[v].kind in ("class", "sided")]
    if not meaningful:
        problems.append(Problem(str(label.path), "is empty (no voxel of any class) but the manifest says it is "
                                "annotated", "check the file, or move the case to an unlabeled source"))
    if case.annotated_slices:
        for axis, indices in case.annotated_slices.items():
            outside = [i for i in indices if not 0 <= i < label.shape[axis]]
            if outside:
                problems.append(Problem(str(label.path), f"annotated_slices on axis {axis} lists {outside}, "
                                        f"outside 0..{label.shape[axis] - 1}",
                                        "give slice indices of the label file's voxel grid"))
    present = tuple(sorted({c for v in meaningful for c in case.source.label_map[v].classes if c}))
    return problems, present


def _duplicate_ids(manifest: Manifest) -> list[Problem]:
    seen: dict[str, str] = {}
    problems = []
    for case in manifest.cases:
        if case.case_id in seen:
            problems.append(Problem(str(manifest.path), f"case id '{case.case_id}' appears in sources "
                                    f"'{seen[case.case_id]}' and '{case.source.name}'",
                                    "give every case a unique id"))
        seen.setdefault(case.case_id, case.source.name)
    return problems


def inspect_manifest(manifest: Manifest, workers: int = 2,
                     progress: Callable[[int, int], None] | None = None) -> InspectReport:
    """Check every case (in parallel threads; file reads release the GIL) and collect all problems."""
    report = InspectReport(manifest, problems=_duplicate_ids(manifest))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (problems, summary) in enumerate(pool.map(check_case, manifest.cases), start=1):
            report.problems.extend(problems)
            if summary is not None:
                report.cases.append(summary)
            if progress is not None:
                progress(done, len(manifest.cases))
    return report
