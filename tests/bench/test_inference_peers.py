"""bench/inference_peers.py: the speed goal is read against the fastest peer in unimos's own arithmetic."""

import torch

from tests.bench.scripts import load_bench_script


def _row(bench, tool: str, seconds: list[float], precision: str | None = None, peak_mib: float = 1000.0):
    notes = {"windows": {"count": 8, "size": [96, 96, 96], "precision": precision}} if precision else {}
    return bench.Row(tool, "ct", [bench.Run(s, s + 3.0, peak_mib, {}, notes) for s in seconds])


def test_a_bfloat16_default_is_compared_with_the_bfloat16_monai_row_not_the_float32_one():
    bench = load_bench_script("inference_peers")
    rows = {r.tool: r for r in [_row(bench, "monai", [30.0]), _row(bench, "monai_bf16", [14.0, 16.0, 15.0], "bfloat16"),
                                _row(bench, "nnunet_v2", [40.0])]}
    assert bench.same_arithmetic_peer(rows, "bfloat16") == ("monai_bf16", 15.0)
    assert bench.same_arithmetic_peer(rows, "float32") == ("monai", 30.0)
    # nnU-Net counts in either arithmetic when it is the fastest
    rows["nnunet_v2"] = _row(bench, "nnunet_v2", [10.0])
    assert bench.same_arithmetic_peer(rows, "bfloat16") == ("nnunet_v2", 10.0)
    assert bench.same_arithmetic_peer({}, "float32") is None


def test_goal_lines_give_the_ratio_to_that_peer_and_the_large_inputs_peak():
    bench = load_bench_script("inference_peers")
    small = [_row(bench, "unimos", [8.0], "bfloat16"), _row(bench, "monai", [30.0]),
             _row(bench, "monai_bf16", [20.0], "bfloat16")]
    large = [_row(bench, "unimos", [12.0], "bfloat16", peak_mib=3500.0), _row(bench, "monai", [30.0]),
             _row(bench, "monai_bf16", [20.0], "bfloat16")]
    (line,) = bench.goal_lines({"small": small, "large": large}, "small", "large")
    # 8 / 20 = 0.40 met; 12 / 20 = 0.60 missed (the float32 MONAI row, 30 s, would have made it 0.40); 3500 MiB > 3 GiB
    assert "small: 8.0 s, 0.40 x monai_bf16 (bfloat16; met <= 0.5)" in line
    assert "large: 12.0 s, 0.60 x monai_bf16 (bfloat16; missed <= 0.5)" in line
    assert "peak 3.42 GiB (missed <= 3 GiB)" in line


def test_a_missing_same_arithmetic_peer_is_said_not_replaced():
    bench = load_bench_script("inference_peers")
    rows = [_row(bench, "unimos", [8.0], "bfloat16"), _row(bench, "monai", [30.0])]
    (line,) = bench.goal_lines({"small": rows}, "small", "large")
    assert "no bfloat16 peer measured" in line and "x monai" not in line


def test_the_bfloat16_monai_row_runs_by_default_only_where_unimos_defaults_to_bfloat16():
    bench = load_bench_script("inference_peers")
    assert "monai_bf16" in bench.default_tools("bfloat16")
    assert "monai_bf16" not in bench.default_tools("float32")
    assert bench.parse_args(["--tools", "monai_bf16"]).tools == ["monai_bf16"]


def test_the_monai_peer_runs_its_network_in_bfloat16_when_asked(monkeypatch, tmp_path):
    """The worker's predictor: bfloat16 autocast inside, float32 logits out (what sliding_window_inference blends)."""
    bench = load_bench_script("inference_peers")
    seen: list[torch.dtype] = []

    import monai.inferers

    def fake_sliding_window(x, roi, batch, predictor, overlap, mode):
        window = torch.ones(1, 1, 4, 4, 4)
        logits = predictor(window)
        seen.append(logits.dtype)
        return torch.zeros(1, len(bench.CLASSES) + 1, *x.shape[2:])

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2)).dtype)
            return x

    monkeypatch.setattr(monai.inferers, "sliding_window_inference", fake_sliding_window)
    monkeypatch.setattr("monai.networks.nets.DynUNet", lambda *a, **k: Probe())
    import nibabel as nib
    import numpy as np

    source = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 6), np.int16), np.diag([3.0, 3.0, 3.0, 1.0])), str(source))
    for bfloat16, inside in ((True, torch.bfloat16), (False, torch.float32)):
        seen.clear()
        result = bench.monai_peer(source, tmp_path / "out.nii.gz", 32, False, bfloat16=bfloat16)
        assert seen == [inside, torch.float32]
        assert result["notes"]["windows"]["precision"] == ("bfloat16" if bfloat16 else "float32")
