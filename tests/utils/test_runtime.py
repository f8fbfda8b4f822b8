import pytest
import torch

from unimos.errors import UnimosError
from unimos.utils.runtime import Runtime, resolve_runtime


def test_float32_runtime_runs_the_network_without_autocast():
    runtime = resolve_runtime("cpu", "float32")
    assert runtime == Runtime(torch.device("cpu"), None) and runtime.precision_name == "float32"
    with runtime.autocast():
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32


def test_bfloat16_runtime_computes_matrix_products_in_bfloat16():
    runtime = resolve_runtime("cpu", "bfloat16")
    assert runtime.precision is torch.bfloat16 and runtime.precision_name == "bfloat16"
    with runtime.autocast():
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.bfloat16


def test_float16_on_a_cpu_is_refused_when_the_runtime_is_resolved():
    with pytest.raises(UnimosError, match="float16 autocast needs a CUDA device"):
        resolve_runtime("cpu", "float16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_missing_gpu_is_refused_when_the_runtime_is_resolved():
    with pytest.raises(UnimosError, match="no CUDA GPU is available"):
        resolve_runtime("cuda", "auto")
