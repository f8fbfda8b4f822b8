"""float32 against bfloat16 autocast, side by side in one run: a training step and an inference window.

Two workloads, each timed in both precisions, interleaved run by run so that a drift of the machine affects both:
- the demo's training step: the `3mm-small` DynUNet (filters 16-128, deep supervision), batch 2 of 48^3 patches,
  the `partial` loss on random labels, forward + backward + AdamW step;
- one inference window of the peers' network (../shared/PEERS.md: DynUNet 32-320, 5 stages, 14 outputs) on 96^3,
  as `unimos predict` runs it (logits cast back to float32 for MONAI's window sum).
Also reports how far the two precisions' window probabilities and argmax labels differ (random weights, a smooth
random image: a check of the arithmetic, not of a trained model's accuracy; for that, compare `unimos demo` runs
with `--precision float32` and the default, see bench/README.md).

    .venv/bin/python bench/precision.py                 # about 1 minute on 2 cores
    .venv/bin/python bench/precision.py --repeats 9

Writes bench/results/precision.md and the `precision` entry of bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import RESULTS, machine_line, merge_summary

from unimos.inference.sliding import _plain_logits
from unimos.losses.registry import build_loss
from unimos.losses.targets import Targets
from unimos.networks.registry import build_network
from unimos.utils.atomic import write_text_atomic
from unimos.utils.precision import autocast, cpu_has_native_bfloat16

THREADS = 2
DEMO_NETWORK = {"name": "dynunet", "spatial_dims": 3, "kernel_size": [[3, 3, 3]] * 4,
                "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], "filters": [16, 32, 64, 128],
                "deep_supervision": True}
PEER_NETWORK = {"name": "dynunet", "spatial_dims": 3, "kernel_size": [[3, 3, 3]] * 5,
                "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4, "filters": [32, 64, 128, 256, 320],
                "deep_supervision": False}
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


def training_step(dtype: torch.dtype | None) -> Callable[[], None]:
    """One demo-sized training step (10 classes, batch 2, 48^3) in `dtype` autocast; a fresh network per call."""
    torch.manual_seed(0)
    network = build_network(dict(DEMO_NETWORK), 1, 10).train()
    optimizer = torch.optim.AdamW(network.parameters(), 3e-3)
    loss = build_loss("partial")
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(2, 1, 48, 48, 48, generator=generator)
    labels = torch.randint(0, 10, (2, 48, 48, 48), generator=generator)
    targets = Targets(labels=labels, region=torch.ones_like(labels, dtype=torch.bool),
                      tables=torch.eye(10, dtype=torch.bool).expand(2, 10, 10).clone())

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast("cpu", dtype):
            value = loss(network(image), targets)
        value.backward()
        optimizer.step()
    return run


def inference_window(network: torch.nn.Module, image: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], None]:
    predictor = _plain_logits(network, dtype)

    def run() -> None:
        with torch.inference_mode():
            predictor(image)
    return run


def interleaved_medians(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each run, after one warm-up each, alternating the runs repeat by repeat."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def window_agreement(network: torch.nn.Module, image: torch.Tensor) -> dict[str, float]:
    """Largest probability difference and share of equal argmax labels, bfloat16 against float32."""
    with torch.inference_mode():
        exact = torch.softmax(_plain_logits(network, None)(image), dim=1)
        rounded = torch.softmax(_plain_logits(network, torch.bfloat16)(image), dim=1)
    return {"max_probability_difference": float((exact - rounded).abs().max()),
            "equal_labels": float((exact.argmax(1) == rounded.argmax(1)).float().mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per workload and precision (median)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the Markdown table and summary.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    native = cpu_has_native_bfloat16()
    steps = interleaved_medians({name: training_step(dtype) for name, dtype in PRECISIONS.items()}, args.repeats)
    torch.manual_seed(0)
    peer = build_network(dict(PEER_NETWORK), 1, 14).eval()
    smooth = torch.nn.functional.avg_pool3d(torch.randn(1, 1, 96, 96, 96, generator=torch.Generator().manual_seed(2)),
                                            7, 1, 3) * 7
    windows = interleaved_medians({name: inference_window(peer, smooth, dtype) for name, dtype in PRECISIONS.items()},
                                  args.repeats)
    agreement = window_agreement(peer, smooth)
    rows = [("demo training step (3mm-small, batch 2 x 48^3, partial loss)", steps),
            ("inference window (peers' 32-320 U-Net, 96^3)", windows)]
    lines = [f"float32 vs bfloat16 autocast, {machine_line()}, torch {torch.__version__} at {THREADS} threads; "
             f"CPU has AMX (bfloat16 matrix units): {'yes' if native else 'no'} (`--precision auto` picks "
             f"{'bfloat16' if native else 'float32'} here); median of {args.repeats} interleaved runs.", "",
             "| workload | float32 s | bfloat16 s | speed-up |", "|---|---:|---:|---:|"]
    for title, times in rows:
        lines.append(f"| {title} | {times['float32']:.3f} | {times['bfloat16']:.3f} | "
                     f"{times['float32'] / times['bfloat16']:.2f}x |")
    lines += ["", f"Window outputs, bfloat16 against float32 (random weights, smooth random image): largest "
                  f"probability difference {agreement['max_probability_difference']:.4f}, equal argmax labels "
                  f"{100 * agreement['equal_labels']:.2f}% of voxels."]
    text = "\n".join(lines) + "\n"
    print(text)
    write_text_atomic(args.results / "precision.md", text)
    merge_summary("precision", {"amx": native, "training_step_s": steps, "inference_window_s": windows,
                                "training_speedup": steps["float32"] / steps["bfloat16"],
                                "inference_speedup": windows["float32"] / windows["bfloat16"], **agreement},
                  args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
