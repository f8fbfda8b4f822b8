"""The lesion stage at prediction (inference/lesion_stage.py): lesions written only inside their organ's crop, the
crop box rule, and a lesion model that does not fit the organ model refused with the reason."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unimos.data.taxonomy import ClassDef, Taxonomy
from unimos.errors import UnimosError
from unimos.inference.lesion_stage import (
    LesionGroup,
    LesionStage,
    Midline,
    add_lesions,
    check_lesion_pair,
    lesion_groups,
    lesions_read_as_organs,
    organ_crop_box,
    organ_mask_channel,
)

ORGANS = Taxonomy((ClassDef("liver"), ClassDef("spleen"), ClassDef("liver_tumor", ("liver",))))


class BrightIsLesion(torch.nn.Module):
    """Lesion model stand-in: the lesion slot where the first channel is above 0.5, organ where the mask channel is
    on, background elsewhere."""

    def forward(self, x):
        lesion = 10 * (x[:, :1] - 0.5)
        organ = 5 * (x[:, -1:] - 0.5)
        return torch.cat([torch.zeros_like(lesion), organ, lesion + 4], dim=1)


def _stage(organs=("liver",), lesions=("liver_tumor",), in_channels=2, spacing=(3.0, 3.0, 3.0)):
    plan = SimpleNamespace(patch_size=[8, 8, 8], target_spacing_mm=list(spacing), normalisation={"CT": {}})
    model = SimpleNamespace(network=BrightIsLesion(), class_names=["background", "organ", "lesion"], plan=plan,
                            meta={"in_channels": in_channels, "patch_size": [8, 8, 8]})
    return LesionStage([LesionGroup("+".join(lesions), model, list(organs), list(lesions))], margin_mm=3.0)


def test_organ_crop_box_grows_by_the_margin_and_to_the_patch():
    organ = np.zeros((20, 20, 20), bool)
    organ[5:8, 10:11, 0:2] = True
    # axis 0: 5..7 grown by 1 -> 4..8; axis 1: 10 grown -> 9..11, widened to 4 about its centre -> 8..11;
    # axis 2: 0..1 grown -> 0..2, widened to 4 and kept inside the volume -> 0..3
    assert organ_crop_box(organ, (3.0, 3.0, 3.0), 3.0, (4, 4, 4)) == ((4, 8, 0), (9, 12, 4))
    assert organ_crop_box(np.zeros((5, 5, 5), bool), (3.0, 3.0, 3.0), 3.0, (4, 4, 4)) is None


def test_organ_mask_channel_fills_a_lesion_the_organ_model_called_background():
    organ = np.ones((5, 5, 5), bool)
    organ[2, 2, 2] = False
    assert organ_mask_channel(organ).min() == 1.0


def test_lesions_are_written_inside_their_organ_only():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:15, 5:15, 5:15] = 1  # liver
    labels[20:24, 5:10, 5:10] = 2  # spleen
    labels[12, 12, 12] = 3  # a liver_tumor voxel of the organ model that the lesion model does not confirm
    image = np.zeros((1, 1, 30, 30, 30), np.float32)
    image[0, 0, 8:10, 8:10, 8:10] = 1.0  # inside the liver
    image[0, 0, 25:28, 25:28, 25:28] = 1.0  # far from the liver: outside its crop
    image[0, 0, 21, 6, 6] = 1.0  # inside the spleen, which has no lesion class
    image[0, 0, 14, 14, 14] = 1.0  # inside the liver's crop but given to the spleen: not overwritten
    image[0, 0, 4, 4, 4] = 1.0  # inside the liver's crop, outside the liver: not a liver lesion
    labels[14, 14, 14] = 2
    options = SimpleNamespace(overlap=0.5, mirror=False, sw_batch_size=2)
    out, crops = add_lesions(labels, torch.from_numpy(image), ORGANS, _stage(), (3.0, 3.0, 3.0), options, None)
    expected = labels.copy()
    expected[8:10, 8:10, 8:10] = 3
    expected[12, 12, 12] = 1
    assert np.array_equal(out, expected)
    assert crops == {"liver": [[4, 4, 4], [16, 16, 16]]}
    assert labels[8, 8, 8] == 1  # the input is not modified


def test_a_lesion_model_that_does_not_fit_the_organ_model_is_refused_with_every_reason():
    organ_model = SimpleNamespace(taxonomy=ORGANS, meta={"in_channels": 1},
                                  plan=SimpleNamespace(target_spacing_mm=[3.0, 3.0, 3.0], normalisation={"CT": {}}))
    check_lesion_pair(organ_model, _stage())
    with pytest.raises(UnimosError) as caught:
        check_lesion_pair(organ_model, _stage(("liver", "kidney_left"), ("spleen",), in_channels=1,
                                              spacing=(1.5, 1.5, 3.0)))
    message = str(caught.value)
    for part in ("'spleen', not a lesion class of the organ model's 'liver'", "crops 'kidney_left', which the organ "
                 "model does not segment", "reads 1 channels", "1.5"):
        assert part in message


def test_organs_with_the_same_lesion_classes_share_one_group():
    taxonomy = Taxonomy((ClassDef("liver"), ClassDef("kidney_right"), ClassDef("kidney_left"),
                         ClassDef("liver_tumor", ("liver",)), ClassDef("liver_cyst", ("liver",)),
                         ClassDef("kidney_tumor", ("kidney_right", "kidney_left"))))
    assert lesion_groups(taxonomy) == {"liver_tumor+liver_cyst": ([1], [4, 5]), "kidney_tumor": ([2, 3], [6])}


def test_the_organ_models_lesions_are_read_as_the_organ_around_them_before_cropping():
    kidneys = Taxonomy((ClassDef("kidney_right"), ClassDef("kidney_left"), ClassDef("liver"),
                        ClassDef("kidney_tumor", ("kidney_right", "kidney_left")), ClassDef("liver_tumor", ("liver",))))
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 1  # kidney_right
    labels[4:6, 4:6, 4:6] = 4  # a kidney tumour inside it
    labels[12:18, 2:8, 2:8] = 2  # kidney_left
    labels[10:12, 4:6, 4:6] = 4  # a kidney tumour touching the left kidney only
    labels[2:4, 15:17, 15:17] = 4  # a kidney tumour touching neither kidney: stays a lesion
    labels[12:16, 12:16, 12:16] = 5  # a liver tumour alone: its only parent
    out = lesions_read_as_organs(labels, kidneys)
    assert (out[4:6, 4:6, 4:6] == 1).all() and (out[10:12, 4:6, 4:6] == 2).all()
    assert (out[2:4, 15:17, 15:17] == 4).all() and (out[12:16, 12:16, 12:16] == 3).all()
    assert np.array_equal(out[labels < 4], labels[labels < 4])


def test_a_kidney_tumour_takes_the_kidney_on_its_body_side_when_the_midline_is_known():
    kidneys = Taxonomy((ClassDef("kidney_right"), ClassDef("kidney_left"),
                        ClassDef("kidney_tumor", ("kidney_right", "kidney_left"))))
    labels = np.zeros((20, 4, 4), np.uint8)
    labels[12:16] = 1  # kidney_right, x 12..15 mm
    labels[3:12] = 3  # a whole left kidney called tumour, joined to a tumour piece of the right kidney (x 10, 11)
    midline = Midline(9.5, np.eye(4))  # world x = voxel index: x >= 10 is the patient's right
    out = lesions_read_as_organs(labels, kidneys, midline)
    assert (out[10:16] == 1).all() and (out[3:10] == 2).all() and (out[:3] == 0).all() and (out[16:] == 0).all()
    # without the midline the joined piece goes to the only kidney on its shell
    assert (lesions_read_as_organs(labels, kidneys)[3:16] == 1).all()


def test_the_midline_reads_the_side_through_the_affine():
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped[0, 3] = 19.0  # world x = 19 - i: voxels 0..9 lie right of x = 9.5
    right = Midline(9.5, flipped).right_side((20, 2, 2))
    assert right[:10].all() and not right[10:].any()
