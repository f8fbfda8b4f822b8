"""How long augmentation takes next to one training step of the network it feeds.

Prints, per batch shape and torch thread count, the median milliseconds per batch of `augment_batch` (default
`AugmentConfig`, and the worst case with every transform drawn for every sample, elastic included), the median of one
forward + backward pass of a MONAI DynUNet (filters 16-256, strides 1,2,2,2,2, 10 classes, cross-entropy) on the same
batch, and their ratio. Goal: augmentation with the defaults under 10% of the training step.

Example:
    .venv/bin/python bench/augment_speed.py
    .venv/bin/python bench/augment_speed.py --sizes 64 --threads 1 --network-repeats 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from monai.networks.nets import DynUNet

from unimos.augment.transforms import AugmentConfig, augment_batch

WORST_CASE = AugmentConfig(flip_probability=0.5, rotation_probability=1.0, scale_probability=1.0,
                           elastic_probability=1.0, brightness_probability=1.0, contrast_probability=1.0,
                           gamma_probability=1.0, noise_probability=1.0, blur_probability=1.0)


def make_batch(batch_size: int, size: int, classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A z-scored-like image, labels over all classes and an annotated region covering most of the patch."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, size, size, size)
    return {"image": torch.randn(batch_size, 1, size, size, size, generator=generator),
            "label": torch.randint(0, classes, shape, generator=generator),
            "region": torch.rand(shape, generator=generator) > 0.2}


def median_ms(run, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def augmentation_ms(batch: dict, config: AugmentConfig, repeats: int) -> float:
    """Median over `repeats` calls with one running generator, so the per-sample draws vary as in training."""
    generator = torch.Generator().manual_seed(1234)
    return median_ms(lambda: augment_batch(batch, config, generator), repeats, warmup=3)


def training_step_ms(batch: dict, classes: int, repeats: int) -> float:
    network = DynUNet(spatial_dims=3, in_channels=1, out_channels=classes, kernel_size=[3] * 5,
                      strides=[1, 2, 2, 2, 2], upsample_kernel_size=[2] * 4, filters=[16, 32, 64, 128, 256])
    network.train()
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        network.zero_grad(set_to_none=True)
        loss = loss_fn(network(batch["image"]), batch["label"])
        loss.backward()

    return median_ms(step, repeats, warmup=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 64], help="cubic patch sides (voxels)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads values")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=40, help="augmentation calls per measurement")
    parser.add_argument("--network-repeats", type=int, default=3, help="training steps per measurement")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    header = ("| batch | threads | augment, defaults (ms) | augment, everything drawn (ms) | "
              "DynUNet fwd+bwd (ms) | defaults / step | everything / step |")
    print(header)
    print("|---" * 7 + "|")
    for size in args.sizes:
        batch = make_batch(args.batch_size, size, args.classes)
        for threads in args.threads:
            torch.set_num_threads(threads)
            default_ms = augmentation_ms(batch, AugmentConfig(), args.repeats)
            worst_ms = augmentation_ms(batch, WORST_CASE, max(5, args.repeats // 4))
            step_ms = training_step_ms(batch, args.classes, args.network_repeats)
            print(f"| ({args.batch_size}, 1, {size}, {size}, {size}) | {threads} | {default_ms:.1f} | {worst_ms:.1f} "
                  f"| {step_ms:.0f} | {100 * default_ms / step_ms:.2f}% | {100 * worst_ms / step_ms:.2f}% |",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} (other work on the machine inflates every column)")


if __name__ == "__main__":
    main()
