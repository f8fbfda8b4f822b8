"""Post-processing: organs keep their largest piece, lesions every piece, and nothing removed leaves a hole."""

import numpy as np
import pytest

from unimos.data.taxonomy import abdominal_taxonomy
from unimos.inference.postprocess import largest_component_per_class

# 1 liver, 2 spleen, 3 liver_tumor
TAXONOMY = abdominal_taxonomy(["liver", "spleen", "liver_tumor"])


def _liver_with_two_tumours() -> np.ndarray:
    labels = np.zeros((20, 12, 12), dtype=np.uint8)
    labels[2:18, 2:10, 2:10] = 1
    labels[4:6, 4:6, 4:6] = 3
    labels[12:15, 5:8, 5:8] = 3
    return labels


def test_two_lesions_of_one_class_both_survive():
    labels = _liver_with_two_tumours()
    out = largest_component_per_class(labels, TAXONOMY)
    assert np.array_equal(out, labels)
    assert int((out == 3).sum()) == 8 + 27


def test_a_lesion_outside_its_organ_is_kept_too():
    labels = _liver_with_two_tumours()
    labels[0, 0, 0] = 3  # a third, separate lesion: a lesion class keeps every component
    assert largest_component_per_class(labels, TAXONOMY)[0, 0, 0] == 3


def test_a_tumour_cutting_the_liver_in_two_does_not_remove_half_of_it():
    labels = np.zeros((20, 10, 10), dtype=np.uint8)
    labels[2:18, 2:8, 2:8] = 1
    labels[9:11, :, :] = 3  # a slab of tumour through the whole liver: liver voxels form two separate pieces
    assert np.array_equal(largest_component_per_class(labels, TAXONOMY), labels)


def test_a_stray_piece_inside_an_organ_becomes_that_organ_not_a_hole():
    labels = np.zeros((20, 12, 12), dtype=np.uint8)
    labels[2:18, 2:10, 2:10] = 1
    labels[0:2, 0:3, 0:3] = 2       # the spleen's largest piece, outside the liver
    labels[8:10, 5:7, 5:7] = 2      # a stray spleen blob (8 voxels) inside the liver
    out = largest_component_per_class(labels, TAXONOMY)
    assert (out[8:10, 5:7, 5:7] == 1).all()   # filled with the liver that encloses it
    assert (out[0:2, 0:3, 0:3] == 2).all()
    assert int((out == 2).sum()) == 18 and int((out == 0).sum()) == int((labels == 0).sum())


def test_a_stray_piece_in_background_becomes_background():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[0:4, 0:4, 0:4] = 1
    labels[8, 8, 8] = 1
    labels[6:8, 0:2, 0:2] = 2
    out = largest_component_per_class(labels)
    assert out[8, 8, 8] == 0 and (out[0:4, 0:4, 0:4] == 1).all() and (out[6:8, 0:2, 0:2] == 2).all()


def test_a_lesion_of_two_organs_filling_one_kidney_does_not_remove_the_other_kidney():
    """kidney_tumor has both kidneys as parents: a large tumour (or a whole kidney predicted as tumour) on the left
    is not a piece of the right kidney that outranks the right kidney itself."""
    taxonomy = abdominal_taxonomy(["kidney_right", "kidney_left", "kidney_tumor"])  # 1, 2, 3
    labels = np.zeros((20, 10, 10), dtype=np.uint8)
    labels[1:5, 2:8, 2:8] = 1      # right kidney: 144 voxels
    labels[10:19, 2:8, 2:8] = 3    # left: 324 voxels of tumour
    labels[10:12, 2:4, 2:4] = 2    # and 8 voxels of left kidney touching it
    assert np.array_equal(largest_component_per_class(labels, taxonomy), labels)


def _one_piece_at_a_time(labels: np.ndarray) -> np.ndarray:
    """The clean-up as first written: each removed piece in turn given the majority of its dilated shell."""
    import cc3d
    from scipy import ndimage

    out = labels.copy()
    for cls in (int(c) for c in np.unique(labels) if c != 0):
        components, count = cc3d.connected_components(labels == cls, connectivity=26, return_N=True)
        sizes = np.bincount(components[labels == cls], minlength=count + 1)
        for piece in range(1, count + 1):
            if piece == int(np.argmax(sizes)):
                continue
            mask = components == piece
            shell = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), dtype=bool)) & ~mask
            around = out[shell].astype(np.int64)
            out[mask & (out == cls)] = np.bincount(around).argmax() if around.size else 0
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_removing_every_piece_at_once_gives_what_removing_them_one_at_a_time_gives(seed):
    # a noisy map (what an untrained network predicts): hundreds of pieces per class, many touching the border
    labels = np.random.default_rng(seed).integers(0, 4, size=(14, 12, 10)).astype(np.uint8)
    labels[3:9, 3:9, 2:8] = 1  # one big piece of class 1, so its stray pieces are the rest
    assert np.array_equal(largest_component_per_class(labels), _one_piece_at_a_time(labels))
