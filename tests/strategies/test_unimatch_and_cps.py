"""UniMatch and CPS by hand: what reaches the loss and what does not."""

import torch
import torch.nn.functional as F

from tests.strategies.helpers import tiny_batches
from unimos.losses.targets import targets_of
from unimos.strategies.cps import cross_pseudo_loss
from unimos.strategies.unimatch import split_batch, strong_views, weak_transforms, weak_view
from unimos.training.config import TrainConfig
from unimos.training.loop import build_strategy


def test_unimatch_without_confident_voxels_is_half_the_supervised_loss(tiny_cache):
    cases, plan = tiny_cache
    labeled, unlabeled = tiny_batches(cases, plan)
    strategy = build_strategy(TrainConfig(strategy="unimatch", strategy_options={"tau": 1.0}), plan, 1,
                              len(plan.classes) + 1)
    strategy.eval()  # no dropout: the labeled logits are the same in both forward passes
    out = strategy.step(labeled, unlabeled, 0, 10)
    supervised = strategy.loss(strategy.main(labeled["image"]), targets_of(labeled))
    assert torch.allclose(out.loss, 0.5 * supervised, atol=1e-6)  # paper 000, eq. 5 with L_u = 0
    assert out.logs["confident_share"] == 0.0


def test_strong_views_differ_from_each_other_but_keep_the_weak_pseudo_labels_outside_the_box():
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(2, 1, 8, 8, 8)
    labels = torch.stack([torch.zeros(8, 8, 8, dtype=torch.long), torch.ones(8, 8, 8, dtype=torch.long)])
    conf = torch.rand(2, 8, 8, 8)
    valid = torch.ones(2, 8, 8, 8, dtype=torch.bool)
    s1 = strong_views(image, labels, conf, valid, gen)
    s2 = strong_views(image, labels, conf, valid, gen)
    assert not torch.equal(s1[0], s2[0])
    for view in (s1, s2):
        kept = view[1] == labels  # outside the box each sample keeps its own label; inside, its partner's
        assert torch.equal(view[2][kept], conf[kept])


def test_weak_view_without_flips_or_rotations_is_the_identity():
    image = torch.randn(3, 1, 6, 6, 4)
    assert torch.equal(weak_view(image, False, False, torch.Generator()), image)
    flipped = weak_view(image, True, True, torch.Generator().manual_seed(2))
    assert flipped.shape == image.shape and torch.allclose(flipped.sum(), image.sum(), atol=1e-4)


def test_split_batch_splits_every_deep_supervision_scale():
    a, b = split_batch([torch.zeros(5, 2, 4), torch.zeros(5, 2, 2)], 2)
    assert [x.shape[0] for x in a] == [2, 2] and [x.shape[0] for x in b] == [3, 3]


def test_cross_pseudo_loss_of_two_equal_predictions_is_twice_the_ce_to_their_own_argmax():
    logits = torch.randn(2, 3, 4, 4)
    expected = 2 * F.cross_entropy(logits, logits.argmax(1))
    assert torch.allclose(cross_pseudo_loss(logits, logits.clone()), expected)


def test_cross_pseudo_loss_sends_no_gradient_through_the_pseudo_labels():
    a = torch.randn(1, 3, 4, 4, requires_grad=True)
    b = torch.randn(1, 3, 4, 4, requires_grad=True)
    cross_pseudo_loss(a, b).backward()
    expected_a = torch.autograd.grad(F.cross_entropy(a, b.argmax(1)), a)[0]
    assert torch.allclose(a.grad, expected_a)


def test_only_partial_and_sparse_cases_count_as_having_unknown_classes():
    from unimos.training.batches import has_unknown_classes

    identity = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    liver_only = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert not has_unknown_classes({"has_label": True, "candidate_table": identity, "annotated_slices": None})
    assert has_unknown_classes({"has_label": True, "candidate_table": liver_only, "annotated_slices": None})
    assert has_unknown_classes({"has_label": True, "candidate_table": identity, "annotated_slices": [2, 7]})
    assert not has_unknown_classes({"has_label": False, "candidate_table": identity, "annotated_slices": None})


def test_unimatch_pseudo_labels_partial_samples_only_where_their_class_is_unknown(tiny_cache):
    cases, plan = tiny_cache
    liver_only = [c for c in cases if c.meta["source"] == "liver_only"]
    labeled, _ = tiny_batches(liver_only + [c for c in cases if not c.meta["has_label"]], plan)
    assert labeled["incomplete"].all()
    strategy = build_strategy(TrainConfig(strategy="unimatch", strategy_options={"tau": 0.0}), plan, 1,
                              len(plan.classes) + 1)
    out = strategy.step(labeled, None, 0, 10)
    assert torch.isfinite(out.loss) and out.logs["confident_share"] > 0
    off = build_strategy(TrainConfig(strategy="unimatch", strategy_options={"use_partial": False}), plan, 1,
                         len(plan.classes) + 1)
    assert "confident_share" not in off.step(labeled, None, 0, 10).logs


def test_weak_flips_and_rotations_are_on_for_cardiac_classes_and_off_with_a_mirror_pair():
    flip, rot90, note = weak_transforms(["right_ventricle", "myocardium", "left_ventricle"], "auto", "auto")
    assert (flip, rot90) == (True, True)
    assert note == ("weak flips on (auto: no class is one of a left/right mirror pair); 90-degree rotations on "
                    "(auto: no class is one of a left/right mirror pair)")
    flip, rot90, note = weak_transforms(["liver", "kidney_right", "kidney_left"], "auto", "auto")
    assert (flip, rot90) == (False, False) and note.startswith("weak flips off (auto: kidney_right, kidney_left would")
    flip, rot90, note = weak_transforms(["liver", "kidney_left"], True, "auto")
    assert (flip, rot90) == (True, False)
    assert note == "weak flips on (set by the option); 90-degree rotations off (auto: kidney_left would swap sides)"


def test_unimatch_records_its_weak_transforms_in_strategy_json(tiny_cache, tmp_path):
    import json

    from unimos.training.loop import train

    cases, plan = tiny_cache  # liver and spleen: no mirror pair
    train(cases, plan, TrainConfig(strategy="unimatch", iterations=1, checkpoint_every=0, device="cpu"),
          tmp_path / "run")
    described = json.loads((tmp_path / "run" / "strategy.json").read_text())
    assert described["strategy"] == "unimatch" and described["options"]["weak_flip"] == "auto"
    assert described["notes"] == ["weak flips on (auto: no class is one of a left/right mirror pair); 90-degree "
                                  "rotations on (auto: no class is one of a left/right mirror pair)"]


class _Recorder(torch.nn.Module):
    """Wraps a network and records, per call, the batch size, train/eval mode and whether gradients were on."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, image, **kwargs):
        self.calls.append((image.shape[0], self.training, torch.is_grad_enabled(), "feature_dropout" in kwargs))
        return self.inner(image, **kwargs)


def test_unimatch_predicts_the_separate_cutmix_partner_batch_in_eval_mode_without_gradients(tiny_cache):
    cases, plan = tiny_cache
    strategy = build_strategy(TrainConfig(strategy="unimatch", strategy_options={"use_partial": False}), plan, 1,
                              len(plan.classes) + 1)
    recorder = _Recorder(strategy.nets["main"])
    strategy.nets["main"] = recorder
    strategy.train()
    labeled, unlabeled = tiny_batches(cases, plan)
    _, partner = tiny_batches(cases, plan, seed=5)
    unlabeled = {**unlabeled, "partner_image": partner["image"][:1]}  # one partner sample for two unlabeled ones
    out = strategy.step(labeled, unlabeled, 0, 10)
    assert torch.isfinite(out.loss)
    # partner (1 sample, eval, no grad); labeled + weak (2 + 2, train, grad); feature dropout; the two strong views
    assert recorder.calls == [(1, False, False, False), (4, True, True, False), (2, True, True, True),
                              (4, True, True, False)]
    assert recorder.training


def test_the_loop_draws_a_partner_batch_for_unimatch_and_keeps_the_labeled_batches(tiny_cache, tmp_path, monkeypatch):
    from unimos.strategies.supervised import Supervised
    from unimos.strategies.unimatch import UniMatch
    from unimos.training.loop import train

    cases, plan = tiny_cache
    seen: dict[str, list] = {"supervised": [], "unimatch": []}

    def spy(name, original):
        def step(self, labeled, unlabeled, step, total):
            seen[name].append((labeled["image"].clone(), None if unlabeled is None else sorted(unlabeled)))
            return original(self, labeled, unlabeled, step, total)
        return step

    monkeypatch.setattr(Supervised, "step", spy("supervised", Supervised.step))
    monkeypatch.setattr(UniMatch, "step", spy("unimatch", UniMatch.step))
    for name in seen:
        train(cases, plan, TrainConfig(strategy=name, iterations=2, checkpoint_every=0, device="cpu", seed=4),
              tmp_path / name)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(seen["supervised"], seen["unimatch"]))
    assert len(seen["unimatch"]) == len(seen["supervised"]) == 2
    assert all(keys is None for _, keys in seen["supervised"])
    assert all("partner_image" in keys and "image" in keys for _, keys in seen["unimatch"])
