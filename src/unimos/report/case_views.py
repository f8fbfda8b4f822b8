"""One case as a montage: axial, coronal and sagittal slices with reference and prediction outlined per organ.

Image, reference and prediction are reoriented to RAS (nibabel's `as_closest_canonical`) each from its own
affine, so all three line up whatever the files' orientation, and every view follows the radiological
convention: axial with anterior up and the patient's right on the image's left; coronal with superior up and
the patient's right on the left; sagittal with superior up and anterior on the left. Pixels keep their
physical aspect (voxel size in mm).

Rows: an overview through the centre of the largest annotated organ (every structure, whole field of view),
then one row per structure through its own centre, zoomed to it. Reference outlines are solid, prediction
outlines dashed, both in the organ's colour (`unimos.data.colors`). A structure the reference does not
annotate (partial labels) is never drawn as a miss: its prediction is shown and the row says "not annotated
in the reference".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import ndimage

from unimos.data.io import read_volume
from unimos.data.labels import to_project_labels
from unimos.data.manifest import Case
from unimos.data.taxonomy import Taxonomy
from unimos.errors import InputError
from unimos.report.figures import figure, organ_colors, save

VIEWS = ("axial", "coronal", "sagittal")
VIEW_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}  # the RAS array axis each view slices across
# Letters at the (left, right, top, bottom) edges of each view after `view_plane`.
VIEW_EDGES = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}
CT_WINDOW_HU = (40.0, 400.0)  # abdomen window: level 40 HU, width 400 HU
MR_PERCENTILES = (1.0, 99.0)  # the description in `display_window` names them
MONTAGE_DPI = 120
PANEL_IN = 2.4
_ZOOM_MARGIN_MM = 12.0      # around an organ's box, at least this much context on each side...
_ZOOM_MARGIN_SHARE = 0.3    # ...or this share of the organ's extent, whichever is larger
_MIN_FIELD_MM = 70.0        # a zoomed panel never shows less than this (small organs stay recognisable)
_DASHED = (0, (3.0, 2.0))  # prediction outlines: short dashes stay visible around small organs
_PERCENTILE_VOXELS = 2_000_000  # percentiles of larger MR volumes are taken on a regular subsample

ORIENTATION_NOTE = ("Radiological convention: axial with anterior up and the patient's right on the image's left; "
                    "coronal with superior up and the patient's right on the left; sagittal with superior up and "
                    "anterior on the left.")


@dataclass(frozen=True)
class CaseFigure:
    """What a case montage shows, for its caption.

    drawn: structures with a row; not_annotated: structures the reference does not annotate (those with a
    predicted region are drawn, marked so); absent: annotated structures empty in reference and prediction;
    window: the intensity window, in words; has_prediction: whether a prediction was drawn.
    """

    path: Path
    method: str
    drawn: tuple[str, ...]
    not_annotated: tuple[str, ...]
    absent: tuple[str, ...]
    window: str
    notes: tuple[str, ...]
    has_prediction: bool


def canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The array reoriented to RAS (nibabel's closest canonical) and its voxel size along R, A, S (mm)."""
    image = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64)))
    spacing = np.linalg.norm(image.affine[:3, :3], axis=0)
    return np.asarray(image.dataobj), tuple(float(s) for s in spacing)  # type: ignore[return-value]


def view_plane(volume: np.ndarray, view: str, index: int,
               box: Sequence[slice] | None = None) -> np.ndarray:
    """A 2D plane of a RAS array in radiological display orientation (row 0 at the top, column 0 at the left).

    `box` crops the two in-plane axes (its entry for the sliced axis is ignored).
    """
    selection: list = list(box) if box is not None else [slice(None)] * 3
    selection[VIEW_AXIS[view]] = index
    # The two remaining axes (a, b) become (columns, rows); both reversed: R and A (or S) lie at the low end
    # of a RAS axis in display terms (the patient's right on the left, anterior/superior at the top).
    return volume[tuple(selection)].T[::-1, ::-1]


def view_aspect(spacing: Sequence[float], view: str) -> float:
    """Height / width of one displayed pixel, so anatomy keeps its proportions."""
    a, b = (axis for axis in range(3) if axis != VIEW_AXIS[view])
    return spacing[b] / spacing[a]


def display_window(image: np.ndarray, modality: str) -> tuple[float, float, str]:
    """(low, high, description): CT abdomen window W400 L40; other modalities their 1st-99th percentiles."""
    if modality.upper() == "CT":
        level, width = CT_WINDOW_HU
        return level - width / 2, level + width / 2, f"CT window W{width:g} L{level:g} HU"
    step = max(1, math.ceil((image.size / _PERCENTILE_VOXELS) ** (1 / 3)))
    sample = image[::step, ::step, ::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0, f"{modality} intensities"
    low, high = (float(v) for v in np.percentile(sample, MR_PERCENTILES))
    return low, high if high > low else low + 1.0, f"{modality} window: 1st to 99th percentile of the volume"


def render_case(case: Case, taxonomy: Taxonomy, prediction_path: Path | None, method: str, path: Path,
                dsc: Mapping[str, float] | None = None) -> CaseFigure:
    """Draw one case (reference from `to_project_labels`, image from `read_volume`) into a PNG at `path`.

    Args:
        case: a labeled case of the manifest.
        taxonomy: the project classes (prediction values are their indices).
        prediction_path: the method's label map on the case's grid; None draws the reference alone.
        method: the method's name, for the legend.
        path: where the PNG goes.
        dsc: DSC per structure of this method on this case, for the row labels.

    Raises:
        InputError: a file cannot be read, or image and reference are not on one grid.
    """
    if case.label_path is None or not case.image_paths:
        raise InputError(case.case_id, "has no image or no reference label to draw",
                         "give the case an image and a label in the manifest")
    notes: list[str] = []
    image_volume = read_volume(case.image_paths[0], "image")
    label_volume = read_volume(case.label_path, "label")
    reference, _annotated_region = to_project_labels(case, taxonomy, label_volume, image_volume)
    image, spacing = canonical(image_volume.array, image_volume.affine)
    reference, _ = canonical(reference, label_volume.affine)
    if image.shape != reference.shape:
        raise InputError(case.label_path, f"is not on its image's grid (shape {reference.shape} after reorienting, "
                         f"the image {image.shape})", "resample the label onto the image")
    prediction = None
    if prediction_path is not None:
        prediction_volume = read_volume(prediction_path, "label")
        prediction, _ = canonical(prediction_volume.array, prediction_volume.affine)
        if prediction.shape != reference.shape:
            notes.append(f"the prediction {prediction_path.name} is not on the case's grid and is not drawn")
            prediction = None
    if case.annotated_slices is not None:
        notes.append("sparse reference: it is annotated on a few slices only, so its outlines appear only there")

    structures = _structures(taxonomy, case, reference, prediction)
    low, high, window = display_window(image, case.modality)
    colors = organ_colors(taxonomy.names[1:])
    rows = [s for s in structures if s.drawn]
    overview = _overview_centre(structures, reference.shape)
    with figure(PANEL_IN * 3, PANEL_IN * (1 + len(rows)) + 0.5, nrows=1 + len(rows), ncols=3) as (fig, axes):
        for column, view in enumerate(VIEWS):
            ax = axes[0, column]
            index = overview[VIEW_AXIS[view]]
            _draw_panel(ax, view_plane(image, view, index), (low, high), view_aspect(spacing, view),
                        [(view_plane(s.reference_values, view, index) if s.annotated else None,
                          view_plane(s.prediction_values, view, index) if s.prediction_values is not None else None,
                          s, colors[s.name]) for s in rows])
            _edge_letters(ax, view)
            ax.set_title(view)
        axes[0, 0].set_ylabel("overview", fontsize=9)
        for row, structure in enumerate(rows, start=1):
            for column, view in enumerate(VIEWS):
                ax = axes[row, column]
                index = structure.slice_index(VIEW_AXIS[view])
                box = structure.zoom_box(spacing, reference.shape)
                _draw_panel(ax, view_plane(image, view, index, box), (low, high), view_aspect(spacing, view),
                            [(view_plane(structure.reference_values, view, index, box) if structure.annotated
                              else None,
                              view_plane(structure.prediction_values, view, index, box)
                              if structure.prediction_values is not None else None,
                              structure, colors[structure.name])])
            axes[row, 0].set_ylabel(_row_label(structure, dsc), fontsize=8)
        handles = [Line2D([], [], color="0.2", lw=1.5, label="reference")]
        if prediction is not None:
            handles.append(Line2D([], [], color="0.2", lw=1.3, ls=_DASHED, label=f"prediction ({method})"))
        handles += [Patch(facecolor=colors[s.name], edgecolor="0.3", label=s.name) for s in rows]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize=8,
                   bbox_to_anchor=(0.5, 0.0))
        drawn = f"reference solid, {method} dashed" if prediction is not None else "reference (no prediction)"
        fig.suptitle(f"{case.case_id} ({case.source.name}, {case.modality}): {drawn}", fontsize=10)
        fig.tight_layout(rect=(0, 0.03 + 0.12 / (1 + len(rows)), 1, 0.98))
        save(fig, path, dpi=MONTAGE_DPI)
    return CaseFigure(path, method, tuple(s.name for s in rows),
                      tuple(s.name for s in structures if not s.annotated),
                      tuple(s.name for s in structures if s.annotated and not s.drawn), window, tuple(notes),
                      prediction is not None)


# ----------------------------------------------------------------------------------------------- structures


@dataclass
class _Structure:
    """One project structure in one case: where it lies in reference and prediction (RAS voxel indices)."""

    name: str
    members: list[int]  # the class and its descendants: scored as one region, as `unimos evaluate` does
    annotated: bool
    reference_values: np.ndarray  # the whole RAS reference; masks are taken plane by plane
    prediction_values: np.ndarray | None
    box: tuple[slice, ...] | None  # union of reference and prediction extents
    centre: tuple[int, int, int] | None
    size: int  # reference voxels (annotated) or predicted voxels

    @property
    def drawn(self) -> bool:
        return self.box is not None

    def mask(self, values: np.ndarray) -> np.ndarray:
        return np.isin(values, self.members)

    def slice_index(self, axis: int) -> int:
        """The slice through the centre; when the organ misses it (a curved organ), the slice where it is largest."""
        assert self.box is not None and self.centre is not None
        index = self.centre[axis]
        source = self.reference_values if self.annotated and self._present(self.reference_values) \
            else self.prediction_values
        local = self.mask(source[self.box])
        areas = local.sum(axis=tuple(a for a in range(3) if a != axis))
        start = self.box[axis].start
        if 0 <= index - start < areas.size and areas[index - start] > 0:
            return index
        return start + int(np.argmax(areas))

    def zoom_box(self, spacing: Sequence[float], shape: Sequence[int]) -> tuple[slice, ...]:
        """The organ's box grown by a margin and to a minimum field of view, clipped to the volume."""
        assert self.box is not None
        out = []
        for axis, part in enumerate(self.box):
            extent_mm = (part.stop - part.start) * spacing[axis]
            margin = math.ceil(max(_ZOOM_MARGIN_MM, _ZOOM_MARGIN_SHARE * extent_mm) / spacing[axis])
            start, stop = part.start - margin, part.stop + margin
            short = math.ceil(_MIN_FIELD_MM / spacing[axis]) - (stop - start)
            if short > 0:
                start, stop = start - short // 2, stop + short - short // 2
            out.append(slice(max(start, 0), min(stop, shape[axis])))
        return tuple(out)

    def _present(self, values: np.ndarray | None) -> bool:
        return values is not None and self.box is not None and bool(self.mask(values[self.box]).any())


def _structures(taxonomy: Taxonomy, case: Case, reference: np.ndarray,
                prediction: np.ndarray | None) -> list[_Structure]:
    # find_objects skips values <= 0, so a (bad) negative prediction value needs no copy to be ignored.
    ref_boxes = ndimage.find_objects(reference)
    pred_boxes = ndimage.find_objects(prediction) if prediction is not None else []
    out = []
    for index in range(1, taxonomy.num_classes):
        name = taxonomy.names[index]
        members = [index, *taxonomy.descendants(index)]
        annotated = name in case.annotated_classes
        boxes = ([ref_boxes] if annotated else []) + [pred_boxes]
        found = [b[v - 1] for b in boxes for v in members if v - 1 < len(b) and b[v - 1] is not None]
        box = tuple(slice(min(f[a].start for f in found), max(f[a].stop for f in found)) for a in range(3)) \
            if found else None
        structure = _Structure(name, members, annotated, reference, prediction, box, None, 0)
        if box is not None:
            values = reference if annotated and structure._present(reference) else prediction
            local = structure.mask(values[box])
            centre = np.argwhere(local).mean(axis=0)
            structure.centre = tuple(int(round(c)) + box[a].start for a, c in enumerate(centre))  # type: ignore
            structure.size = int(local.sum())
        out.append(structure)
    return out


def _overview_centre(structures: Sequence[_Structure], shape: Sequence[int]) -> tuple[int, int, int]:
    """Centre of the largest annotated organ in the reference; else of the largest prediction; else the middle."""
    in_reference = [s for s in structures if s.drawn and s.annotated and s._present(s.reference_values)]
    candidates = in_reference or [s for s in structures if s.drawn]
    if not candidates:
        return tuple(n // 2 for n in shape)  # type: ignore[return-value]
    return max(candidates, key=lambda s: s.size).centre  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- drawing


def _draw_panel(ax, plane: np.ndarray, window: tuple[float, float], aspect: float,
                outlines: Sequence[tuple[np.ndarray | None, np.ndarray | None, _Structure, str]]) -> None:
    height, width = plane.shape
    ax.imshow(plane, cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
    for reference, prediction, structure, color in outlines:
        if reference is not None:
            _outline(ax, structure.mask(reference), color, "solid", 1.5)
        if prediction is not None:
            _outline(ax, structure.mask(prediction), color, _DASHED, 1.3)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_aspect(aspect)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _outline(ax, mask: np.ndarray, color: str, style, width: float) -> None:
    """The mask's outline at the voxel borders; padded so a region touching the plane's edge is closed too."""
    if not mask.any():
        return
    padded = np.pad(mask.astype(np.float32), 1)
    rows = np.arange(-1, mask.shape[0] + 1)
    columns = np.arange(-1, mask.shape[1] + 1)
    ax.contour(columns, rows, padded, levels=[0.5], colors=[color], linestyles=[style], linewidths=width)


def _edge_letters(ax, view: str) -> None:
    left, right, top, bottom = VIEW_EDGES[view]
    style = {"transform": ax.transAxes, "color": "#ffd54f", "fontsize": 8, "fontweight": "bold"}
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def _row_label(structure: _Structure, dsc: Mapping[str, float] | None) -> str:
    if not structure.annotated:
        return f"{structure.name}\nnot annotated\nin the reference"
    value = (dsc or {}).get(structure.name, math.nan)
    return f"{structure.name}\nDSC {value:.3f}" if math.isfinite(value) else structure.name
