"""The format registry: a new input or output format is one module that registers itself, and the entry points
(`read_volume`, `read_geometry`, `list_inputs`, `write_prediction`) use it without being changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unimos.data.io import (
    IMAGE_EXTENSIONS,
    InputFormat,
    OutputFormat,
    list_inputs,
    output_names,
    read_geometry,
    read_volume,
    register_input,
    register_output,
    registry,
    write_prediction,
)
from unimos.data.io.registry import supported_text
from unimos.data.volume import Volume
from unimos.errors import InputError, OutputError


@pytest.fixture
def private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it (the registry holds copies of the real entries)."""
    monkeypatch.setattr(registry, "_INPUTS", dict(registry._INPUTS))
    monkeypatch.setattr(registry, "_OUTPUTS", dict(registry._OUTPUTS))


def _read_npy(path: Path, kind: str) -> Volume:
    array = np.load(path, allow_pickle=False)
    return Volume(array.astype(np.float32 if kind == "image" else np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]), path)


def _npy_geometry(path: Path) -> tuple[tuple[int, int, int], np.ndarray]:
    return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape), np.diag([2.0, 2.0, 2.0, 1.0])


NPY = InputFormat(name="npy", title="NumPy", description="NumPy (.npy)", read=_read_npy, geometry=_npy_geometry,
                  extensions=(".npy",))


def test_the_registered_formats_in_order():
    assert IMAGE_EXTENSIONS == (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
    assert output_names() == ("nifti", "seg-nrrd", "dicom-seg")
    assert supported_text() == ("NIfTI (.nii.gz, .nii), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) files or "
                                "folders each holding one DICOM series")


def test_a_registered_input_format_is_read_listed_and_named_without_other_changes(private_registry, tmp_path: Path):
    np.save(tmp_path / "case_a.npy", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    with pytest.raises(InputError, match="unknown image format"):
        read_volume(tmp_path / "case_a.npy")
    register_input(NPY)
    volume = read_volume(tmp_path / "case_a.npy", kind="label")
    assert volume.array.dtype == np.uint8 and volume.array[1, 2, 3] == 23
    assert read_geometry(tmp_path / "case_a.npy")[0] == (2, 3, 4)
    assert list_inputs(tmp_path) == [tmp_path / "case_a.npy"]
    assert "NumPy (.npy) files" in supported_text()


def test_register_input_refuses_an_extension_another_format_reads(private_registry):
    clash = InputFormat(name="other_nifti", title="x", description="x", read=_read_npy, geometry=_npy_geometry,
                        extensions=(".nii",))
    with pytest.raises(ValueError, match="repeats a registered name or extension"):
        register_input(clash)


def test_register_input_needs_extensions_or_a_folder_test_but_not_both(private_registry):
    neither = InputFormat(name="nothing", title="x", description="x", read=_read_npy, geometry=_npy_geometry)
    with pytest.raises(ValueError, match="either file extensions or a folder test"):
        register_input(neither)


def test_a_registered_output_format_is_written_by_write_prediction(private_registry, tmp_path: Path):
    written: list[tuple[Path, tuple[str, ...]]] = []

    def write_text(labels: Volume, path: Path, class_names, source) -> Path:
        path.write_text(" ".join(str(int(v)) for v in labels.array.ravel()))
        written.append((path, tuple(class_names)))
        return path

    register_output(OutputFormat(name="text", suffix=".txt", write=write_text))
    labels = Volume(np.array([[[0, 1], [1, 0]]], dtype=np.uint8), np.eye(4))
    path = write_prediction(labels, tmp_path, "case_a", "text", ["background", "liver"], source=None)
    assert path == tmp_path / "case_a.txt" and path.read_text() == "0 1 1 0"
    assert written == [(path, ("background", "liver"))]
    assert output_names()[-1] == "text"


def test_an_unknown_output_format_is_refused_with_the_registered_names():
    labels = Volume(np.zeros((1, 1, 1), dtype=np.uint8), np.eye(4))
    with pytest.raises(OutputError, match="use one of nifti, seg-nrrd, dicom-seg"):
        write_prediction(labels, "unused", "case", "png", ["background"], source=None)
