"""`unimatch`: UniMOS's semi-supervised module (paper 000, section III.B, eqs. 2-5), UniMatch adapted to volumes.

Per step: the weak view of the unlabeled batch gives pseudo-labels (argmax) and confidences (max softmax); two
strong views of it (independent intensity jitter, noise, blur, then CutMix) and a feature-perturbed pass (channel
dropout 0.5 on the encoder features of the weak view) learn from the pseudo-labels where the confidence is at least
tau.
  L_u = 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp (eq. 4);  L = 0.5 L_l + 0.5 L_u (eq. 5).
As released (LiheYoung/UniMatch, more-scenarios/medical/unimatch.py): the CutMix partner is a second unlabeled batch
that the loop draws for this strategy (`needs_partner_batch`), predicted without gradients in eval mode, whose own
strong views are pasted into the boxes and whose pseudo-labels and confidences go with them; tau defaults to the
released ACDC value, 0.95 (configs/acdc.yaml, conf_thresh).
Partially labeled samples of the labeled batch join the unlabeled flow, their pseudo-labels restricted to the
voxels whose class is unknown and to classes of the voxel's candidate set (docs/architecture.md, candidate sets).

The weak view is the loop's usual augmentation plus, as released, random flips and 90-degree rotations of the axial
plane: `weak_flip` / `weak_rot90` are `auto` by default, on when no project class is one of a left/right mirror pair
(cardiac: ventricles are not mirror images) and off when one is (kidney_left/right: a flip would swap them);
RUN/strategy.json says which was used and why.
"""

from __future__ import annotations

from typing import Any

import torch

from unimos.augment.transforms import AugmentConfig, augment_intensity
from unimos.data.catalogue import is_sided
from unimos.losses.targets import Targets, targets_of
from unimos.networks.base import Logits, full_resolution
from unimos.strategies.base import PROBABILITY, STRATEGIES, Limit, StepOutput, Strategy
from unimos.strategies.pseudo import (
    admissible,
    confident,
    cutmix_box,
    masked_cross_entropy,
    mix_with_partner,
    paste_from_partner,
    pseudo_labels,
)

STRONG_INTENSITY = AugmentConfig(
    flip_probability=0.0, rotation_probability=0.0, scale_probability=0.0, elastic_probability=0.0,
    brightness_probability=0.8, brightness_range=(0.6, 1.4), contrast_probability=0.8, contrast_range=(0.6, 1.4),
    gamma_probability=0.5, gamma_range=(0.6, 1.6), noise_probability=0.5, noise_max_sigma=0.15,
    blur_probability=0.5, blur_sigma_range=(0.5, 1.5))
"""The strong view's colour jitter (paper 000, Fig. 2) for one-channel scans:
brightness, contrast, gamma, noise, blur."""
AUTO_ON_OFF = ("auto", True, False)


def split_batch(logits: Logits, first: int) -> tuple[Logits, Logits]:
    """Split the batch axis of a logits tensor (or of every scale of a deep-supervision list) at `first`."""
    if isinstance(logits, list):
        return [x[:first] for x in logits], [x[first:] for x in logits]
    return logits[:first], logits[first:]


def weak_view(image: torch.Tensor, flip: bool, rot90: bool, generator: torch.Generator) -> torch.Tensor:
    """Per sample, optional random flips of the axial axes and a random multiple of 90 degrees in the axial plane."""
    out = []
    for sample in image:
        if flip:
            for axis in (1, 2):
                if float(torch.rand((), generator=generator)) < 0.5:
                    sample = sample.flip(axis)
        if rot90 and sample.shape[1] == sample.shape[2]:
            sample = torch.rot90(sample, int(torch.randint(0, 4, (), generator=generator)), dims=(1, 2))
        out.append(sample)
    return torch.stack(out)


def strong_views(image: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor, valid: torch.Tensor,
                 generator: torch.Generator, partner: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A strong view: intensity jitter of the weak view, then CutMix; with a `partner` batch (weak images, their
    pseudo-labels and confidences) its own strong view fills the boxes, else the next sample of the batch does."""
    strong = augment_intensity(image, STRONG_INTENSITY, generator)
    box = cutmix_box(image.shape[0], image.shape[2:], generator).to(image.device)
    if partner is None:
        strong, labels, confidence, valid = mix_with_partner(box, strong, labels, confidence, valid)
        return strong, labels, confidence, valid
    partner_image, partner_labels, partner_confidence = partner
    partner_strong = augment_intensity(partner_image, STRONG_INTENSITY, generator)
    everywhere = torch.ones_like(partner_labels, dtype=torch.bool)  # the partner is unlabeled: no voxel is known
    strong, labels, confidence, valid = paste_from_partner(box, (strong, labels, confidence, valid),
                                                           (partner_strong, partner_labels, partner_confidence,
                                                            everywhere))
    return strong, labels, confidence, valid


def weak_transforms(class_names: list[str], flip: str | bool, rot90: str | bool) -> tuple[bool, bool, str]:
    """Resolve `auto` weak flips / 90-degree rotations: on unless a class is one of a left/right mirror pair; the
    note says what was used and why."""
    sided = [name for name in class_names if is_sided(name)]
    reason = (f"{', '.join(sided[:4])} would swap sides" if sided else "no class is one of a left/right mirror pair")

    def resolve(what: str, value: str | bool) -> tuple[bool, str]:
        on = not sided if value == "auto" else bool(value)
        return on, f"{what} {'on' if on else 'off'} ({f'auto: {reason}' if value == 'auto' else 'set by the option'})"

    (flip_on, flip_note), (rot_on, rot_note) = resolve("weak flips", flip), resolve("90-degree rotations", rot90)
    return flip_on, rot_on, f"{flip_note}; {rot_note}"


@STRATEGIES.register("unimatch")
class UniMatch(Strategy):
    """Options: `tau` confidence threshold (0.95, the released ACDC value), `feature_dropout` (0.5), `weak_flip` /
    `weak_rot90` (auto: see the module docstring), `use_partial` (partially labeled samples join the unlabeled
    flow)."""

    needs_unlabeled = True
    needs_partner_batch = True
    defaults: dict[str, Any] = {"tau": 0.95, "feature_dropout": 0.5, "weak_flip": "auto", "weak_rot90": "auto",
                                "use_partial": True}
    limits = {"tau": PROBABILITY, "feature_dropout": PROBABILITY, "weak_flip": Limit(choices=AUTO_ON_OFF),
              "weak_rot90": Limit(choices=AUTO_ON_OFF)}
    summary = ("Pseudo-labels of a weak view supervise two strong views (intensity jitter + CutMix with a second "
               "unlabeled batch) and a feature-dropout pass, where their confidence is at least tau.")
    source = "paper 000 (UniMOS), section III.B, eqs. 2-5; released code LiheYoung/UniMatch, more-scenarios/medical"
    option_help = {
        "tau": "confidence threshold of the pseudo-labels; 0.95 is the released ACDC value (configs/acdc.yaml)",
        "feature_dropout": "channel dropout on the encoder features of the feature-perturbed pass (released: 0.5)",
        "weak_flip": "random flips of the weak view's axial plane, as released; auto: off when a class is one of a "
                     "left/right pair (a flip would swap them)",
        "weak_rot90": "random 90-degree rotations of the weak view's axial plane, as released; auto as weak_flip",
        "use_partial": "partially labeled samples also join the unlabeled flow, pseudo-labeled only where their "
                       "class is unknown and only with classes the voxel may be (its candidate set)",
    }

    def setup(self, class_names: list[str]) -> None:
        self.flip, self.rot90, note = weak_transforms(class_names, self.options["weak_flip"],
                                                      self.options["weak_rot90"])
        self.notes = [note]

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        net = self.main
        targets = targets_of(labeled)
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
        n_lab = labeled["image"].shape[0]
        incomplete = labeled.get("incomplete", torch.ones(n_lab, dtype=torch.bool)).to(labeled["image"].device)
        partial = bool(self.options["use_partial"]) and bool(incomplete.any())
        if unlabeled is None and not partial:
            supervised = self.loss(net(labeled["image"]), targets)
            return StepOutput(supervised, {"loss_labeled": float(supervised.detach())})

        flip, rot90 = getattr(self, "flip", False), getattr(self, "rot90", False)
        weak_unlabeled = partner = None
        if unlabeled is not None:
            weak_unlabeled = weak_view(unlabeled["image"], flip, rot90, generator)
            if "partner_image" in unlabeled:
                partner = self._partner(weak_view(unlabeled["partner_image"], flip, rot90, generator))
        images = labeled["image"] if weak_unlabeled is None else torch.cat([labeled["image"], weak_unlabeled])
        logits_lab, logits_weak = split_batch(net(images), n_lab)
        supervised = self.loss(logits_lab, targets)

        weak_images, weak_logits, valid = self._unlabeled_flow(labeled, targets, weak_unlabeled,
                                                               full_resolution(logits_weak),
                                                               full_resolution(logits_lab),
                                                               incomplete if partial else None)
        confidence, labels = pseudo_labels(weak_logits)
        tau = float(self.options["tau"])
        # paper 000, eq. 3: feature perturbation of the weak view
        logits_fp = full_resolution(net(weak_images, feature_dropout=float(self.options["feature_dropout"])))
        loss_fp = masked_cross_entropy(logits_fp, labels, confident(confidence, tau, valid))
        # paper 000, eq. 2: two strong views
        s1 = strong_views(weak_images, labels, confidence, valid, generator, partner)
        s2 = strong_views(weak_images, labels, confidence, valid, generator, partner)
        logits_s1, logits_s2 = split_batch(full_resolution(net(torch.cat([s1[0], s2[0]]))), weak_images.shape[0])
        loss_s1 = masked_cross_entropy(logits_s1, s1[1], confident(s1[2], tau, s1[3]))
        loss_s2 = masked_cross_entropy(logits_s2, s2[1], confident(s2[2], tau, s2[3]))
        unsupervised = 0.25 * loss_s1 + 0.25 * loss_s2 + 0.5 * loss_fp  # paper 000, eq. 4
        loss = 0.5 * supervised + 0.5 * unsupervised  # paper 000, eq. 5
        share = float(confident(confidence, tau, valid).float().mean())
        return StepOutput(loss, {"loss_labeled": float(supervised.detach()),
                                 "loss_unlabeled": float(unsupervised.detach()), "confident_share": share})

    def _partner(self, weak_partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The CutMix partner batch with its pseudo-labels and confidences, predicted in eval mode without gradients
        (as released); the network goes back to the mode it was in."""
        was_training = self.main.training
        self.main.eval()
        with torch.no_grad():
            confidence, labels = pseudo_labels(full_resolution(self.main(weak_partner)))
        self.main.train(was_training)
        return weak_partner, labels, confidence

    @staticmethod
    def _unlabeled_flow(labeled: dict[str, torch.Tensor], targets: Targets, weak_unlabeled: torch.Tensor | None,
                        logits_weak: torch.Tensor, logits_lab: torch.Tensor,
                        incomplete: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images, weak logits and the admissible-voxel mask of everything that learns from pseudo-labels: the
        unlabeled batch and the labeled samples whose label leaves some class unknown (`incomplete`)."""
        images, logits, valid = [], [], []
        if weak_unlabeled is not None:
            images.append(weak_unlabeled)
            logits.append(logits_weak)
            valid.append(torch.ones((weak_unlabeled.shape[0], *weak_unlabeled.shape[2:]), dtype=torch.bool,
                                    device=weak_unlabeled.device))
        if incomplete is not None:
            _, lab_labels = pseudo_labels(logits_lab)
            images.append(labeled["image"][incomplete])
            logits.append(logits_lab[incomplete])
            valid.append(admissible(lab_labels, targets)[incomplete])
        return torch.cat(images), torch.cat(logits), torch.cat(valid)
