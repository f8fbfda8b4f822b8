"""Networks behind a registry: 3D DynUNet (default) and a 2D PIPO-FAN-style net."""

from unimos.networks import dynunet, pipofan2d  # noqa: F401  (registers the entries)
from unimos.networks.base import Logits, SegmentationNetwork, full_resolution
from unimos.networks.dynunet import DynUNetSegmenter
from unimos.networks.pipofan2d import PipoFan2D
from unimos.networks.registry import (
                                      NETWORKS,
                                      PLAN_CONFIGS,
                                      build_network,
                                      network_config_for,
                                      register_network,
                                      register_plan_config,
)

__all__ = ["NETWORKS", "PLAN_CONFIGS", "DynUNetSegmenter", "Logits", "PipoFan2D", "SegmentationNetwork",
           "build_network", "full_resolution", "network_config_for", "register_network", "register_plan_config"]
