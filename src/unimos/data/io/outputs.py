"""Writing one case's prediction in a registered output format (`--format`): where it goes, and whether the input
allows that format, checked before any work.

Every writer takes the label map in the input's exact geometry (a `Volume`, RAS+ affine) and `class_names`, where
`class_names[v]` names label value `v` and `class_names[0]` is background (as `Taxonomy.names` and a loaded model's
`class_names` are). Names, colours and anatomy codes come from `unimos.data.colors`, so the report and the viewers
agree. All files are written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from unimos.data.io.registry import output_format
from unimos.data.volume import Volume


def prediction_path(out_dir: str | Path, case_id: str, fmt: str) -> Path:
    """Where `write_prediction` puts a case: `<out_dir>/<case_id>` plus the format's suffix (`.nii.gz`, ...)."""
    return Path(out_dir) / f"{case_id}{output_format(fmt).suffix}"


def check_format_for_input(fmt: str, source: str | Path | None) -> None:
    """Refuse, before any work, an unknown format or one the input cannot have (DICOM SEG needs a DICOM series)."""
    check = output_format(fmt).check_source
    if check is not None:
        check(Path(source) if source is not None else None)


def write_prediction(labels: Volume, out_dir: str | Path, case_id: str, fmt: str, class_names: Sequence[str],
                     source: str | Path | None) -> Path:
    """Write one case's label map in `fmt` (a registered output format) into `out_dir`; returns the file.

    Args:
        labels: integer label map in the input's exact geometry.
        out_dir: output folder; the file is `prediction_path(out_dir, case_id, fmt)`.
        case_id: the case's name.
        fmt: output format, e.g. 'nifti', 'seg-nrrd' or 'dicom-seg'.
        class_names: name of each label value, index 0 = background.
        source: the input the prediction came from (the DICOM series folder for 'dicom-seg').
    """
    check_format_for_input(fmt, source)
    return output_format(fmt).write(labels, prediction_path(out_dir, case_id, fmt), class_names,
                                    Path(source) if source is not None else None)
