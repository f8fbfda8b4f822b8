"""Losses from candidate sets (partial labels) and the baselines they are compared with."""

from unimos.losses import baselines, compound, cross_entropy, dice, entropy, exclusion  # noqa: F401  (register)
from unimos.losses.registry import LOSSES, build_loss, register_loss
from unimos.losses.targets import Targets

__all__ = ["LOSSES", "Targets", "build_loss", "register_loss"]
