"""UniMOS's slice resizing for 2D networks (paper 000, IV.A): images, labels and probabilities stay aligned."""

from __future__ import annotations

import numpy as np
import torch

from unimos.preprocess.slices import default_slice_patch, resize_slices, resized_position


def test_a_resized_label_follows_the_resized_image():
    label = torch.zeros(1, 1, 30, 20, dtype=torch.int64)
    label[..., 11:, :] = 3
    image = (label == 3).float() * 100
    small, large = (13, 7), (71, 45)
    for size in (small, large):
        resized_image = resize_slices(image, size)
        resized_label = resize_slices(label, size, labels=True)
        assert resized_label.dtype == torch.int64 and set(resized_label.unique().tolist()) == {0, 3}
        # along x the nearest source pixel weighs at least half in the bilinear image
        assert (resized_image[resized_label == 3] >= 50).all()
        assert (resized_image[resized_label == 0] <= 50).all()


def test_resized_probabilities_still_sum_to_one():
    logits = torch.randn(4, 5, 17, 23, generator=torch.Generator().manual_seed(0))
    back = resize_slices(resize_slices(torch.softmax(logits, dim=1), (32, 32)), (17, 23))
    assert back.shape == (4, 5, 17, 23)
    assert torch.allclose(back.sum(dim=1), torch.ones(4, 17, 23), atol=1e-5)


def test_a_slice_of_the_target_size_is_returned_unchanged():
    x = torch.randn(2, 1, 8, 8)
    assert resize_slices(x, (8, 8)) is x


def test_positions_map_to_the_pixel_under_their_centre():
    assert resized_position((4, 9), (10, 10), (5, 5)) == [2, 4]
    assert resized_position((0, 3), (4, 4), (8, 8)) == [1, 7]
    assert resized_position((9, 0), (10, 1), (3, 256)) == [2, 128]


def test_the_default_crop_is_unimos_224_of_256():
    assert default_slice_patch(256) == 224


def test_patches_of_a_resized_slice_are_cut_from_the_resized_slice(tiny_cache):
    from unimos.training.batches import PatchSource
    from unimos.training.sampler import Draw

    cases, _ = tiny_cache
    labeled = [c for c in cases if c.meta["has_label"]]
    source = PatchSource(labeled, (16, 16), seed=0, slice_resize=32)
    case = labeled[0]
    z = case.label().shape[2] // 2
    x, y = (n // 2 for n in case.label().shape[:2])
    patch = source.cut(Draw(case=0, centre=(x, y, z), cls=0))
    assert patch["image"].shape == (1, 16, 16) and patch["label"].shape == patch["region"].shape == (16, 16)
    full_image = resize_slices(torch.from_numpy(np.array(case.image()[..., z], np.float32))[None], (32, 32))[0]
    full_label = resize_slices(torch.from_numpy(np.array(case.label()[..., z], np.int64))[None, None], (32, 32),
                               labels=True)[0, 0]
    cx, cy = resized_position((x, y), case.label().shape[:2], (32, 32))
    window = (slice(cx - 8, cx + 8), slice(cy - 8, cy + 8))
    assert np.allclose(patch["image"][0], full_image[0][window].numpy())
    assert np.array_equal(patch["label"], full_label[window].numpy())
