from __future__ import annotations

import pytest

from unimos.errors import PlanError, UnimosError
from unimos.networks import build_network, network_config_for
from unimos.preprocess.plan import with_hashes


def test_an_unknown_network_lists_the_known_ones():
    with pytest.raises(UnimosError, match="dynunet"):
        build_network({"name": "resnet"}, 1, 2)


def test_a_config_without_a_name_is_a_plan_error():
    with pytest.raises(PlanError, match="name"):
        build_network({"filters": [4, 8]}, 1, 2)


def test_dynunet_config_is_a_copy_of_the_plans_network(tiny_plan):
    config = network_config_for(tiny_plan, "dynunet")
    assert config == tiny_plan.network and config is not tiny_plan.network
    config["filters"][0] = 999
    assert tiny_plan.network["filters"][0] != 999


def test_pipofan2d_config_derives_from_the_plans_filters(tiny_plan):
    config = network_config_for(tiny_plan, "pipofan2d")
    assert config == {"name": "pipofan2d", "spatial_dims": 2, "filters": tiny_plan.network["filters"][:6],
                      "deep_supervision": tiny_plan.network["deep_supervision"]}


def test_a_plan_edited_to_pipofan2d_keeps_its_own_config(tiny_plan):
    edited = with_hashes(tiny_plan.model_copy(update={"network": {"name": "pipofan2d", "filters": [8, 16, 32]}}))
    assert network_config_for(edited, "pipofan2d") == {"name": "pipofan2d", "filters": [8, 16, 32]}
    with pytest.raises(PlanError, match="dynunet"):
        network_config_for(edited, "dynunet")


def test_an_unknown_network_name_for_a_plan_lists_the_known_ones(tiny_plan):
    with pytest.raises(UnimosError, match="pipofan2d"):
        network_config_for(tiny_plan, "resnet")
