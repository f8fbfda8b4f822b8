"""The report's Data section: annotation coverage as a heat map, and modality, splits, voxel size and image size
per source from the image headers alone."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

import nibabel as nib
import numpy as np

from unimos.data.io import read_geometry
from unimos.data.manifest import Case, Manifest
from unimos.data.manifest_spec import SPLITS
from unimos.errors import UnimosError
from unimos.report.figures import CoverageRow, coverage_figure
from unimos.report.markup import figure_html, note
from unimos.report.run_folder import RunFolder


def data_section(run: RunFolder, figures: Path) -> str:
    if run.manifest is None:
        return note(f"Not shown: {escape(run.manifest_note or '')}. The coverage and geometry summary need the "
                     "manifest the predictions were scored against (write_report(..., manifest=PATH)).")
    manifest = run.manifest
    classes = manifest.taxonomy.names[1:]
    coverage = manifest.coverage()
    rows = [CoverageRow(s.name, s.modality, s.kind, len(manifest.cases_of(s.name)),
                        tuple(coverage[s.name][name][0] for name in classes)) for s in manifest.sources]
    parts = [(f"<p>Manifest <code>{escape(str(manifest.path))}</code>: project <b>{escape(manifest.name)}</b>, "
              f"{len(classes)} classes, {len(manifest.sources)} sources, {len(manifest.cases)} cases.</p>")]
    if rows and classes:
        coverage_figure(rows, classes, figures / "coverage.png")
        parts.append(figure_html("coverage.png", "Annotation coverage: for each source (rows) and class (columns), "
                             "the cases whose reference annotates the class out of the source's cases. Unlabeled "
                             "sources annotate nothing; sparse sources annotate their classes on a few slices."))
    parts.append(_geometry_table(manifest))
    return "\n".join(parts)


def _geometry_table(manifest: Manifest) -> str:
    """Per source: modality, kind, cases per split, voxel size and image size along R-L, A-P, S-I (headers only)."""
    header = ("<tr><th>source</th><th>modality</th><th>kind</th>"
              + "".join(f"<th>{s}</th>" for s in SPLITS)
              + "<th>voxel size R-L × A-P × S-I (mm): median (range)</th><th>size (voxels): median</th></tr>")
    lines, unreadable = [], []
    for source in manifest.sources:
        cases = manifest.cases_of(source.name)
        spacings, shapes = [], []
        for case in cases:
            geometry = _ras_geometry(case)
            if geometry is None:
                unreadable.append(case.case_id)
                continue
            spacings.append(geometry[0])
            shapes.append(geometry[1])
        counts = "".join(f"<td>{sum(1 for c in cases if c.split == s)}</td>" for s in SPLITS)
        lines.append(f"<tr><td>{escape(source.name)}</td><td>{escape(source.modality)}</td><td>{source.kind}</td>"
                     f"{counts}<td>{_spacing_text(spacings)}</td><td>{_shape_text(shapes)}</td></tr>")
    by_modality: dict[str, int] = {}
    for case in manifest.cases:
        by_modality[case.modality] = by_modality.get(case.modality, 0) + 1
    summary = ", ".join(f"{m}: {n} case(s)" for m, n in by_modality.items())
    left_out = note(f"Header unreadable, left out: {', '.join(unreadable[:20])}"
                    + (f" and {len(unreadable) - 20} more" if len(unreadable) > 20 else "")) if unreadable else ""
    return (f"<h3>Modalities and geometry</h3>\n<p>{escape(summary)}. Voxel and image sizes from the image headers "
            "(first channel), along the patient axes whatever the files' orientation.</p>\n"
            f'<table id="geometry">{header}\n' + "\n".join(lines) + f"</table>\n{left_out}")


def _ras_geometry(case: Case) -> tuple[np.ndarray, np.ndarray] | None:
    """(voxel size, shape) along R-L, A-P, S-I from the image header; None when it cannot be read."""
    if not case.image_paths:
        return None
    try:
        shape, affine = read_geometry(case.image_paths[0])
    except UnimosError:
        return None
    ornt = nib.io_orientation(affine)  # row i: the patient axis that voxel axis i runs along
    spacing, size = np.zeros(3), np.zeros(3, dtype=int)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    for axis, (patient_axis, _flip) in enumerate(ornt):
        spacing[int(patient_axis)] = zooms[axis]
        size[int(patient_axis)] = shape[axis]
    return spacing, size


def _spacing_text(spacings: Sequence[np.ndarray]) -> str:
    if not spacings:
        return "–"
    values = np.array(spacings)
    parts = []
    for axis in range(3):
        low, mid, high = values[:, axis].min(), float(np.median(values[:, axis])), values[:, axis].max()
        parts.append(f"{mid:.2f}" if np.isclose(low, high) else f"{mid:.2f} ({low:.2f}–{high:.2f})")
    return " × ".join(parts)


def _shape_text(shapes: Sequence[np.ndarray]) -> str:
    if not shapes:
        return "–"
    return " × ".join(str(int(v)) for v in np.median(np.array(shapes), axis=0))
