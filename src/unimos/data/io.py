"""Reading and writing volumes: NIfTI, NRRD, MetaImage and DICOM series in, NIfTI out, always as RAS+ `Volume`s.

Every failure a user can cause becomes one `InputError` naming the file, the problem and the fix, so a batch
of hundreds of files can be checked without a traceback. NIfTI goes through nibabel (its affine is already
RAS+); the other formats go through SimpleITK, whose LPS geometry is converted here and nowhere else.
"""

from __future__ import annotations

import difflib
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.filebasedimages import ImageFileError
from nibabel.openers import ImageOpener
from nibabel.spatialimages import HeaderDataError
from numpy.typing import DTypeLike

from unimos.data.volume import Volume
from unimos.errors import InputError, OutputError, ResourceError
from unimos.utils.atomic import atomic_path

Kind = Literal["image", "label"]
Shape3 = tuple[int, int, int]

NIFTI_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii")
SITK_EXTENSIONS: tuple[str, ...] = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_EXTENSIONS: tuple[str, ...] = NIFTI_EXTENSIONS + SITK_EXTENSIONS
DICOM_EXTENSIONS: tuple[str, ...] = (".dcm", ".dicom", ".ima")

# What nibabel raises on truncated, corrupt or foreign files (found by cutting and flipping bytes of real files).
_NIBABEL_READ_ERRORS: tuple[type[BaseException], ...] = (
    ImageFileError, HeaderDataError, OSError, EOFError, zlib.error, ValueError,
)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_SUPPORTED = ("NIfTI (.nii.gz, .nii), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) files or folders each holding "
              "one DICOM series")
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")
# zlib's documented limit: deflate expands at most 1032-fold (one bit per 258-byte match), so a .nii.gz of N bytes
# holds at most 1032 N bytes; exact, unlike the gzip trailer's size, which is mod 2^32 and only of the last member.
_DEFLATE_MAX_RATIO = 1032
_DESCRIPTION_TAG = "0008|103e"
_POSITION_TAG = "0020|0032"
_ORIENTATION_TAG = "0020|0037"


# ----------------------------------------------------------------------------------------------- names


def image_extension(path: str | Path) -> str | None:
    """The image extension ending `path` ('.nii.gz', '.nrrd', ...), lower case, or None: the name picks the reader."""
    name = Path(path).name.lower()
    return next((ext for ext in IMAGE_EXTENSIONS if name.endswith(ext)), None)


def case_id_from_path(path: str | Path) -> str:
    """Case id: file name without image extension and nnU-Net channel suffix (`_0000`), or a folder's name."""
    path = Path(path)
    ext = image_extension(path)
    if ext is None or path.is_dir():
        return path.name
    return _CHANNEL_SUFFIX.sub("", path.name[: -len(ext)])


def _where(path: str | Path) -> str:
    """The full path used in error messages, so the user can find the file whatever the working folder."""
    return str(Path(path).expanduser().absolute())


# ----------------------------------------------------------------------------------------------- geometry


def affine_from_lps(spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]) -> np.ndarray:
    """RAS+ 4x4 affine (nibabel) from ITK's LPS spacing, origin and row-major direction (first three axes used)."""
    dim = len(spacing)
    dir_matrix = np.asarray(direction, dtype=np.float64).reshape(dim, dim)[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ dir_matrix @ np.diag(np.asarray(spacing[:3], dtype=np.float64))
    affine[:3, 3] = _LPS_TO_RAS @ np.asarray(origin[:3], dtype=np.float64)
    return affine


def lps_from_affine(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """ITK spacing, origin and row-major direction from a RAS+ affine: the exact inverse of `affine_from_lps`."""
    affine = np.asarray(affine, dtype=np.float64)
    lps = _LPS_TO_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if not np.all(spacing > 0):
        raise ValueError(f"affine has a zero-length axis, spacing {spacing.tolist()}")
    direction = lps / spacing
    origin = _LPS_TO_RAS @ affine[:3, 3]
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())


def _affine_problem(affine: np.ndarray) -> str | None:
    """Why an affine cannot map voxels to the world (non-finite or singular), or None when it can."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        return "its voxel-to-world affine contains NaN or Inf"
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(norms == 0):
        return f"its voxel-to-world affine is singular (voxel size {norms.round(6).tolist()} mm has a zero)"
    # Determinant relative to the column lengths: 1 for orthogonal axes, 0 when axes are parallel (scale-free).
    if abs(np.linalg.det(affine[:3, :3])) / np.prod(norms) < 1e-6:
        return "its voxel-to-world affine is singular (two voxel axes point the same way)"
    return None


_GEOMETRY_FIX = ("fix the header geometry (pixdim/sform/qform or spacing and direction) in the tool that wrote the "
                 "file, then export it again")


def _check_affine(affine: np.ndarray, where: str) -> np.ndarray:
    """Refuse an affine that cannot place voxels in the world: every later step (resampling, outputs) needs it."""
    problem = _affine_problem(affine)
    if problem is not None:
        raise InputError(where, problem, _GEOMETRY_FIX)
    return np.asarray(affine, dtype=np.float64)


def _shape_3d(shape: Sequence[int], where: str) -> Shape3:
    """Shape with trailing singleton dimensions beyond the third dropped; 2D and true 4D+ shapes are refused."""
    dims = [int(s) for s in shape]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) == 3:
        return dims[0], dims[1], dims[2]
    if len(dims) < 3:
        raise InputError(where, f"holds a {len(dims)}D image of shape {tuple(dims)}, but unimos needs one 3D volume "
                                "per file",
                         "save the image as a 3D volume (stack 2D slices into one file; a single slice as shape "
                         "(X, Y, 1))")
    raise InputError(where, f"holds a {len(dims)}D array of shape {tuple(dims)}, but unimos needs one 3D volume "
                            "per file",
                     "give one file per channel named like nnU-Net (case_0000.nii.gz, case_0001.nii.gz, ...); "
                     "for a time series save each frame as its own file")


# ----------------------------------------------------------------------------------------------- voxel types


def _smallest_int_dtype(low: int, high: int) -> np.dtype:
    """Smallest of uint8/int16/int32/int64 holding [low, high]: label maps stay small in memory."""
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _label_array(array: np.ndarray, where: str) -> np.ndarray:
    """Integer label array; float files are accepted only when every voxel is a whole number."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        if np.iscomplexobj(array):
            raise InputError(where, "is read as a label map but holds complex numbers",
                             "give a label map of integer class ids")
        bad = ~np.isfinite(array)
        bad[~bad] = array[~bad] != np.round(array[~bad])
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            examples = ", ".join(f"{v:g}" for v in np.unique(array[bad])[:3])
            raise InputError(where, f"is read as a label map but {n_bad} of {array.size} voxels are not whole numbers "
                                    f"(e.g. {examples})",
                             "give the label map of integer class ids, not an image or probability map; labels "
                             "that were resampled must use nearest-neighbour interpolation")
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = int(array.min()), int(array.max())
    dtype = _smallest_int_dtype(low, high)
    return array if array.dtype == dtype else array.astype(dtype)


def _as_kind(array: np.ndarray, kind: Kind, where: str) -> np.ndarray:
    """Images as float32 intensities, labels as the smallest integer type."""
    if kind == "label":
        return _label_array(array, where)
    return array if array.dtype == np.float32 else array.astype(np.float32)


def _check_kind(kind: str) -> None:
    """Catch a misspelt kind early (a programming error, not a user one)."""
    if kind not in ("image", "label"):
        raise ValueError(f"kind must be 'image' or 'label', got {kind!r}")


def count_nonfinite(volume: Volume) -> int:
    """Number of NaN/Inf voxels; reading allows them so validation can report them with all other problems."""
    array = volume.array
    if not np.issubdtype(array.dtype, np.inexact):
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


# ----------------------------------------------------------------------------------------------- SimpleITK


def sitk_to_volume(img: sitk.Image, path: str | Path | None = None) -> Volume:
    """Volume (voxels indexed i, j, k; RAS+ affine) from a SimpleITK image, keeping its native voxel type."""
    where = _where(path) if path is not None else "<in-memory SimpleITK image>"
    size = list(img.GetSize())
    components = img.GetNumberOfComponentsPerPixel()
    shape = _shape_3d(size + ([components] if components > 1 else []), where)
    affine = _check_affine(affine_from_lps(img.GetSpacing(), img.GetOrigin(), img.GetDirection()), where)
    # GetArrayFromImage gives (k, j, i) for 3D and (1, k, j, i) for 4D with a singleton last axis.
    array = sitk.GetArrayFromImage(img).reshape(shape[::-1]).transpose(2, 1, 0)
    return Volume(np.ascontiguousarray(array), affine, Path(path) if path is not None else None)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """SimpleITK image (LPS geometry) of a Volume: the exact inverse of `sitk_to_volume`, for resampling."""
    array = volume.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    spacing, origin, direction = lps_from_affine(volume.affine)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def _itk_reason(err: BaseException) -> str:
    """ITK's exception text without the C++ source locations and object addresses: the readable part only."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown in SimpleITK")]
    text = " ".join(lines) or type(err).__name__
    text = re.sub(r"(sitk::ERROR|itk::ERROR|ITK ERROR):\s*(\w+\(0x[0-9a-fA-F]+\):\s*)?", "", text)
    text = re.sub(r"\S+\.(cxx|h|hxx):\d+:?\s*", "", text)
    return text.strip()[:300]


def _sitk_reader(path: Path) -> sitk.ImageFileReader:
    """An ImageFileReader bound to `path`."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    return reader


def _corrupt_sitk_error(where: str, err: BaseException) -> InputError:
    """The one error for a NRRD/MetaImage file SimpleITK cannot read."""
    return InputError(where, f"cannot be read as an image ({_itk_reason(err)})",
                      "the file is truncated, corrupt or not an image (for .mhd/.nhdr check that the data file "
                      "it names sits beside it); export it again")


def _read_sitk_file(path: Path, kind: Kind) -> Volume:
    """Read a NRRD or MetaImage file through SimpleITK."""
    where = _where(path)
    try:
        img = _sitk_reader(path).Execute()
    except RuntimeError as err:
        raise _corrupt_sitk_error(where, err) from err
    volume = sitk_to_volume(img, path)
    return Volume(_as_kind(volume.array, kind, where), volume.affine, volume.path)


def _sitk_file_geometry(path: Path) -> tuple[Shape3, np.ndarray]:
    """Shape and affine from a NRRD/MetaImage header, without reading voxels."""
    where = _where(path)
    reader = _sitk_reader(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise _corrupt_sitk_error(where, err) from err
    components = reader.GetNumberOfComponents()
    shape = _shape_3d(list(reader.GetSize()) + ([components] if components > 1 else []), where)
    affine = affine_from_lps(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    return shape, _check_affine(affine, where)


# ----------------------------------------------------------------------------------------------- NIfTI


def _sniff_gzip(path: Path, where: str) -> None:
    """Refuse a `.nii.gz` that is not gzip data, telling a misnamed plain NIfTI apart from a foreign file."""
    with open(path, "rb") as handle:
        head = handle.read(348)
    if head[:2] == b"\x1f\x8b":
        return
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00",):
        raise InputError(where, "is an uncompressed NIfTI file but its name ends in .nii.gz",
                         "rename it to end in .nii (or gzip it)")
    raise InputError(where, "is not a NIfTI image (a .nii.gz file must be gzip data, and this one is not)",
                     "check that this is the image you meant, and export it again as NIfTI (.nii.gz)")


def _corrupt_nifti_error(where: str, err: BaseException) -> InputError:
    """The one error for a NIfTI file nibabel cannot read."""
    reason = f"{type(err).__name__}: {err}".strip()[:300]
    if isinstance(err, ImageFileError):
        return InputError(where, f"is not a readable NIfTI image: its header is missing, cut short or of another "
                                 f"format ({reason})",
                          "check that this is the image you meant; copy or export it again as NIfTI")
    return InputError(where, f"cannot be read as NIfTI: the file is truncated, corrupt or not an image ({reason})",
                      "the file was probably not copied or written completely; copy or export it again")


def _load_nifti(path: Path) -> nib.Nifti1Image:
    """nibabel's image object for `path` (header read, voxels not yet), with every nibabel failure as InputError."""
    where = _where(path)
    if path.name.lower().endswith(".nii.gz"):
        _sniff_gzip(path, where)
    try:
        img = nib.load(str(path), mmap=False)
    except _NIBABEL_READ_ERRORS as err:
        raise _corrupt_nifti_error(where, err) from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(where, f"is a {type(img).__name__}, not a NIfTI image", "export it again as NIfTI (.nii.gz)")
    return img


def _check_pixdim(img: nib.Nifti1Image, path: Path, where: str) -> None:
    """Refuse voxel sizes of 0, negative or NaN when they make the affine (no sform): nibabel would quietly use 1 mm
    for a zero and the absolute value for a negative one, so the scan would be resampled to a made-up size."""
    if int(img.header["sform_code"]) > 0:
        return
    try:
        with ImageOpener(str(path)) as handle:  # the header as stored: nibabel fixed its copy while loading
            stored = type(img.header).from_fileobj(handle, check=False)
    except _NIBABEL_READ_ERRORS as err:
        raise _corrupt_nifti_error(where, err) from err
    n_spatial = int(np.clip(stored["dim"][0], 1, 3))
    pixdim = np.asarray(stored["pixdim"][1:1 + n_spatial], dtype=np.float64)
    if not np.all(np.isfinite(pixdim) & (pixdim > 0)):
        raise InputError(where, f"its header gives voxel sizes (pixdim) of {pixdim.tolist()} mm, and a voxel size must "
                                "be a positive number (there is no sform to take the geometry from instead)",
                         _GEOMETRY_FIX)


def _nifti_affine(img: nib.Nifti1Image, path: Path, where: str) -> np.ndarray:
    """The RAS+ affine of a loaded NIfTI image, refused when it cannot be trusted."""
    _check_pixdim(img, path, where)
    return _check_affine(img.affine, where)


def _nifti_geometry(path: Path) -> tuple[Shape3, np.ndarray]:
    """Shape and affine from a NIfTI header, without reading voxels."""
    where = _where(path)
    img = _load_nifti(path)
    return _shape_3d(img.shape, where), _nifti_affine(img, path, where)


def _size_text(n_bytes: float) -> str:
    """A byte count for people: '1.2 KiB', '119.2 GiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GiB"


def _check_nifti_size(img: nib.Nifti1Image, path: Path, where: str) -> None:
    """Refuse, before allocating, a header whose voxels cannot be in the file (a huge dim in a tiny file)."""
    n_voxels = int(np.prod([int(d) for d in img.shape], dtype=object))
    needed = n_voxels * img.header.get_data_dtype().itemsize
    offset = int(getattr(img.dataobj, "offset", 0))  # the header's copy says 0 once nibabel has loaded it
    size = path.stat().st_size
    compressed = path.name.lower().endswith(".gz")
    room = _DEFLATE_MAX_RATIO * size if compressed else size - offset
    if needed + (offset if compressed else 0) <= room:
        return
    dims = "x".join(str(int(d)) for d in img.shape)
    claim = f"its header describes {dims} voxels of {img.header.get_data_dtype()} ({_size_text(needed)})"
    if compressed:
        held = (f"the file is {_size_text(size)} of gzip data, which expands to at most {_size_text(room)} "
                f"(deflate's limit is {_DEFLATE_MAX_RATIO}:1)")
    else:
        held = f"the file holds {_size_text(max(room, 0))} of voxels"
    raise InputError(where, f"{claim}, but {held}: the header's dimensions are wrong or the file is truncated",
                     "copy or export the image again; if it was written by your own code, check the shape it "
                     "stores in the header")


def _memory_error(where: str, shape: Sequence[int], itemsize: int) -> ResourceError:
    """The error for a volume whose voxels do not fit in memory (instead of a MemoryError traceback)."""
    need = float(np.prod([float(d) for d in shape])) * itemsize
    return ResourceError(where, f"reading its {'x'.join(str(int(d)) for d in shape)} voxels needs about "
                                f"{_size_text(need)} of memory, and the allocation failed",
                         "free memory or use a machine with more, or crop or downsample the scan first")


def _read_nifti(path: Path, kind: Kind) -> Volume:
    """Read a NIfTI file: images scaled by scl_slope/inter to float32, labels as integers."""
    where = _where(path)
    img = _load_nifti(path)
    shape = _shape_3d(img.shape, where)
    affine = _nifti_affine(img, path, where)
    _check_nifti_size(img, path, where)
    try:
        # Labels come unscaled in their stored type when slope/inter are trivial; images always scaled.
        raw = np.asanyarray(img.dataobj) if kind == "label" else img.get_fdata(dtype=np.float32)
        array = _as_kind(np.asarray(raw).reshape(shape), kind, where)
    except _NIBABEL_READ_ERRORS as err:
        raise _corrupt_nifti_error(where, err) from err
    except MemoryError:
        raise _memory_error(where, shape, 4) from None
    # NIfTI voxels are stored in Fortran order; a C-order copy is a 3D transpose (3.6 s for 512 x 512 x 400), so
    # the array keeps its layout and the resampling reads it as it is (preprocess/resample.py).
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)
    return Volume(array, affine, path)


# ----------------------------------------------------------------------------------------------- DICOM


def _looks_like_dicom(path: Path) -> bool:
    """True for a file with a DICOM extension or the 'DICM' marker at byte 128 (cheap: reads 132 bytes)."""
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _visible_children(folder: Path) -> list[Path]:
    """Entries of a folder, sorted, without hidden files (including unfinished atomic writes)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def is_dicom_series_folder(folder: str | Path) -> bool:
    """True when `folder` directly holds DICOM files (checked by marker, without decoding; series are not counted)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    try:
        children = _visible_children(folder)
    except OSError:
        return False
    return any(p.is_file() and image_extension(p) is None and _looks_like_dicom(p) for p in children)


def _series_description(first_file: str) -> str:
    """SeriesDescription (0008,103E) of a DICOM file, or '' when absent or unreadable."""
    reader = _sitk_reader(Path(first_file))
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
        first = next((p for p in _visible_children(folder)
                      if p.is_file() and image_extension(p) is None and _looks_like_dicom(p)), None)
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


def _single_series_files(folder: Path) -> tuple[str, ...]:
    """Files of the one DICOM series in `folder`; none or several is an InputError listing what is there."""
    where = _where(folder)
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
    where = _where(folder)
    files = _single_series_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        img = reader.Execute()
    except RuntimeError as err:
        raise InputError(where, f"the DICOM series cannot be read ({_itk_reason(err)})",
                         "check that all files of the series are complete; export the series again") from err
    if len(files) > 1 and reader.HasMetaDataKey(0, _ORIENTATION_TAG):
        orientation = _vector_tag(reader.GetMetaData(0, _ORIENTATION_TAG))
        positions = [_vector_tag(reader.GetMetaData(i, _POSITION_TAG)) if reader.HasMetaDataKey(i, _POSITION_TAG)
                     else None for i in range(len(files))]
        if orientation is not None and orientation.size == 6 and all(p is not None and p.size == 3 for p in positions):
            normal = np.cross(orientation[:3], orientation[3:])
            _check_slice_spacing(positions, normal, where)  # type: ignore[arg-type]
    volume = sitk_to_volume(img, folder)
    return Volume(_as_kind(volume.array, kind, where), volume.affine, volume.path)


def _dicom_geometry(folder: Path) -> tuple[Shape3, np.ndarray]:
    """Shape and affine of a DICOM series from its first and last headers, computed as ITK's series reader does."""
    where = _where(folder)
    files = _single_series_files(folder)
    first, last = _sitk_reader(Path(files[0])), _sitk_reader(Path(files[-1]))
    try:
        first.ReadImageInformation()
        last.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(where, f"a DICOM file cannot be read ({_itk_reason(err)})",
                         "check that all files of the series are complete; export the series again") from err
    size = list(first.GetSize())
    if len(files) == 1:
        shape = _shape_3d(size, where)
        return shape, _check_affine(affine_from_lps(first.GetSpacing(), first.GetOrigin(), first.GetDirection()), where)
    spacing = list(first.GetSpacing())
    direction = np.asarray(first.GetDirection(), dtype=np.float64).reshape(3, 3)
    step = (np.asarray(last.GetOrigin()) - np.asarray(first.GetOrigin())) / (len(files) - 1)
    if np.linalg.norm(step) > 0:
        spacing[2] = float(np.linalg.norm(step))
        direction[:, 2] = step / spacing[2]
    shape = _shape_3d([size[0], size[1], len(files)], where)
    return shape, _check_affine(affine_from_lps(spacing, first.GetOrigin(), direction.ravel()), where)


# ----------------------------------------------------------------------------------------------- entry points


def _missing_error(path: Path) -> InputError:
    """The error for a path that does not exist, suggesting near names in its folder."""
    where = _where(path)
    parent = Path(where).parent
    if not parent.is_dir():
        return InputError(where, "does not exist", f"check the path: its folder {parent} does not exist either")
    try:
        names = [p.name for p in parent.iterdir()]
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)
    hint = f" (similar names there: {', '.join(close)})" if close else ""
    return InputError(where, "does not exist", f"check the file name and folder{hint}")


def _permission_error(path: str | Path) -> InputError:
    """The error for an input the current user may not read."""
    return InputError(_where(path), "cannot be read: permission denied",
                      "give your user read permission (e.g. chmod u+r), or copy the data somewhere readable")


def _check_access(path: Path) -> None:
    """Refuse a missing, unreadable or empty input before any library sees it (their messages are cryptic)."""
    where = _where(path)
    if not path.exists():
        raise _missing_error(path)
    needed = os.R_OK | (os.X_OK if path.is_dir() else 0)
    if not os.access(path, needed):
        raise _permission_error(path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(where, "is empty (0 bytes)", "the file was not written completely; copy or export it again")


def _format_error(path: Path) -> InputError:
    """The error for a file whose name gives no supported format."""
    where = _where(path)
    if _looks_like_dicom(path):
        return InputError(where, "is a single DICOM file; unimos reads a DICOM series from its folder",
                          f"give the folder that holds the whole series ({Path(where).parent})")
    return InputError(where, f"has an unknown image format ('{''.join(path.suffixes) or path.name}'); unimos reads "
                             f"{_SUPPORTED}", "convert it to NIfTI (.nii.gz)")


def _folder_error(path: Path) -> InputError:
    """The error for a folder given where one image or DICOM series is expected."""
    return InputError(_where(path), "is a folder without DICOM files, not one image",
                      "give one image file or a folder holding one DICOM series")


def _dispatch(path: Path, on_dicom, on_nifti, on_sitk):
    """Pick the reader for `path` by what it is (DICOM folder, NIfTI, SimpleITK file); clear errors otherwise."""
    _check_access(path)
    try:
        if path.is_dir():
            if not is_dicom_series_folder(path):
                raise _folder_error(path)
            return on_dicom(path)
        ext = image_extension(path)
        if ext in NIFTI_EXTENSIONS:
            return on_nifti(path)
        if ext in SITK_EXTENSIONS:
            return on_sitk(path)
        raise _format_error(path)
    except PermissionError as err:
        raise _permission_error(err.filename or path) from err


def read_volume(path: str | Path, kind: Kind = "image") -> Volume:
    """Read one 3D image (float32) or label map (integers) from NIfTI, NRRD, MetaImage or a DICOM series folder."""
    _check_kind(kind)
    return _dispatch(Path(path), lambda p: _read_dicom(p, kind), lambda p: _read_nifti(p, kind),
                     lambda p: _read_sitk_file(p, kind))


def read_geometry(path: str | Path) -> tuple[Shape3, np.ndarray]:
    """Shape and RAS+ affine of an input from its header only (no voxels), for fast validation of many files."""
    return _dispatch(Path(path), _dicom_geometry, _nifti_geometry, _sitk_file_geometry)


def list_inputs(path: str | Path) -> list[Path]:
    """Inputs named by `path`: a file, one DICOM series folder, or a folder batch of image files / series subfolders."""
    path = Path(path)
    _check_access(path)
    if path.is_file():
        return [path]
    where = _where(path)
    children = _visible_children(path)
    images = [p for p in children if p.is_file() and image_extension(p) is not None]
    if is_dicom_series_folder(path):
        if images:
            raise InputError(where, f"mixes DICOM files with {len(images)} image file(s) such as {images[0].name}",
                             "keep a DICOM series in a folder of its own")
        _single_series_files(path)
        return [path]
    series_dirs = [p for p in children if p.is_dir() and is_dicom_series_folder(p)]
    inputs = sorted(images + series_dirs)
    if inputs:
        return inputs
    if not children:
        raise InputError(where, "is empty", f"put the images ({_SUPPORTED}) in it, or give the right folder")
    subfolders = [p.name for p in children if p.is_dir()]
    hint = f"; it has subfolders ({', '.join(subfolders[:5])}): give the one holding the images, e.g. imagesTr" \
        if subfolders else ""
    raise InputError(where, f"holds no readable images ({len(children)} other entries){hint}",
                     f"give a folder of {_SUPPORTED}")


# ----------------------------------------------------------------------------------------------- writing


def _array_for_nifti(array: np.ndarray, dtype: DTypeLike | None) -> np.ndarray:
    """Voxels in the type to store: `dtype` if given (integers rounded and range-checked), else a NIfTI-safe type."""
    if dtype is None:
        if array.dtype == bool:
            return array.astype(np.uint8)
        if array.dtype == np.float16:
            return array.astype(np.float32)
        if array.dtype in (np.int64, np.uint64):  # nibabel refuses 64-bit integers without an explicit type
            low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
            return array.astype(_smallest_int_dtype(low, high))
        return array
    target = np.dtype(dtype)
    if np.issubdtype(target, np.integer) and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"cannot store NaN/Inf voxels as {target}")
        array = np.round(array)
    if np.issubdtype(target, np.integer) and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise ValueError(f"values {array.min()}..{array.max()} do not fit in {target}")
    return array.astype(target, copy=False)


def write_nifti(volume: Volume, path: str | Path, dtype: DTypeLike | None = None) -> Path:
    """Write `volume` as NIfTI atomically, with sform and qform both set to its affine (code 1, scanner)."""
    path = Path(path)
    if not path.name.lower().endswith(NIFTI_EXTENSIONS):
        raise OutputError(_where(path), "is not a NIfTI file name", "give a name ending in .nii.gz or .nii")
    img = nib.Nifti1Image(_array_for_nifti(volume.array, dtype), volume.affine)
    img.set_sform(volume.affine, code=1)
    img.set_qform(volume.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
