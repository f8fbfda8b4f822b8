"""DICOM series: a folder holding the slices of one series, read with GDCM through SimpleITK (any transfer syntax
GDCM decodes, JPEG 2000 included); the Modality tag through pydicom.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from unimos.data.io.common import (
    Kind,
    Shape3,
    affine_from_lps,
    as_kind,
    check_affine,
    full_path,
    shape_3d,
    visible_children,
)
from unimos.data.io.registry import InputFormat, image_extension, register_input
from unimos.data.io.sitk_files import itk_reason, sitk_reader, sitk_to_volume
from unimos.data.volume import Volume
from unimos.errors import InputError

DICOM_EXTENSIONS: tuple[str, ...] = (".dcm", ".dicom", ".ima")
_DESCRIPTION_TAG = "0008|103e"
_POSITION_TAG = "0020|0032"
_ORIENTATION_TAG = "0020|0037"


def looks_like_dicom(path: Path) -> bool:
    """True for a file with a DICOM extension or the 'DICM' marker at byte 128 (cheap: reads 132 bytes)."""
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_series_folder(folder: str | Path) -> bool:
    """True when `folder` directly holds DICOM files (checked by marker, without decoding; series are not counted)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    try:
        children = visible_children(folder)
    except OSError:
        return False
    return any(p.is_file() and image_extension(p) is None and looks_like_dicom(p) for p in children)


def _series_description(first_file: str) -> str:
    """SeriesDescription (0008,103E) of a DICOM file, or '' when absent or unreadable."""
    reader = sitk_reader(Path(first_file))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(_DESCRIPTION_TAG).strip() if reader.HasMetaDataKey(_DESCRIPTION_TAG) else ""


def dicom_modality(folder: str | Path) -> str | None:
    """The Modality tag (0008,0060) of the first DICOM file in a series folder ('CT', 'MR', ...), upper case, read
    from the header alone; None when absent or unreadable (the voxel reader reports unreadable files)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    try:
        first = next((p for p in visible_children(folder)
                      if p.is_file() and image_extension(p) is None and looks_like_dicom(p)), None)
        if first is None:
            return None
        header = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["Modality"], force=True)
    except (OSError, InvalidDicomError, ValueError, EOFError):
        return None
    value = str(getattr(header, "Modality", "") or "").strip().upper()
    return value or None


def dicom_series(folder: str | Path) -> dict[str, tuple[str, ...]]:
    """Series in a folder as {SeriesInstanceUID: files sorted by slice position}; the id may be '' (de-identified)."""
    folder = str(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    return {sid: tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, sid)) for sid in ids}


def single_series_files(folder: Path) -> tuple[str, ...]:
    """Files of the one DICOM series in `folder`; none or several is an InputError listing what is there."""
    where = full_path(folder)
    series = dicom_series(folder)
    if not series:
        raise InputError(where, "holds no readable DICOM series",
                         "check that the folder holds the DICOM files of one series (not a zip, not a DICOMDIR only)")
    if len(series) > 1:
        listing = "; ".join(
            f"series '{sid}' ({len(files)} files{', ' + repr(desc) if (desc := _series_description(files[0])) else ''})"
            for sid, files in series.items())
        raise InputError(where, f"holds {len(series)} DICOM series: {listing}",
                         "put each series in its own folder and give the folder of the series to segment")
    return next(iter(series.values()))


def _vector_tag(text: str) -> np.ndarray | None:
    """A DICOM multi-valued decimal string ('a\\b\\c') as floats, or None when malformed."""
    try:
        return np.array([float(v) for v in text.split("\\")], dtype=np.float64)
    except ValueError:
        return None


def _check_slice_spacing(positions: list[np.ndarray], normal: np.ndarray, where: str) -> None:
    """Refuse a series whose slices are not evenly spaced: ITK would give it one spacing and wrong geometry."""
    if len(positions) < 3:
        return
    along = np.array([float(p @ normal) for p in positions])
    gaps = np.abs(np.diff(along))
    median = float(np.median(gaps))
    if float(gaps.min()) < 1e-3:
        raise InputError(where, f"has {int(np.sum(gaps < 1e-3))} slice(s) at the same position as another",
                         "the folder mixes duplicates or two series with the same SeriesInstanceUID; keep one copy "
                         "of one series in the folder")
    if float(gaps.max() - gaps.min()) > 0.01 * median + 1e-3:
        raise InputError(where, f"has unevenly spaced slices (gaps from {gaps.min():.3f} to {gaps.max():.3f} mm): a "
                                "slice is missing or the series is irregular",
                         "export the complete series again, or resample it to even slices and save it as NIfTI")


def _read_dicom(folder: Path, kind: Kind) -> Volume:
    """Read the one DICOM series in `folder` with GDCM (any transfer syntax GDCM decodes, JPEG 2000 included)."""
    where = full_path(folder)
    files = single_series_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        img = reader.Execute()
    except RuntimeError as err:
        raise InputError(where, f"the DICOM series cannot be read ({itk_reason(err)})",
                         "check that all files of the series are complete; export the series again") from err
    if len(files) > 1 and reader.HasMetaDataKey(0, _ORIENTATION_TAG):
        orientation = _vector_tag(reader.GetMetaData(0, _ORIENTATION_TAG))
        positions = [_vector_tag(reader.GetMetaData(i, _POSITION_TAG)) if reader.HasMetaDataKey(i, _POSITION_TAG)
                     else None for i in range(len(files))]
        if orientation is not None and orientation.size == 6 and all(p is not None and p.size == 3 for p in positions):
            normal = np.cross(orientation[:3], orientation[3:])
            _check_slice_spacing(positions, normal, where)  # type: ignore[arg-type]
    volume = sitk_to_volume(img, folder)
    return Volume(as_kind(volume.array, kind, where), volume.affine, volume.path)


def _dicom_geometry(folder: Path) -> tuple[Shape3, np.ndarray]:
    """Shape and affine of a DICOM series from its first and last headers, computed as ITK's series reader does."""
    where = full_path(folder)
    files = single_series_files(folder)
    first, last = sitk_reader(Path(files[0])), sitk_reader(Path(files[-1]))
    try:
        first.ReadImageInformation()
        last.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(where, f"a DICOM file cannot be read ({itk_reason(err)})",
                         "check that all files of the series are complete; export the series again") from err
    size = list(first.GetSize())
    if len(files) == 1:
        shape = shape_3d(size, where)
        return shape, check_affine(affine_from_lps(first.GetSpacing(), first.GetOrigin(), first.GetDirection()), where)
    spacing = list(first.GetSpacing())
    direction = np.asarray(first.GetDirection(), dtype=np.float64).reshape(3, 3)
    step = (np.asarray(last.GetOrigin()) - np.asarray(first.GetOrigin())) / (len(files) - 1)
    if np.linalg.norm(step) > 0:
        spacing[2] = float(np.linalg.norm(step))
        direction[:, 2] = step / spacing[2]
    shape = shape_3d([size[0], size[1], len(files)], where)
    return shape, check_affine(affine_from_lps(spacing, first.GetOrigin(), direction.ravel()), where)



def _misplaced_file(path: Path) -> InputError | None:
    """The error for one DICOM file given where its series' folder was meant; None for a file that is not DICOM."""
    if not looks_like_dicom(path):
        return None
    return InputError(full_path(path), "is a single DICOM file; unimos reads a DICOM series from its folder",
                      f"give the folder that holds the whole series ({Path(full_path(path)).parent})")


register_input(InputFormat(name="dicom", title="DICOM", description="one DICOM series", read=_read_dicom,
                           geometry=_dicom_geometry, holds=is_dicom_series_folder, check_folder=single_series_files,
                           misplaced_file=_misplaced_file))
