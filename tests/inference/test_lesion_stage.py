"""The lesion stage at prediction (inference/lesion_stage.py): lesions written only inside their organ's crop, the
crop box rule, and a lesion model that does not fit the organ model refused with the reason."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unimos.data.taxonomy import ClassDef, Taxonomy
from unimos.errors import UnimosError
from unimos.inference.lesion_stage import add_lesions, check_lesion_pair, organ_crop_box, organ_mask_channel

ORGANS = Taxonomy((ClassDef("liver"), ClassDef("spleen"), ClassDef("liver_tumor", ("liver",))))


class BrightIsLesion(torch.nn.Module):
    """Lesion model stand-in: the lesion slot where the first channel is above 0.5, organ where the mask channel is
    on, background elsewhere."""

    def forward(self, x):
        lesion = 10 * (x[:, :1] - 0.5)
        organ = 5 * (x[:, -1:] - 0.5)
        return torch.cat([torch.zeros_like(lesion), organ, lesion + 4], dim=1)


def _lesion_model(names=("organ", "lesion"), in_channels=2, spacing=(3.0, 3.0, 3.0)):
    plan = SimpleNamespace(patch_size=[8, 8, 8], target_spacing_mm=list(spacing), normalisation={"CT": {}})
    return SimpleNamespace(network=BrightIsLesion(), class_names=["background", *names], plan=plan,
                           meta={"in_channels": in_channels, "patch_size": [8, 8, 8]})


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


def test_lesions_are_written_inside_their_organ_crop_only():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:15, 5:15, 5:15] = 1  # liver
    labels[20:24, 5:10, 5:10] = 2  # spleen
    labels[12, 12, 12] = 3  # a liver_tumor voxel of the organ model that the lesion model does not confirm
    image = np.zeros((1, 1, 30, 30, 30), np.float32)
    image[0, 0, 8:10, 8:10, 8:10] = 1.0  # inside the liver
    image[0, 0, 25:28, 25:28, 25:28] = 1.0  # far from the liver: outside its crop
    image[0, 0, 21, 6, 6] = 1.0  # inside the spleen, which has no lesion class
    image[0, 0, 14, 14, 14] = 1.0  # inside the liver's crop but given to the spleen: not overwritten
    labels[14, 14, 14] = 2
    options = SimpleNamespace(overlap=0.5, mirror=False, sw_batch_size=2)
    out, crops = add_lesions(labels, torch.from_numpy(image), ORGANS, _lesion_model(), (3.0, 3.0, 3.0), options,
                             None, margin_mm=3.0)
    expected = labels.copy()
    expected[8:10, 8:10, 8:10] = 3
    expected[12, 12, 12] = 1
    assert np.array_equal(out, expected)
    assert crops == {"liver": [[4, 4, 4], [16, 16, 16]]}
    assert labels[8, 8, 8] == 1  # the input is not modified


def test_a_lesion_model_that_does_not_fit_the_organ_model_is_refused_with_every_reason():
    organ_model = SimpleNamespace(taxonomy=ORGANS, meta={"in_channels": 1},
                                  plan=SimpleNamespace(target_spacing_mm=[3.0, 3.0, 3.0], normalisation={"CT": {}}))
    check_lesion_pair(organ_model, _lesion_model())
    with pytest.raises(UnimosError) as caught:
        check_lesion_pair(organ_model, _lesion_model(("liver", "spleen"), in_channels=1, spacing=(1.5, 1.5, 3.0)))
    message = str(caught.value)
    for part in ("not a lesion-stage model", "reads 1 channels", "1.5"):
        assert part in message
