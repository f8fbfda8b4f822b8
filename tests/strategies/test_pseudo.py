"""Shared semi-supervised pieces: confidence, masked loss, admissible voxels, CutMix, ramp-up."""

import math

import torch
import torch.nn.functional as F

from unimos.losses.targets import Targets
from unimos.strategies.pseudo import (
    admissible,
    confident,
    cutmix_box,
    masked_cross_entropy,
    mix_with_partner,
    paste_from_partner,
    pseudo_labels,
    sigmoid_rampup,
)


def test_confidence_is_the_max_softmax_and_the_pseudo_label_its_argmax():
    logits = torch.tensor([[[0.0, 2.0], [math.log(3.0), 0.0]]]).permute(0, 1, 2)  # (B=1, C=2, N=2)
    confidence, labels = pseudo_labels(logits)
    # voxel 0: softmax(0, log 3) = (1/4, 3/4); voxel 1: softmax(2, 0) = (e^2/(e^2+1), ...)
    assert torch.allclose(confidence, torch.tensor([[0.75, math.exp(2) / (math.exp(2) + 1)]]))
    assert labels.tolist() == [[1, 0]]


def test_confidence_mask_keeps_only_voxels_at_or_above_tau():
    confidence = torch.tensor([[0.96, 0.5, 0.95, 0.9499]])
    assert confident(confidence, 0.95).tolist() == [[True, False, True, False]]
    valid = torch.tensor([[False, True, True, True]])
    assert confident(confidence, 0.95, valid).tolist() == [[False, False, True, False]]
    assert confident(confidence, 1.0).tolist() == [[False, False, False, False]]


def test_paste_from_partner_takes_the_partner_batch_inside_the_box_and_cycles_it():
    box = torch.tensor([[True, False, False], [False, False, True], [True, True, False]])  # (B=3, N=3)
    image = torch.tensor([[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]], [[7.0, 8.0, 9.0]]])  # (3, C=1, 3)
    labels = torch.tensor([[1, 1, 1], [2, 2, 2], [3, 3, 3]])
    partner_image = torch.tensor([[[-1.0, -2.0, -3.0]], [[-4.0, -5.0, -6.0]]])  # P = 2: sample 2 takes partner 0
    partner_labels = torch.tensor([[0, 0, 0], [9, 9, 9]])
    mixed_image, mixed_labels = paste_from_partner(box, (image, labels), (partner_image, partner_labels))
    assert mixed_image.tolist() == [[[-1.0, 2.0, 3.0]], [[4.0, 5.0, -6.0]], [[-1.0, -2.0, 9.0]]]
    assert mixed_labels.tolist() == [[0, 1, 1], [2, 2, 9], [0, 0, 3]]


def test_masked_cross_entropy_sums_masked_voxels_over_all_voxels():
    logits = torch.randn(2, 3, 4, 5)
    labels = torch.randint(0, 3, (2, 4, 5))
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[0, 1, 2] = mask[1, 3, 4] = True
    ce = F.cross_entropy(logits, labels, reduction="none")
    expected = (ce[0, 1, 2] + ce[1, 3, 4]) / 40
    assert torch.allclose(masked_cross_entropy(logits, labels, mask), expected)


def test_pseudo_labels_are_admissible_only_where_the_class_is_unknown_and_a_candidate():
    # classes: 0 background, 1 liver, 2 spleen; a liver-only source: label 1 = {liver}, label 0 = {bg, spleen}
    table = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    labels = torch.tensor([[0, 0, 1, 0]])
    region = torch.tensor([[True, True, True, False]])
    targets = Targets(labels, region, table[None])
    pseudo = torch.tensor([[2, 1, 1, 1]])
    # voxel 0: {bg, spleen}, pseudo spleen -> yes; voxel 1: pseudo liver is not a candidate -> no;
    # voxel 2: known liver -> no; voxel 3: outside the region, every class a candidate -> yes
    assert admissible(pseudo, targets).tolist() == [[True, False, False, True]]


def test_cutmix_pastes_the_partner_sample_inside_the_box_into_image_and_pseudo_label_alike():
    image = torch.stack([torch.full((1, 6, 6, 6), float(i)) for i in range(3)])
    labels = torch.stack([torch.full((6, 6, 6), i) for i in range(3)])
    box = cutmix_box(3, (6, 6, 6), torch.Generator().manual_seed(1), probability=1.0)
    assert all(0 < int(box[b].sum()) < 216 for b in range(3))
    mixed_image, mixed_labels = mix_with_partner(box, image, labels)
    for b in range(3):
        partner = (b - 1) % 3
        assert torch.all(mixed_image[b, 0][box[b]] == partner) and torch.all(mixed_image[b, 0][~box[b]] == b)
        assert torch.equal(mixed_labels[b].float(), mixed_image[b, 0])


def test_cutmix_box_is_one_axis_aligned_block():
    box = cutmix_box(1, (10, 8, 6), torch.Generator().manual_seed(3), probability=1.0)[0]
    where = box.nonzero()
    lo, hi = where.min(0).values, where.max(0).values
    assert int(box.sum()) == int(torch.prod(hi - lo + 1))


def test_rampup_grows_from_near_zero_to_one():
    assert sigmoid_rampup(0, 100) == math.exp(-5)
    assert sigmoid_rampup(50, 100) == math.exp(-5 * 0.25)
    assert sigmoid_rampup(100, 100) == sigmoid_rampup(500, 100) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0
