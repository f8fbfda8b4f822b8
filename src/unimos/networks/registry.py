"""The network registry: a plan's network entry (`plan.network`, a config dict) names an entry, `build_network`
makes the module.

A new network is one new module in this folder that decorates two functions:

    @register_network("mynet")            # (config, in_channels, num_classes) -> SegmentationNetwork
    @register_plan_config("mynet")        # (plan) -> the config dict to build it from a plan

and one import line in `unimos/networks/__init__.py`; the contract test in tests/networks runs over every entry.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Callable

from torch import nn

from unimos.data.plan_spec import ModelPlan
from unimos.errors import PlanError
from unimos.networks.base import SegmentationNetwork
from unimos.utils.registry import Registry

NETWORKS = Registry[nn.Module]("network")
PLAN_CONFIGS = Registry[dict[str, Any]]("network (for a plan)")


def register_network(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `factory(config, in_channels, num_classes)` under `name`."""
    return NETWORKS.register(name)


def register_plan_config(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Decorator: register `derive(plan) -> config` giving network `name`'s config dict for a plan."""
    return PLAN_CONFIGS.register(name)


def build_network(config: Mapping[str, Any], in_channels: int, num_classes: int) -> nn.Module:
    """Build the network a config dict (a plan's "network" entry) describes.

    Args:
        config: at least {"name": ...}; the other keys are those of the named network (see its module docstring).
        in_channels: image channels of the input (modalities).
        num_classes: output classes, background included.

    Raises:
        PlanError: the config is not a dict with a known "name", or its keys or values do not fit that network.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
        raise PlanError("plan 'network'", f"is not a dict with a 'name' (got {config!r})",
                        f"give a dict such as {{'name': 'dynunet', ...}}; known names: {NETWORKS.names()}")
    network = NETWORKS.get(config["name"])(config, in_channels, num_classes)
    if not isinstance(network, SegmentationNetwork):  # a registration bug, not a user error
        raise TypeError(f"network '{config['name']}' built a {type(network).__name__}, not a SegmentationNetwork")
    return network


def network_config_for(plan: ModelPlan, name: str) -> dict[str, Any]:
    """The config dict to build network `name` for a plan.

    The plan's own network entry when it already names `name` (so a hand-edited plan is respected); otherwise the
    config that network derives from the plan (e.g. `pipofan2d` from the plan's filters).
    """
    if plan.network.get("name") == name:
        return copy.deepcopy(dict(plan.network))
    NETWORKS.get(name)  # an unknown name fails here, listing the known networks
    return PLAN_CONFIGS.get(name)(plan)


def check_config_keys(config: Mapping[str, Any], required: set[str], optional: set[str]) -> None:
    """Raise a PlanError naming missing or unknown keys of a network config (typos must not pass silently)."""
    name = config.get("name")
    missing = sorted(required - set(config))
    unknown = sorted(set(config) - required - optional - {"name"})
    if missing:
        raise PlanError(f"plan 'network' ({name})", f"lacks the key(s) {missing}",
                        "add them or run `unimos plan` again")
    if unknown:
        raise PlanError(f"plan 'network' ({name})", f"has unknown key(s) {unknown}",
                        f"remove them; '{name}' reads {sorted(required | optional | {'name'})}")


def check_spatial_dims(config: Mapping[str, Any], allowed: tuple[int, ...], implied: int | None = None) -> int:
    """The config's spatial_dims (default: the first allowed, or what kernel sizes imply), checked."""
    name = config.get("name")
    dims = config.get("spatial_dims", implied if implied is not None else allowed[0])
    if dims not in allowed:
        raise PlanError(f"plan 'network' ({name})", f"has spatial_dims {dims!r}, '{name}' supports {list(allowed)}",
                        f"set spatial_dims to one of {list(allowed)} or pick another network")
    if implied is not None and dims != implied:
        raise PlanError(f"plan 'network' ({name})",
                        f"has spatial_dims {dims} but its kernel sizes and strides have {implied} axes",
                        "make them agree")
    return int(dims)


def positive_ints(config: Mapping[str, Any], key: str, values: Any) -> list[int]:
    """`values` as a non-empty list of positive ints, or a PlanError naming `key`."""
    if (not isinstance(values, (list, tuple)) or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)):
        raise PlanError(f"plan 'network' ({config.get('name')})", f"'{key}' is {values!r}, not a list of positive "
                        "integers", f"give '{key}' as e.g. [16, 32, 64]")
    return [int(v) for v in values]
