"""Viewer-ready predictions: each format read back by an independent reader and checked against the NIfTI output."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from unimos.data.colors import class_color, rgb_unit
from unimos.data.io import affine_from_lps, read_volume, write_dicom_seg, write_prediction
from unimos.data.volume import Volume
from unimos.errors import InputError, OutputError

CLASS_NAMES = ["background", "liver", "kidney_left", "liver_tumor", "custom_structure"]
LPS = np.diag([-1.0, -1.0, 1.0])


def _oblique_affine() -> np.ndarray:
    """2 x 1.5 x 3 mm voxels, rotated 30 degrees about z, axes permuted and the second flipped."""
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    axes = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = rotation @ axes @ np.diag([2.0, 1.5, 3.0])
    affine[:3, 3] = [12.5, -30.0, 101.0]
    return affine


AFFINES = {"axis_aligned": np.diag([0.8, 0.8, 2.5, 1.0]), "oblique": _oblique_affine()}


def _labels(affine: np.ndarray) -> Volume:
    array = np.zeros((14, 12, 9), dtype=np.uint8)
    array[2:7, 3:9, 1:5] = 1
    array[4:6, 4:6, 2:4] = 3
    array[9:13, 1:4, 5:8] = 4  # kidney_left (2) is absent
    return Volume(array, affine)


# ----------------------------------------------------------------------------------------------- .seg.nrrd


@pytest.mark.parametrize("geometry", sorted(AFFINES))
def test_seg_nrrd_reads_back_as_the_nifti_output(tmp_path: Path, geometry: str):
    import nrrd

    labels = _labels(AFFINES[geometry])
    nifti_path = write_prediction(labels, tmp_path, "case", "nifti", CLASS_NAMES, source=None)
    seg_path = write_prediction(labels, tmp_path, "case", "seg-nrrd", CLASS_NAMES, source=None)
    assert (nifti_path.name, seg_path.name) == ("case.nii.gz", "case.seg.nrrd")
    nifti = nib.load(str(nifti_path))
    data, header = nrrd.read(str(seg_path))

    np.testing.assert_array_equal(data, np.asarray(nifti.dataobj))
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space directions"], (LPS @ nifti.affine[:3, :3]).T, atol=1e-9)
    np.testing.assert_allclose(header["space origin"], LPS @ nifti.affine[:3, 3], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(header["space directions"], axis=1), nifti.header.get_zooms(), atol=1e-6)


def test_seg_nrrd_geometry_is_what_itk_and_so_slicer_reads(tmp_path: Path):
    labels = _labels(AFFINES["oblique"])
    path = write_prediction(labels, tmp_path, "case", "seg-nrrd", CLASS_NAMES, source=None)
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(affine_from_lps(image.GetSpacing(), image.GetOrigin(), image.GetDirection()),
                               labels.affine, atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), labels.array)


def test_seg_nrrd_segments_carry_names_colours_and_extents(tmp_path: Path):
    import nrrd

    labels = _labels(AFFINES["axis_aligned"])
    _, header = nrrd.read(str(write_prediction(labels, tmp_path, "case", "seg-nrrd", CLASS_NAMES, source=None)))

    segments = {int(header[f"Segment{i}_LabelValue"]): i for i in range(len(CLASS_NAMES) - 1)}
    assert sorted(segments) == [1, 2, 3, 4]
    for value, index in segments.items():
        name = CLASS_NAMES[value]
        assert header[f"Segment{index}_Name"] == name
        assert header[f"Segment{index}_Layer"] == "0"
        colour = [float(c) for c in header[f"Segment{index}_Color"].split()]
        np.testing.assert_allclose(colour, rgb_unit(class_color(name)), atol=1e-6)
    assert header[f"Segment{segments[1]}_Extent"] == "2 6 3 8 1 4"
    assert header[f"Segment{segments[2]}_Extent"] == "0 -1 0 -1 0 -1"  # absent: Slicer's empty extent
    assert header[f"Segment{segments[4]}_Extent"] == "9 12 1 3 5 7"
    assert "SCT^10200004^Liver" in header[f"Segment{segments[1]}_Tags"]
    assert "SCT^7771000^Left" in header[f"Segment{segments[2]}_Tags"]
    assert header[f"Segment{segments[4]}_Tags"] == ""  # a custom class has no code


# ----------------------------------------------------------------------------------------------- dispatcher


def test_dicom_seg_is_refused_for_an_input_that_is_not_a_dicom_series(tmp_path: Path):
    labels = _labels(AFFINES["axis_aligned"])
    source = tmp_path / "scan_0000.nii.gz"
    nib.save(nib.Nifti1Image(labels.array.astype(np.int16), labels.affine), str(source))
    with pytest.raises(InputError) as raised:
        write_prediction(labels, tmp_path / "out", "scan", "dicom-seg", CLASS_NAMES, source=source)
    problem = raised.value.problems[0]
    assert problem.where == str(source)
    assert "DICOM series" in problem.problem and "--format nifti" in problem.fix
    assert not (tmp_path / "out").exists()


def test_unknown_format_is_refused(tmp_path: Path):
    with pytest.raises(OutputError, match="nifti, seg-nrrd, dicom-seg"):
        write_prediction(_labels(AFFINES["axis_aligned"]), tmp_path, "case", "png", CLASS_NAMES, source=None)


# ----------------------------------------------------------------------------------------------- DICOM SEG


@pytest.fixture
def ct_series(shared_data: Path) -> Path:
    series = shared_data / "dicom_ct" / "series"
    if not series.is_dir():
        pytest.skip(f"the real DICOM series {series} is absent")
    return series


def _series_labels(series: Path) -> tuple[Volume, dict[str, np.ndarray]]:
    """Two boxes (liver, liver_tumor inside it) and a custom class in the geometry read_volume gives the series;
    with the ImagePositionPatient of every slice, by SOP instance UID (file meta: the dataset's own is empty)."""
    import pydicom

    volume = read_volume(series, kind="image")
    array = np.zeros(volume.shape, dtype=np.uint8)
    array[100:260, 150:300, 3:12] = 1
    array[150:200, 180:220, 6:9] = 3
    array[380:420, 300:340, 14:18] = 4
    positions = {}
    for path in sorted(series.iterdir()):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        positions[str(header.file_meta.MediaStorageSOPInstanceUID)] = np.asarray(header.ImagePositionPatient, float)
    return Volume(array, volume.affine), positions


def _slice_index(affine: np.ndarray, position_lps: np.ndarray) -> int:
    """The k of the label slice through a DICOM slice: its first pixel through the inverse affine (i = j = 0)."""
    voxel = np.linalg.inv(affine) @ np.append(LPS @ position_lps, 1.0)
    np.testing.assert_allclose(voxel[:2], [0, 0], atol=1e-4)
    return int(round(voxel[2]))


def test_dicom_seg_round_trip_on_a_real_series(ct_series: Path, tmp_path: Path):
    import highdicom as hd

    labels, positions = _series_labels(ct_series)
    nifti = nib.load(str(write_prediction(labels, tmp_path, "ct", "nifti", CLASS_NAMES, source=ct_series)))
    path = write_prediction(labels, tmp_path, "ct", "dicom-seg", CLASS_NAMES, source=ct_series)
    assert path.name == "ct.dcm"
    seg = hd.seg.segread(path)

    assert seg.number_of_segments == 3  # liver, liver_tumor, custom_structure; kidney_left absent
    names = {n: seg.get_segment_description(n).segment_label for n in seg.segment_numbers}
    assert names == {1: "liver", 2: "liver_tumor", 3: "custom_structure"}
    liver = seg.get_segment_description(1)
    assert liver.segmented_property_type.value == "10200004"
    assert liver.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    assert liver.algorithm_identification[0].AlgorithmName == "unimos"
    assert {uid for _, _, uid in seg.get_source_image_uids()} == set(positions)
    assert seg.StudyInstanceUID and seg.SeriesInstanceUID  # generated: the source's are empty

    class_of_segment = np.array([0, 1, 3, 4])
    nifti_array = np.asarray(nifti.dataobj)
    for uid, position in positions.items():
        frame = seg.get_pixels_by_source_instance([uid], combine_segments=True)[0]
        k = _slice_index(nifti.affine, position)
        # Pixel (row r, column c) is voxel (i = c, j = r): the series is read with the column index as i.
        np.testing.assert_array_equal(class_of_segment[frame], nifti_array[:, :, k].T, err_msg=f"slice {uid}")
    for item in seg.PerFrameFunctionalGroupsSequence:
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(item.PlanePositionSequence[0].ImagePositionPatient, positions[uid], atol=1e-4)


def test_dicom_seg_matches_slices_by_position_whatever_the_axis_order(ct_series: Path, tmp_path: Path):
    import highdicom as hd

    labels, positions = _series_labels(ct_series)
    # The same labels on the same grid, stored RAS and then with the slice axis first.
    canonical = nib.as_closest_canonical(nib.Nifti1Image(labels.array, labels.affine))
    array = np.asarray(canonical.dataobj).transpose(2, 0, 1)
    reordered = Volume(np.ascontiguousarray(array), canonical.affine[:, [2, 0, 1, 3]])
    first = hd.seg.segread(write_dicom_seg(labels, tmp_path / "a.dcm", CLASS_NAMES, ct_series))
    second = hd.seg.segread(write_dicom_seg(reordered, tmp_path / "b.dcm", CLASS_NAMES, ct_series))
    uids = sorted(positions)
    np.testing.assert_array_equal(first.get_pixels_by_source_instance(uids, combine_segments=True),
                                  second.get_pixels_by_source_instance(uids, combine_segments=True))


def test_dicom_seg_refuses_labels_off_the_series_grid(ct_series: Path, tmp_path: Path):
    labels, _ = _series_labels(ct_series)
    shifted = labels.affine.copy()
    shifted[:3, 3] += 0.5 * labels.affine[:3, 2]  # half a slice
    with pytest.raises(OutputError, match="does not lie on the grid"):
        write_dicom_seg(Volume(labels.array, shifted), tmp_path / "x.dcm", CLASS_NAMES, ct_series)
    assert list(tmp_path.iterdir()) == []


def test_dicom_seg_of_an_empty_prediction_is_refused_with_a_reason(ct_series: Path, tmp_path: Path):
    labels, _ = _series_labels(ct_series)
    with pytest.raises(OutputError, match="no voxel of any class"):
        write_dicom_seg(labels.with_array(np.zeros_like(labels.array)), tmp_path / "x.dcm", CLASS_NAMES, ct_series)
