import numpy as np
import yaml

from tests.conftest import write_nifti
from unimos.data.manifest import load_manifest
from unimos.data.validation import inspect_manifest


def test_valid_manifest_has_no_problems_and_a_coverage_matrix(tiny_manifest):
    report = inspect_manifest(load_manifest(tiny_manifest))
    assert report.ok, report.problems
    coverage = report.coverage()
    assert coverage["full"] == {"liver": (2, 2), "spleen": (2, 2)}
    assert coverage["liver_only"] == {"liver": (2, 2), "spleen": (0, 2)}
    assert coverage["unlabeled"] == {"liver": (0, 1), "spleen": (0, 1)}
    assert len(report.cases) == 5 and report.cases[0].orientation == "RAS"


def _break(manifest_path, mutate):
    payload = yaml.safe_load(manifest_path.read_text())
    mutate(payload, manifest_path.parent)
    manifest_path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return load_manifest(manifest_path)


def test_every_problem_is_reported_at_once_with_file_and_fix(tiny_manifest):
    def mutate(payload, root):
        full, part = payload["sources"][0]["cases"], payload["sources"][1]["cases"]
        full[0]["image"] = "images/missing_0000.nii.gz"                                  # missing file
        write_nifti(root / part[0]["label"], np.zeros((5, 5, 5), dtype=np.uint8) + 1)     # shape mismatch
        label = np.zeros((24, 20, 12), dtype=np.uint8)
        label[3, 3, 3] = 9
        label[5:8, 5:8, 3:6] = 1
        write_nifti(root / part[1]["label"], label, np.diag([2.0, 2.0, 3.0, 1.0]))      # undeclared value 9
        image = np.zeros((24, 20, 12), dtype=np.float32)
        image[1, 1, 1] = np.nan
        write_nifti(root / full[1]["image"], image, np.diag([2.0, 2.0, 3.0, 1.0]))       # NaN voxel

    report = inspect_manifest(_break(tiny_manifest, mutate))
    text = "\n".join(str(p) for p in report.problems)
    assert len(report.problems) == 4, text
    assert "missing_0000.nii.gz" in text
    assert "geometry differ" in text and "part_0_0000.nii.gz and" in text and "part_0.nii.gz" in text
    assert "[9]" in text and "part_1.nii.gz" in text
    assert "NaN" in text and "full_1_0000.nii.gz" in text
    assert all("Fix:" in str(p) for p in report.problems)


def test_duplicate_case_ids_and_bad_spacing_are_problems(tiny_manifest):
    def mutate(payload, root):
        payload["sources"][1]["cases"][0]["id"] = "full_0"
        write_nifti(root / payload["sources"][2]["cases"][0]["image"], np.zeros((8, 8, 8), dtype=np.int16),
                    np.diag([80.0, 1.0, 1.0, 1.0]))  # absurd 80 mm voxels

    report = inspect_manifest(_break(tiny_manifest, mutate))
    text = "\n".join(str(p) for p in report.problems)
    assert "'full_0' appears in sources" in text
    assert "unl_0_0000.nii.gz: has an implausible voxel spacing" in text


def test_empty_label_of_an_annotated_case_is_a_problem(tiny_manifest):
    def mutate(payload, root):
        write_nifti(root / payload["sources"][0]["cases"][0]["label"], np.zeros((24, 20, 12), dtype=np.uint8),
                    np.diag([2.0, 2.0, 3.0, 1.0]))

    report = inspect_manifest(_break(tiny_manifest, mutate))
    assert len(report.problems) == 1 and "empty" in report.problems[0].problem
