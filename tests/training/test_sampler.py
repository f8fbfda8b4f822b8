from collections import Counter

import numpy as np
import pytest

from unimos.training.patches import cut_patch
from unimos.training.sampler import CaseIndex, build_sampler


def _case(modality, source, classes):
    centres = {c: np.array([[c, c, c]], dtype=np.int32) for c in classes}
    return CaseIndex(modality, source, frozenset(classes), (20, 20, 20), centres)


def _skewed_collection():
    # 40 CT cases annotate liver (1) and spleen (2); 3 annotate pancreas (3); 2 MR cases annotate kidney (4).
    cases = [_case("CT", "big", [1, 2]) for _ in range(40)]
    cases += [_case("CT", "small", [3]) for _ in range(3)]
    cases += [_case("MR", "mr", [4]) for _ in range(2)]
    return cases


def test_hierarchical_sampler_balances_classes_on_a_skewed_collection():
    sampler = build_sampler("cmd", _skewed_collection(), foreground_fraction=1.0)
    rng = np.random.default_rng(0)
    counts = Counter(sampler.draw(rng).cls for _ in range(8000))
    shares = np.array([counts[c] for c in (1, 2, 3, 4)]) / 8000
    assert np.allclose(shares, 0.25, atol=0.03)


def test_uniform_random_sampler_follows_the_case_counts_instead():
    sampler = build_sampler("random", _skewed_collection(), foreground_fraction=1.0)
    rng = np.random.default_rng(0)
    counts = Counter(sampler.draw(rng).cls for _ in range(8000))
    assert counts[3] / 8000 < 0.1 and counts[4] / 8000 < 0.05


def test_modality_first_sampler_gives_each_modality_half():
    sampler = build_sampler("mdc", _skewed_collection(), foreground_fraction=1.0)
    rng = np.random.default_rng(1)
    draws = [sampler.draw(rng) for _ in range(4000)]
    assert abs(sum(d.cls == 4 for d in draws) / 4000 - 0.5) < 0.03


def test_class_centre_is_only_picked_in_cases_annotating_the_class():
    cases = _skewed_collection()
    sampler = build_sampler("cmd", cases, foreground_fraction=1.0)
    rng = np.random.default_rng(2)
    for _ in range(500):
        draw = sampler.draw(rng)
        assert draw.cls in cases[draw.case].annotated
        assert draw.centre == (draw.cls,) * 3


def test_same_seed_same_draws():
    sampler = build_sampler("cmd", _skewed_collection())
    a = [sampler.draw(np.random.default_rng(5)) for _ in range(3)]
    b = [sampler.draw(np.random.default_rng(5)) for _ in range(3)]
    assert a == b


def test_unknown_sampler_name_lists_known_ones():
    from unimos.errors import UnimosError

    with pytest.raises(UnimosError, match="cmd"):
        build_sampler("nope", _skewed_collection())


def test_patch_overhanging_the_volume_is_padded():
    array = np.arange(5 * 6 * 7).reshape(1, 5, 6, 7)
    patch = cut_patch(array, (0, 3, 6), (4, 4, 4), fill=-1)
    assert patch.shape == (1, 4, 4, 4)
    assert (patch[0, :2] == -1).all() and patch[0, 2, 0, 0] == array[0, 0, 1, 4]


def test_foreground_box_is_the_labeled_bounding_box_grown_by_the_margin_and_clipped():
    from unimos.data.labels import foreground_box

    label = np.zeros((20, 20, 20), dtype=np.uint8)
    label[5:8, 10:12, 1:3] = 2
    label[9, 11, 2] = 1
    assert foreground_box(label, (2, 3, 4)) == ((3, 7, 0), (12, 15, 7))
    assert foreground_box(np.zeros((4, 4, 4)), (1, 1, 1)) is None


def test_random_centres_stay_inside_the_roi_when_a_case_has_one():
    roi = ((2, 5, 8), (6, 9, 12))
    case = CaseIndex("CT", "s", frozenset([1]), (20, 20, 20), {1: np.array([[3, 6, 9]], dtype=np.int32)}, roi)
    free = CaseIndex("CT", "s", frozenset([1]), (20, 20, 20), {1: np.array([[3, 6, 9]], dtype=np.int32)})
    rng = np.random.default_rng(0)
    inside = [build_sampler("cmd", [case], foreground_fraction=0.0).draw(rng).centre for _ in range(300)]
    anywhere = [build_sampler("cmd", [free], foreground_fraction=0.0).draw(rng).centre for _ in range(300)]
    assert all(lo <= c < hi for centre in inside for c, lo, hi in zip(centre, *roi))
    assert {c[0] for c in inside} == {2, 3, 4, 5}
    assert not all(lo <= c < hi for centre in anywhere for c, lo, hi in zip(centre, *roi))


def test_training_with_a_roi_margin_draws_random_patches_near_the_labeled_organs(tiny_cache):
    from unimos.data.labels import foreground_box
    from unimos.training.batches import PatchSource

    cases, plan = tiny_cache
    labeled = [c for c in cases if c.meta["has_label"]]
    source = PatchSource(labeled, plan.patch_size, "cmd", 0.0, seed=0, roi_margin=(1, 1, 1))
    for case, index in zip(labeled, source.sampler.cases):
        assert index.roi == foreground_box(np.asarray(case.label()), (1, 1, 1))
    rng = np.random.default_rng(0)
    for _ in range(200):
        draw = source.sampler.draw(rng)
        low, high = source.sampler.cases[draw.case].roi
        assert all(lo <= c < hi for c, lo, hi in zip(draw.centre, low, high))
    assert all(i.roi is None for i in PatchSource(labeled, plan.patch_size, seed=0).sampler.cases)


def test_only_samples_of_sparse_cases_are_marked_for_slice_by_slice_dice(tiny_cache):
    from unimos.losses.targets import targets_of
    from unimos.training.batches import PatchSource, is_sparse

    assert is_sparse({"annotated_slices": {2: [1, 4]}, "kind": "sparse"})
    assert is_sparse({"annotated_slices": None, "kind": "sparse"})  # 'ignore' voxels of a sparse source
    assert not is_sparse({"annotated_slices": None, "kind": "partial"})
    cases, plan = tiny_cache
    labeled = [c for c in cases if c.meta["has_label"]]
    source = PatchSource(labeled, plan.patch_size, seed=0)
    draws = [source.sampler.draw(np.random.default_rng(i)) for i in range(6)]
    targets = targets_of(source.batch_from_draws(draws))
    assert targets.sliced.tolist() == [is_sparse(labeled[d.case].meta) for d in draws]
