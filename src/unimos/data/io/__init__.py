"""Reading and writing volumes, always as RAS+ `Volume`s: one module per format behind a registry.

Inputs: NIfTI (nifti.py), NRRD and MetaImage (sitk_files.py), DICOM series folders (dicom.py); `read_volume`,
`read_geometry` and `list_inputs` (inputs.py) pick the format that claims a path. Prediction files: NIfTI,
3D Slicer .seg.nrrd (seg_nrrd.py) and DICOM SEG (dicom_seg.py) through `write_prediction` (outputs.py).
Every failure a user can cause becomes one `InputError` naming the file, the problem and the fix, so a batch of
hundreds of files can be checked without a traceback.

A new format is one module here that registers itself (registry.py says how) plus one import line below; the order
of these lines is the order in which formats are tried and listed.
"""

from unimos.data.io import nifti, sitk_files, dicom, seg_nrrd, dicom_seg  # noqa: F401, I001  (registers, in order)
from unimos.data.io.common import Kind, Shape3, affine_from_lps, count_nonfinite, lps_from_affine
from unimos.data.io.dicom import DICOM_EXTENSIONS, dicom_modality, dicom_series, is_dicom_series_folder
from unimos.data.io.dicom_seg import write_dicom_seg
from unimos.data.io.inputs import case_id_from_path, list_inputs, read_geometry, read_volume
from unimos.data.io.nifti import NIFTI_EXTENSIONS, write_nifti
from unimos.data.io.outputs import check_format_for_input, prediction_path, write_prediction
from unimos.data.io.registry import (
    InputFormat,
    OutputFormat,
    file_extensions,
    image_extension,
    output_names,
    register_input,
    register_output,
)
from unimos.data.io.seg_nrrd import seg_nrrd_header, write_seg_nrrd
from unimos.data.io.sitk_files import SITK_EXTENSIONS, sitk_to_volume, volume_to_sitk

IMAGE_EXTENSIONS: tuple[str, ...] = file_extensions()  # every file format's name endings, NIfTI first

__all__ = ["DICOM_EXTENSIONS", "IMAGE_EXTENSIONS", "NIFTI_EXTENSIONS", "SITK_EXTENSIONS", "InputFormat", "Kind",
           "OutputFormat", "Shape3", "affine_from_lps", "case_id_from_path", "check_format_for_input",
           "count_nonfinite", "dicom_modality", "dicom_series", "image_extension", "is_dicom_series_folder",
           "list_inputs", "lps_from_affine", "output_names", "prediction_path", "read_geometry", "read_volume",
           "register_input", "register_output", "seg_nrrd_header", "sitk_to_volume", "volume_to_sitk",
           "write_dicom_seg", "write_nifti", "write_prediction", "write_seg_nrrd"]
