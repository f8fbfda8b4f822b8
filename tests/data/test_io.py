"""Reading and writing volumes: geometry survives every format, and every bad input gives one InputError with a fix."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from tests.reliability.helpers import run_python_as_unprivileged, runs_as_root, unprivileged_workspace
from unimos.data.io import (
    case_id_from_path,
    count_nonfinite,
    is_dicom_series_folder,
    list_inputs,
    read_geometry,
    read_volume,
    sitk_to_volume,
    volume_to_sitk,
    write_nifti,
)
from unimos.data.volume import Volume
from unimos.errors import InputError, OutputError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


# ----------------------------------------------------------------------------------------------- helpers


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """A proper rotation from three angles (radians), for oblique geometries."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _affine(linear: np.ndarray, origin: tuple[float, float, float]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


RAS_AFFINE = _affine(np.diag([0.8, 0.9, 2.5]), (-100.0, 50.5, -804.5))
LPS_AFFINE = _affine(np.diag([-0.9765625, -0.9765625, 2.0]), (249.51171875, 437.51171875, -804.5))
OBLIQUE_AFFINE = _affine(_rotation(0.3, -0.2, 0.7) @ np.diag([0.7, 1.1, 3.0]), (12.25, -33.5, 101.0))


def _marked_array(shape: tuple[int, int, int], mark: tuple[int, int, int], dtype: type = np.int16) -> np.ndarray:
    array = np.zeros(shape, dtype=dtype)
    array[mark] = 7
    return array


def _world(affine: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    return (affine @ np.array([*index, 1.0]))[:3]


def _oblique_sitk_image(array_ijk: np.ndarray) -> sitk.Image:
    """A SimpleITK image with spacing, origin and an oblique, non-trivial direction set directly in LPS."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_ijk.transpose(2, 1, 0)))
    img.SetSpacing((0.7, 1.3, 2.5))
    img.SetOrigin((10.0, -20.0, 30.0))
    img.SetDirection(_rotation(0.2, 0.4, -0.9).ravel().tolist())
    return img


def _write_dicom_series(folder: Path, img: sitk.Image, series_uid: str, description: str,
                        prefix: str = "slice") -> list[Path]:
    """Write a 3D int16 image as one DICOM file per slice (each a 3D single-slice image, so position and
    orientation tags come from the geometry), tagged as SimpleITK's 'Dicom Series From Array' example does."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(img.GetDepth()):
        piece = img[:, :, k:k + 1]
        for tag, value in {
            "0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0008|103e": description,
            "0020|000d": "1.2.826.0.1.3680043.2.1125.9.1", "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
        }.items():
            piece.SetMetaData(tag, value)
        path = folder / f"{prefix}{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(piece)
        paths.append(path)
    return paths


def _small_nifti(path: Path, shape: tuple[int, ...] = (6, 5, 4), affine: np.ndarray = RAS_AFFINE,
                 dtype: type = np.int16) -> Path:
    data = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real test data {path} is absent (expected ../shared/data beside the repository)")
    return path


def _assert_input_error(excinfo: pytest.ExceptionInfo[InputError], path: Path) -> None:
    message = str(excinfo.value)
    assert str(path.absolute()) in message
    assert "Fix" in message


# ----------------------------------------------------------------------------------------------- NIfTI round trips


@pytest.mark.parametrize("affine", [RAS_AFFINE, LPS_AFFINE, OBLIQUE_AFFINE], ids=["ras", "lps", "oblique"])
def test_nifti_round_trip_keeps_affine_and_voxels(tmp_path: Path, affine: np.ndarray) -> None:
    array = np.random.default_rng(0).normal(size=(7, 6, 5)).astype(np.float32)
    written = write_nifti(Volume(array, affine), tmp_path / "case.nii.gz")
    back = read_volume(written)
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(back.array, array)
    assert back.array.dtype == np.float32
    shape, geometry_affine = read_geometry(written)
    assert shape == (7, 6, 5)
    np.testing.assert_allclose(geometry_affine, affine, atol=1e-5)


def test_lps_nifti_round_trip_keeps_orientation(tmp_path: Path) -> None:
    written = write_nifti(Volume(np.zeros((4, 4, 3), np.float32), LPS_AFFINE), tmp_path / "lps.nii")
    assert read_volume(written).orientation == "LPS"


def test_write_nifti_sets_sform_and_qform_to_the_affine_with_code_1(tmp_path: Path) -> None:
    written = write_nifti(Volume(np.zeros((4, 4, 3), np.int16), OBLIQUE_AFFINE), tmp_path / "c.nii.gz")
    header = nib.load(str(written)).header
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    assert (int(sform_code), int(qform_code)) == (1, 1)
    np.testing.assert_allclose(sform, OBLIQUE_AFFINE, atol=1e-5)
    np.testing.assert_allclose(qform, OBLIQUE_AFFINE, atol=1e-5)


def test_write_nifti_casts_to_requested_dtype(tmp_path: Path) -> None:
    array = np.array([[[-1024.4, 0.0], [1.6, 3000.0]]], dtype=np.float32)
    written = write_nifti(Volume(array, RAS_AFFINE), tmp_path / "hu.nii.gz", dtype=np.int16)
    assert nib.load(str(written)).get_data_dtype() == np.int16
    np.testing.assert_array_equal(read_volume(written).array, np.round(array))


def test_image_applies_scl_slope_and_inter_as_float32(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.array([[[0, 255]]], dtype=np.uint8).repeat(3, axis=0), np.eye(4))
    img.header.set_slope_inter(400 / 255, -125)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    volume = read_volume(tmp_path / "scaled.nii.gz")
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose([volume.array.min(), volume.array.max()], [-125, 275], atol=1e-3)


def test_four_d_nifti_with_trailing_singleton_is_squeezed(tmp_path: Path) -> None:
    path = _small_nifti(tmp_path / "squeeze.nii.gz", shape=(6, 5, 4, 1))
    assert read_volume(path).shape == (6, 5, 4)
    assert read_geometry(path)[0] == (6, 5, 4)


# ----------------------------------------------------------------------------------------------- labels


def test_float_label_with_whole_values_is_cast_to_uint8(tmp_path: Path) -> None:
    path = tmp_path / "lab.nii.gz"
    nib.save(nib.Nifti1Image(np.array([[[0.0, 1.0], [2.0, 13.0]]], np.float32), np.eye(4)), str(path))
    volume = read_volume(path, kind="label")
    assert volume.array.dtype == np.uint8
    assert sorted(np.unique(volume.array).tolist()) == [0, 1, 2, 13]


@pytest.mark.parametrize(("values", "dtype"), [([0, 255], np.uint8), ([-1, 300], np.int16),
                                               ([0, 70000], np.int32)])
def test_label_gets_smallest_integer_dtype(tmp_path: Path, values: list[int], dtype: type) -> None:
    path = tmp_path / "lab.nii.gz"
    nib.save(nib.Nifti1Image(np.array([[values]], dtype=np.int32), np.eye(4)), str(path))
    assert read_volume(path, kind="label").array.dtype == dtype


def test_count_nonfinite_counts_nan_and_inf_which_reading_allows(tmp_path: Path) -> None:
    array = np.zeros((3, 3, 3), np.float32)
    array[0, 0, 0], array[1, 1, 1] = np.nan, np.inf
    written = write_nifti(Volume(array, RAS_AFFINE), tmp_path / "nan.nii.gz")
    assert count_nonfinite(read_volume(written)) == 2
    assert count_nonfinite(Volume(np.zeros((2, 2, 2), np.uint8), np.eye(4))) == 0


# ----------------------------------------------------------------------------------------------- SimpleITK formats


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_sitk_formats_with_oblique_direction_match_nifti_world_coordinates(tmp_path: Path, suffix: str) -> None:
    mark = (4, 2, 1)
    img = _oblique_sitk_image(_marked_array((6, 5, 3), mark))
    sitk.WriteImage(img, str(tmp_path / f"case{suffix}"))
    sitk.WriteImage(img, str(tmp_path / "case.nii.gz"))  # ITK writes the NIfTI; nibabel reads it back
    other, nifti = read_volume(tmp_path / f"case{suffix}"), read_volume(tmp_path / "case.nii.gz")
    expected_ras = LPS_TO_RAS @ np.array(img.TransformIndexToPhysicalPoint(mark))
    for volume in (other, nifti):
        found = tuple(int(i) for i in np.argwhere(volume.array == 7)[0])
        assert found == mark
        np.testing.assert_allclose(_world(volume.affine, found), expected_ras, atol=1e-4)
    np.testing.assert_allclose(other.affine, nifti.affine, atol=1e-5)
    shape, affine = read_geometry(tmp_path / f"case{suffix}")
    assert shape == (6, 5, 3)
    np.testing.assert_allclose(affine, other.affine, atol=1e-12)


def test_sitk_four_d_with_trailing_singleton_is_squeezed(tmp_path: Path) -> None:
    img = sitk.Image([6, 5, 4, 1], sitk.sitkInt16)
    img.SetSpacing((1.0, 2.0, 3.0, 1.0))
    sitk.WriteImage(img, str(tmp_path / "four.nrrd"))
    volume = read_volume(tmp_path / "four.nrrd")
    assert volume.shape == (6, 5, 4)
    assert volume.spacing_mm == pytest.approx((1.0, 2.0, 3.0))


@pytest.mark.parametrize("affine", [RAS_AFFINE, LPS_AFFINE, OBLIQUE_AFFINE], ids=["ras", "lps", "oblique"])
def test_volume_to_sitk_and_back_is_exact(affine: np.ndarray) -> None:
    array = np.random.default_rng(1).integers(0, 50, size=(5, 4, 3)).astype(np.int16)
    img = volume_to_sitk(Volume(array, affine))
    world = LPS_TO_RAS @ np.array(img.TransformIndexToPhysicalPoint((4, 1, 2)))
    np.testing.assert_allclose(world, _world(affine, (4, 1, 2)), atol=1e-9)
    assert img.GetPixel(4, 1, 2) == array[4, 1, 2]
    back = sitk_to_volume(img)
    np.testing.assert_allclose(back.affine, affine, atol=1e-12)
    np.testing.assert_array_equal(back.array, array)


def test_sitk_to_volume_and_back_is_exact() -> None:
    img = _oblique_sitk_image(np.arange(60, dtype=np.float32).reshape(5, 4, 3))
    again = volume_to_sitk(sitk_to_volume(img))
    np.testing.assert_allclose(again.GetSpacing(), img.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(again.GetOrigin(), img.GetOrigin(), atol=1e-12)
    np.testing.assert_allclose(again.GetDirection(), img.GetDirection(), atol=1e-12)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(img))


# ----------------------------------------------------------------------------------------------- DICOM


def test_written_dicom_series_reads_back_with_spacing_and_orientation(tmp_path: Path) -> None:
    mark = (3, 1, 2)
    img = _oblique_sitk_image(_marked_array((5, 4, 4), mark))
    _write_dicom_series(tmp_path / "series", img, "1.2.826.0.1.3680043.2.1125.9.2", "tiny oblique")
    assert is_dicom_series_folder(tmp_path / "series")
    volume = read_volume(tmp_path / "series")
    assert volume.shape == (5, 4, 4)
    assert volume.spacing_mm == pytest.approx((0.7, 1.3, 2.5), abs=1e-4)
    expected = _affine(LPS_TO_RAS @ np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing()),
                       tuple(LPS_TO_RAS @ np.array(img.GetOrigin())))
    np.testing.assert_allclose(volume.affine, expected, atol=1e-4)
    assert tuple(int(i) for i in np.argwhere(volume.array == 7)[0]) == mark
    shape, affine = read_geometry(tmp_path / "series")
    assert shape == volume.shape
    np.testing.assert_allclose(affine, volume.affine, atol=1e-6)


def test_folder_with_two_dicom_series_is_refused_listing_both(tmp_path: Path) -> None:
    img = _oblique_sitk_image(np.zeros((4, 4, 3), np.int16))
    _write_dicom_series(tmp_path / "mixed", img, "1.2.826.0.1.3680043.2.1125.9.3", "arterial", prefix="a")
    _write_dicom_series(tmp_path / "mixed", img[:, :, :2], "1.2.826.0.1.3680043.2.1125.9.4", "venous", prefix="v")
    for reader in (read_volume, read_geometry, list_inputs):
        with pytest.raises(InputError) as excinfo:
            reader(tmp_path / "mixed")
        _assert_input_error(excinfo, tmp_path / "mixed")
        message = str(excinfo.value)
        assert "1.2.826.0.1.3680043.2.1125.9.3' (3 files, 'arterial')" in message
        assert "1.2.826.0.1.3680043.2.1125.9.4' (2 files, 'venous')" in message


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path: Path) -> None:
    img = _oblique_sitk_image(np.zeros((4, 4, 5), np.int16))
    files = _write_dicom_series(tmp_path / "gap", img, "1.2.826.0.1.3680043.2.1125.9.5", "gap")
    files[2].unlink()
    with pytest.raises(InputError, match="unevenly spaced") as excinfo:
        read_volume(tmp_path / "gap")
    _assert_input_error(excinfo, tmp_path / "gap")


def test_single_dicom_file_is_refused_pointing_to_its_folder(tmp_path: Path) -> None:
    files = _write_dicom_series(tmp_path / "s", _oblique_sitk_image(np.zeros((3, 3, 2), np.int16)),
                                "1.2.826.0.1.3680043.2.1125.9.6", "one")
    with pytest.raises(InputError, match="single DICOM file") as excinfo:
        read_volume(files[0])
    _assert_input_error(excinfo, files[0])


# ----------------------------------------------------------------------------------------------- real data


def test_real_totalseg_ct_loads_with_shape_and_3mm_spacing() -> None:
    volume = read_volume(_shared("totalseg/example_ct.nii.gz"))
    assert volume.shape == (122, 101, 112)
    assert volume.spacing_mm == pytest.approx((3.0, 3.0, 3.0))
    assert volume.orientation == "RAS"
    assert volume.array.dtype == np.float32


def test_real_dicom_series_with_empty_uid_and_jpeg2000_loads() -> None:
    folder = _shared("dicom_ct/series")
    assert is_dicom_series_folder(folder)
    assert list_inputs(folder) == [folder]
    volume = read_volume(folder)
    assert volume.shape == (512, 512, 20)
    assert volume.spacing_mm == pytest.approx((0.977, 0.977, 2.0), abs=1e-3)
    assert (float(volume.array.min()), float(volume.array.max())) == (-1024.0, 1839.0)
    assert volume.orientation == "LPS"
    shape, affine = read_geometry(folder)
    assert shape == volume.shape
    np.testing.assert_allclose(affine, volume.affine, atol=1e-6)
    assert case_id_from_path(folder) == "series"


def test_real_btcv_image_loads_within_the_soft_tissue_window() -> None:
    volume = read_volume(_shared("btcv/imagesTr/BTCV_0005_0000.nii.gz"))
    assert volume.array.dtype == np.float32
    assert -125.001 <= float(volume.array.min()) and float(volume.array.max()) <= 275.001


def test_real_abdomen_pseudo_label_loads_as_integers() -> None:
    volume = read_volume(_shared("abdomen_pseudo/labelsTr/tsx_0003.nii.gz"), kind="label")
    assert np.issubdtype(volume.array.dtype, np.integer)
    assert volume.shape == (512, 512, 20)
    assert set(np.unique(volume.array).tolist()) <= set(range(14))


# ----------------------------------------------------------------------------------------------- errors


def _truncated_nifti_gz(tmp: Path) -> Path:
    data = (_small_nifti(tmp / "full.nii.gz", shape=(20, 20, 20))).read_bytes()
    path = tmp / "truncated.nii.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_named_nifti_gz(tmp: Path) -> Path:
    path = tmp / "notes.nii.gz"
    path.write_text("this is not an image\n" * 20)
    return path


def _gzipped_text_named_nifti(tmp: Path) -> Path:
    path = tmp / "gzipped_text.nii.gz"
    path.write_bytes(gzip.compress(b"this is not an image\n" * 40))
    return path


def _plain_nifti_named_gz(tmp: Path) -> Path:
    path = tmp / "plain.nii.gz"
    path.write_bytes(_small_nifti(tmp / "plain.nii").read_bytes())
    return path


def _two_d(tmp: Path) -> Path:
    return _small_nifti(tmp / "slice.nii.gz", shape=(6, 5))


def _four_d(tmp: Path) -> Path:
    return _small_nifti(tmp / "channels.nii.gz", shape=(6, 5, 4, 2))


def _singular(tmp: Path) -> Path:
    affine = RAS_AFFINE.copy()
    affine[:3, 2] = affine[:3, 1]
    return _small_nifti(tmp / "singular.nii.gz", affine=affine)


def _missing(tmp: Path) -> Path:
    return tmp / "absent.nii.gz"


def _unknown_extension(tmp: Path) -> Path:
    path = tmp / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return path


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.nii.gz"
    path.touch()
    return path


def _corrupt_nrrd(tmp: Path) -> Path:
    path = tmp / "corrupt.nrrd"
    path.write_text("NRRD0004\nthis header is broken\n")
    return path


def _mhd_without_raw(tmp: Path) -> Path:
    sitk.WriteImage(sitk.Image([3, 3, 3], sitk.sitkInt16), str(tmp / "lonely.mhd"))
    (tmp / "lonely.raw").unlink()
    return tmp / "lonely.mhd"


def _plain_folder(tmp: Path) -> Path:
    (tmp / "folder").mkdir()
    (tmp / "folder" / "readme.txt").write_text("hello")
    return tmp / "folder"


BAD_INPUTS = {
    "truncated_nii_gz": (_truncated_nifti_gz, "truncated"),
    "text_named_nii_gz": (_text_named_nifti_gz, "not a NIfTI image"),
    "gzipped_text_named_nii_gz": (_gzipped_text_named_nifti, "not a readable NIfTI image"),
    "plain_nifti_named_nii_gz": (_plain_nifti_named_gz, "rename it"),
    "two_d": (_two_d, "2D image"),
    "four_d": (_four_d, "one file per channel"),
    "singular_affine": (_singular, "singular"),
    "missing": (_missing, "does not exist"),
    "unknown_extension": (_unknown_extension, "unknown image format"),
    "empty_file": (_empty, "empty"),
    "corrupt_nrrd": (_corrupt_nrrd, "cannot be read"),
    "mhd_without_raw": (_mhd_without_raw, "cannot be read"),
    "folder_without_images": (_plain_folder, "folder without DICOM"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_input_error_naming_path_and_fix(tmp_path: Path, name: str) -> None:
    make, expected = BAD_INPUTS[name]
    path = make(tmp_path)
    with pytest.raises(InputError, match=expected) as excinfo:
        read_volume(path)
    _assert_input_error(excinfo, path)


@pytest.mark.parametrize("name", ["two_d", "four_d", "singular_affine", "missing", "text_named_nii_gz",
                                  "corrupt_nrrd", "unknown_extension"])
def test_read_geometry_refuses_what_its_header_shows(tmp_path: Path, name: str) -> None:
    make, expected = BAD_INPUTS[name]
    path = make(tmp_path)
    with pytest.raises(InputError, match=expected) as excinfo:
        read_geometry(path)
    _assert_input_error(excinfo, path)


# Run as an unprivileged user when the tests run as root: prints read_volume's InputError.
_READ_VOLUME_AS_USER = """
import sys
from unimos.data.io import read_volume
from unimos.errors import InputError
try:
    read_volume(sys.argv[1])
except InputError as err:
    print(err)
else:
    sys.exit("read_volume read a file that is chmod 000")
"""


def test_unreadable_file_raises_permission_error_with_fix() -> None:
    with unprivileged_workspace() as folder:
        path = _small_nifti(folder / "locked.nii.gz")
        path.chmod(0)
        if runs_as_root():  # root reads anything: read as an unprivileged user, in a subprocess
            result = run_python_as_unprivileged("-c", _READ_VOLUME_AS_USER, str(path))
            assert result.exit_code == 0, result.output
            message = result.output
        else:
            with pytest.raises(InputError) as excinfo:
                read_volume(path)
            message = str(excinfo.value)
        assert "permission denied" in message and str(path.absolute()) in message and "Fix" in message, message


def test_float_label_with_fractional_values_is_refused_with_count(tmp_path: Path) -> None:
    path = tmp_path / "prob.nii.gz"
    data = np.zeros((4, 4, 4), np.float32)
    data[0, 0, :3] = 0.5
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(InputError, match="3 of 64 voxels are not whole numbers") as excinfo:
        read_volume(path, kind="label")
    _assert_input_error(excinfo, path)
    assert read_volume(path, kind="image").shape == (4, 4, 4)


# ----------------------------------------------------------------------------------------------- atomic writing


def test_write_nifti_leaves_no_temporary_file(tmp_path: Path) -> None:
    written = write_nifti(Volume(np.ones((3, 3, 3), np.uint8), RAS_AFFINE), tmp_path / "out" / "lab.nii.gz")
    assert written == tmp_path / "out" / "lab.nii.gz"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["lab.nii.gz"]


def test_write_nifti_failing_writer_creates_nothing_and_keeps_old_file(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "case.nii.gz"
    target.write_bytes(b"previous")
    seen: list[Path] = []

    def half_written_then_fail(img: nib.Nifti1Image, filename: str) -> None:
        seen.append(Path(filename))
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", half_written_then_fail)
    with pytest.raises(OutputError):
        write_nifti(Volume(np.ones((3, 3, 3), np.float32), RAS_AFFINE), target)
    assert seen and seen[0].name.endswith(".nii.gz") and seen[0] != target
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["case.nii.gz"]


def test_write_nifti_refuses_a_non_nifti_name(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="Fix"):
        write_nifti(Volume(np.ones((3, 3, 3), np.float32), RAS_AFFINE), tmp_path / "case.nrrd")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------- inputs and ids


def test_list_inputs_of_a_batch_folder_is_sorted_and_skips_other_files(tmp_path: Path) -> None:
    _small_nifti(tmp_path / "b_0000.nii.gz")
    _small_nifti(tmp_path / "a_0000.nii")
    sitk.WriteImage(sitk.Image([3, 3, 3], sitk.sitkInt16), str(tmp_path / "c.nrrd"))
    _write_dicom_series(tmp_path / "d_dicom", _oblique_sitk_image(np.zeros((3, 3, 2), np.int16)),
                        "1.2.826.0.1.3680043.2.1125.9.7", "d")
    (tmp_path / "dataset.json").write_text("{}")
    (tmp_path / ".abc123.partial-e.nii.gz").write_bytes(b"unfinished")
    (tmp_path / "notes").mkdir()
    names = [p.name for p in list_inputs(tmp_path)]
    assert names == ["a_0000.nii", "b_0000.nii.gz", "c.nrrd", "d_dicom"]
    assert [case_id_from_path(p) for p in list_inputs(tmp_path)] == ["a", "b", "c", "d_dicom"]


def test_list_inputs_of_a_file_is_that_file(tmp_path: Path) -> None:
    path = _small_nifti(tmp_path / "one.nii.gz")
    assert list_inputs(path) == [path]


def test_list_inputs_of_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is empty") as excinfo:
        list_inputs(tmp_path / "empty")
    _assert_input_error(excinfo, tmp_path / "empty")


def test_list_inputs_of_a_folder_without_images_is_refused_naming_subfolders(tmp_path: Path) -> None:
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(InputError, match="imagesTr") as excinfo:
        list_inputs(tmp_path)
    _assert_input_error(excinfo, tmp_path)


def test_is_dicom_series_folder_is_false_for_image_folders_and_files(tmp_path: Path) -> None:
    path = _small_nifti(tmp_path / "x.nii.gz")
    assert not is_dicom_series_folder(tmp_path)
    assert not is_dicom_series_folder(path)
    assert not is_dicom_series_folder(tmp_path / "absent")


@pytest.mark.parametrize(("name", "case_id"), [
    ("liver_001_0000.nii.gz", "liver_001"), ("liver_001.nii.gz", "liver_001"), ("ct.NII.GZ", "ct"),
    ("x_0001.nii", "x"), ("scan.nrrd", "scan"), ("scan_0000.mha", "scan"), ("s.mhd", "s"), ("s.nhdr", "s"),
    ("case_000.nii.gz", "case_000"), ("patient_12345.nii.gz", "patient_12345"),
])
def test_case_id_strips_extension_and_channel_suffix(name: str, case_id: str) -> None:
    assert case_id_from_path(Path("/data") / name) == case_id
