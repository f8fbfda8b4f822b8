"""Can a lesion be learned from crops around its organ? A plain binary training loop outside unimos's trainer.

Reads a demo folder's preprocessed cache (OUT/cache, 3 mm), cuts every training case whose name starts with
`--sources` around its parent organ (reference labels, margin 4 voxels) with the organ mask as a second channel,
trains a DynUNet 16-128 (lesion vs not; cross-entropy + Dice over the batch, eps 1e-5; half the patches centred on
a lesion voxel, half on an organ voxel; flips only) and scores lesion DSC on the test cases inside their reference
organ (an oracle organ mask, so it measures the lesion step alone). Run it on a development seed's folder.

Example: .venv/bin/python bench/lesion_crop_probe.py /work/dev_demo --lesion 10 --parents 1 --sources lits_like
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import DynUNet

PATCH = 32


def crops(root: Path, split: str, lesion: int, parents: list[int], prefix: str) -> list[tuple]:
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("split") != split or not (folder / "label.npy").exists() or meta["modality"] != "CT":
            continue
        if split == "train" and not folder.name.startswith(prefix):
            continue
        label, image = np.load(folder / "label.npy"), np.load(folder / "image.npy")[0]
        organ = np.isin(label, [*parents, lesion])
        if not organ.any():
            continue
        hits = np.argwhere(organ)
        low, high = np.maximum(hits.min(0) - 4, 0), np.minimum(hits.max(0) + 5, label.shape)
        cut = tuple(slice(a, b) for a, b in zip(low, high))
        pad = [(0, max(0, PATCH - (b - a))) for a, b in zip(low, high)]
        out.append((folder.name, *(np.pad(a, pad) for a in (image[cut].astype(np.float32), organ[cut],
                                                             label[cut] == lesion))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path)
    parser.add_argument("--lesion", type=int, default=10)
    parser.add_argument("--parents", type=lambda s: [int(v) for v in s.split(",")], default=[1])
    parser.add_argument("--sources", default="lits_like", help="training case-name prefix")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    root = next(p for p in (args.demo / "cache").iterdir() if p.is_dir())
    train, test = (crops(root, s, args.lesion, args.parents, args.sources) for s in ("train", "test"))
    net = DynUNet(3, 2, 2, [3] * 4, [1, 2, 2, 2], [2, 2, 2], filters=[16, 32, 64, 128], norm_name="instance")
    optimiser = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=3e-5)
    rng = np.random.default_rng(args.seed)
    with_lesion = [c for c in train if c[3].any()]
    started = time.perf_counter()
    for step in range(args.iterations):
        xs, ys = [], []
        for _ in range(2):
            if rng.random() < 0.5:  # a lesion voxel of a crop that has one
                case = with_lesion[rng.integers(len(with_lesion))]
                voxels = np.argwhere(case[3])
            else:  # an organ voxel of any crop
                case = train[rng.integers(len(train))]
                voxels = np.argwhere(case[2])
            centre = voxels[rng.integers(len(voxels))]
            low = [int(np.clip(c - PATCH // 2, 0, s - PATCH)) for c, s in zip(centre, case[1].shape)]
            cut = tuple(slice(a, a + PATCH) for a in low)
            x, y = np.stack([case[1][cut], case[2][cut].astype(np.float32)]), case[3][cut]
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[::-1]
            xs.append(x.copy())
            ys.append(y.copy())
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()
        for group in optimiser.param_groups:
            group["lr"] = 3e-3 * (1 - step / args.iterations) ** 0.9
        logits = net(x)
        p, t = logits.softmax(1)[:, 1], y.float()
        dice = (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)
        loss = torch.nn.functional.cross_entropy(logits, y) + 1 - dice
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    seconds = time.perf_counter() - started
    net.eval()
    scores = {}
    with torch.no_grad():
        for name, image, organ, lesion in test:
            x = torch.from_numpy(np.stack([image, organ.astype(np.float32)]))[None]
            found = sliding_window_inference(x, (PATCH,) * 3, 2, net, overlap=0.5, mode="gaussian").argmax(1)[0]
            found = found.numpy().astype(bool) & organ
            scores[name] = 1.0 if not (found.any() or lesion.any()) else \
                float(2 * (found & lesion).sum() / (found.sum() + lesion.sum()))
    print("| training cases | crops with a lesion | iterations | training s | lesion DSC per test case | mean |")
    print(f"| {len(train)} | {len(with_lesion)} | {args.iterations} | {seconds:.0f} | "
          f"{' '.join(f'{v:.3f}' for v in scores.values())} | {np.mean(list(scores.values())):.3f} |")
    print(f"machine: {platform.processor() or platform.machine()}, float32, torch {torch.__version__}")


if __name__ == "__main__":
    main()
