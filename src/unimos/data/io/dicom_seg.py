"""Prediction files as DICOM Segmentations (`--format dicom-seg`) that reference the DICOM series they were
predicted from, through highdicom; pydicom and highdicom are imported by the writer alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unimos import __version__
from unimos.data.colors import Concept, class_coding, class_color, generic_coding
from unimos.data.io.common import affine_from_lps, label_values, storage_dtype
from unimos.data.io.dicom import dicom_series, is_dicom_series_folder
from unimos.data.io.registry import OutputFormat, register_output
from unimos.data.volume import Volume
from unimos.errors import InputError, OutputError
from unimos.utils.atomic import atomic_path

_ON_GRID_TOLERANCE = 1e-2  # voxels: how far a DICOM pixel centre may sit from a label voxel centre


def _series_files(folder: Path) -> list[str]:
    """Files of the one DICOM series in `folder` (read_volume has refused folders with none or several)."""
    series = dicom_series(folder)
    if len(series) != 1:
        raise InputError(folder, f"holds {len(series)} DICOM series, but a DICOM SEG references exactly one",
                         "give the folder of the one series that was segmented")
    return list(next(iter(series.values())))


def _read_headers(files: Sequence[str]) -> list:
    """The DICOM headers (no pixel data: a SEG needs only identifiers and geometry of its source)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets = []
    for name in files:
        try:
            datasets.append(pydicom.dcmread(name, stop_before_pixels=True))
        except (InvalidDicomError, OSError, ValueError, EOFError) as err:
            raise InputError(name, f"cannot be read as DICOM ({err})",
                             "export the series again, or write the prediction as --format nifti") from err
    for name, ds in zip(files, datasets):
        missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
                   if not ds.get(k)]
        if missing:
            raise InputError(name, f"lacks {', '.join(missing)}, so a DICOM SEG cannot place its frames",
                             "write the prediction as --format nifti or seg-nrrd")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(name, "is a multi-frame DICOM image; DICOM SEG output supports one slice per file",
                             "write the prediction as --format nifti or seg-nrrd")
    return datasets


def _fill_identifiers(datasets: list, files: Sequence[str]) -> list:
    """The source headers (in memory only) with the identifiers a SEG must copy or reference filled in.

    De-identified series may leave SOPInstanceUID/SOPClassUID empty (the file meta keeps them) and
    StudyInstanceUID/SeriesInstanceUID (or FrameOfReferenceUID) empty. The SOP UIDs are taken from the file meta,
    the only place the slices are still named. Empty study/series/frame-of-reference UIDs are replaced by UIDs
    derived from the slices' SOP instance UIDs, so every SEG of the same series gets the same ones.
    """
    from pydicom.uid import generate_uid

    for name, ds in zip(files, datasets):
        meta = getattr(ds, "file_meta", None)
        if not ds.get("SOPInstanceUID"):
            ds.SOPInstanceUID = getattr(meta, "MediaStorageSOPInstanceUID", "") if meta is not None else ""
        if not ds.get("SOPClassUID"):
            ds.SOPClassUID = getattr(meta, "MediaStorageSOPClassUID", "") if meta is not None else ""
        if not ds.SOPInstanceUID or not ds.SOPClassUID:
            raise InputError(name, "has no SOP Instance UID or SOP Class UID, so a DICOM SEG cannot reference it",
                             "write the prediction as --format nifti or seg-nrrd")
    sop_uids = sorted(str(ds.SOPInstanceUID) for ds in datasets)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        if any(not ds.get(keyword) for ds in datasets):
            uid = generate_uid(entropy_srcs=[keyword, *sop_uids])
            for ds in datasets:
                setattr(ds, keyword, ds.get(keyword) or uid)
    return datasets


def _frame_labels(labels: Volume, ds, where: Path) -> np.ndarray:
    """The label values at the pixel centres of one DICOM slice, (Rows, Columns), read off the label grid.

    Pixel (r, c) of a slice lies at ImagePositionPatient + c * PixelSpacing[1] * row direction
    + r * PixelSpacing[0] * column direction (LPS mm; ImageOrientationPatient = row direction, column direction).
    Its label voxel is that point through the inverse affine; it must be a voxel centre, which holds whatever
    axis order and flips the reader chose.
    """
    orientation = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    axes = np.column_stack([orientation[:3], orientation[3:], np.cross(orientation[:3], orientation[3:])])
    # The slice as a one-voxel-thick image: voxel (c, r, 0) -> RAS mm, then into label voxels.
    slice_affine = affine_from_lps((column_spacing, row_spacing, 1.0), [float(v) for v in ds.ImagePositionPatient],
                                   axes.ravel())
    slice_to_label = np.linalg.inv(labels.affine) @ slice_affine
    start, step_column, step_row = slice_to_label[:3, 3], slice_to_label[:3, 0], slice_to_label[:3, 1]
    exact = np.stack([start, step_column, step_row])
    if np.max(np.abs(exact - np.round(exact))) > _ON_GRID_TOLERANCE:
        raise OutputError(where, f"the label map does not lie on the grid of slice {ds.SOPInstanceUID} (its pixel "
                                 f"(0, 0) falls at voxel {np.round(start, 3).tolist()})",
                          "write the prediction in the input series' own geometry, as `unimos predict` does")
    start, step_column, step_row = (np.round(v).astype(np.int64) for v in (start, step_column, step_row))
    rows, columns = np.arange(int(ds.Rows))[:, None, None], np.arange(int(ds.Columns))[None, :, None]
    index = start + rows * step_row + columns * step_column  # (Rows, Columns, 3)
    if index.min() < 0 or np.any(index.max(axis=(0, 1)) >= np.asarray(labels.shape)):
        raise OutputError(where, f"slice {ds.SOPInstanceUID} reaches outside the label map of shape {labels.shape}",
                          "write the prediction in the input series' own geometry, as `unimos predict` does")
    return labels.array[index[..., 0], index[..., 1], index[..., 2]]


def _code(concept: Concept):
    import highdicom as hd

    return hd.sr.CodedConcept(value=concept.value, scheme_designator=concept.scheme, meaning=concept.meaning)


def _segment_description(number: int, name: str):
    """One SEG segment: label = class name, SNOMED CT coding where known, Slicer colour, algorithm unimos."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    coding = class_coding(name) or generic_coding()
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],  # LO: at most 64 characters
        segmented_property_category=_code(coding.category),
        segmented_property_type=_code(coding.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="unimos", family=codes.cid7162.ArtificialIntelligence, version=__version__),
        anatomic_regions=[_code(coding.region)] if coding.region is not None else None,
        display_color=hd.color.CIELabColor.from_rgb(*class_color(name)),
    )
    if coding.type_modifier is not None:  # laterality sits inside the type item (PS3.3 C.8.20.4)
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _code(coding.type_modifier)]
    return description


def write_dicom_seg(labels: Volume, path: str | Path, class_names: Sequence[str],
                    source_series_folder: str | Path) -> Path:
    """Write a DICOM Segmentation (binary) of `labels` that references the DICOM series it was predicted from.

    `labels` must be in the geometry `read_volume(source_series_folder)` gives; each slice of the series becomes
    a frame, matched by position (not by file order). One segment per class present in the prediction, labelled
    with the class name, coded in SNOMED CT where a code exists, algorithm AUTOMATIC "unimos" with its version.
    The SEG gets new series and instance UIDs; when the source lacks study/series UIDs (de-identified), UIDs
    derived from its slices stand in for them (see `_fill_identifiers`).

    Args:
        labels: integer label map in the series' geometry.
        path: output file (`.dcm`).
        class_names: name of each label value, index 0 = background.
        source_series_folder: the folder holding the one DICOM series that was segmented.
    Raises:
        InputError: the series cannot be referenced (unreadable, no UIDs, no geometry).
        OutputError: `labels` does not lie on the series' grid, or nothing was segmented.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    path, folder = Path(path), Path(source_series_folder)
    label_values(labels, class_names)
    files = _series_files(folder)
    sources = _fill_identifiers(_read_headers(files), files)
    frames = np.stack([_frame_labels(labels, ds, path) for ds in sources])  # (slices, Rows, Columns)
    present = [int(v) for v in np.unique(frames) if v > 0]
    if not present:
        raise OutputError(path, "the prediction holds no voxel of any class, and a DICOM SEG needs at least one "
                                "segment, so none was written",
                          "check that the scan shows what the model segments; --format nifti writes empty results")
    segment_of = np.zeros(len(class_names), dtype=storage_dtype(len(present) + 1))
    segment_of[present] = np.arange(1, len(present) + 1)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=segment_of[frames],  # values are segment numbers 1..S, 0 = no segment
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(n, class_names[v]) for n, v in enumerate(present, start=1)],
        series_instance_uid=generate_uid(),
        series_number=1000,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="unimos",
        manufacturer_model_name="unimos",
        software_versions=__version__,
        device_serial_number="0",
        content_label="UNIMOS",
        content_description="unimos automatic segmentation",
        series_description="unimos segmentation",
    )
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return path



def _check_source(source: Path | None) -> None:
    """Refuse, before any work, an input that is not a DICOM series: a SEG must reference the slices it segments."""
    if source is None or not is_dicom_series_folder(source):
        where = source if source is not None else "the input"
        raise InputError(where, "is not a DICOM series folder, and a DICOM SEG (--format dicom-seg) must reference "
                                "the DICOM slices it segments",
                         "use --format nifti or --format seg-nrrd for this input, or give the folder holding its "
                         "DICOM series")


register_output(OutputFormat(name="dicom-seg", suffix=".dcm",
                             write=lambda labels, path, class_names, source: write_dicom_seg(labels, path,
                                                                                             class_names, source),
                             check_source=_check_source))
