"""How `unimos predict`'s time grows with the volume: the exponent b of time ~ voxels^b (goal <= 1.05).

The same CT (totalseg/example_ct.nii.gz, 122 x 101 x 112 at 3 mm) is predicted with plans whose target spacing is
3, 2.4 and 2 mm (default --spacings): the same network as bench/inference_peers.py (random weights, patch 96), on a
network grid that grows 1x, 1.9x and 3.4x. Each run is a fresh `unimos predict` process at 2 threads. From each
size's case seconds (input file to written label map, model loaded; median of --repeats) the case seconds of a tiny
input (a 24^3 block of the CT with the 3 mm plan: the per-case cost that does not grow with the volume) are
subtracted, and log(time) is fitted against log(voxels of the network grid). The same fit of the whole process time
less the tiny input's (start-up and model loading cancel) is reported beside it.

--window auto (default) runs with --memory-budget-gib 8 so that every size is one window: the exponent then measures
the pipeline (reading, resampling, network, writing), not how a smaller budget tiles the volume. --window patch
measures the plan's patch windows, whose count grows in steps (8, 12, 27 windows here).

    .venv/bin/python bench/scaling.py --out /tmp/scaling                          # about 4 minutes
    .venv/bin/python bench/scaling.py --out /tmp/scaling --window patch --repeats 1
    .venv/bin/python bench/scaling.py --quick --out /tmp/scaling_quick            # smoke test

Writes bench/results/scaling.md and .json and the `scaling` entry of bench/results/summary.json (or of --results).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from inference_peers import SMALL_CT, THREADS, Run, child_env, cropped_ct, run_unimos, unimos_checkpoint

GOAL_EXPONENT = 1.05
TINY_EDGE = 24


@dataclass
class Point:
    """One volume size: its plan spacing, network grid and the median times of its runs."""

    spacing_mm: float
    image_shape: list[int]
    windows: str
    case_seconds: float
    process_seconds: float
    runs: list[Run]

    @property
    def voxels(self) -> int:
        return math.prod(self.image_shape)


def fit_exponent(voxels: list[float], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(voxels)."""
    if len(voxels) < 2 or any(s <= 0 for s in seconds):
        raise ValueError(f"need at least two sizes with positive time, got {list(zip(voxels, seconds))}")
    xs, ys = [math.log(v) for v in voxels], [math.log(s) for s in seconds]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)


def measure(checkpoint: Path, source: Path, work: Path, env: dict[str, str], window: str, repeats: int,
            budget_gib: float, spacing: float) -> Point:
    """`repeats` fresh-process runs of one size; medians."""
    runs = [run_unimos(checkpoint, source, work / f"run{i}", env, window, mirror=False,
                       extra=("--memory-budget-gib", f"{budget_gib:g}")) for i in range(repeats)]
    plan = runs[0].notes["windows"]
    windows = f"{plan['count']} x {'x'.join(map(str, plan['size']))}"
    point = Point(spacing, plan["image_shape"], windows, statistics.median(r.case_seconds for r in runs),
                  statistics.median(r.process_seconds for r in runs), runs)
    print(f"  {spacing:g} mm: grid {point.image_shape}, {windows}, {point.case_seconds:.1f} s case, "
          f"{point.process_seconds:.1f} s process", flush=True)
    return point


def report(points: list[Point], tiny: Point, header: str) -> tuple[str, dict[str, float]]:
    """The Markdown table and the two exponents (case time and process time, each less the tiny input's)."""
    net_case = [p.case_seconds - tiny.case_seconds for p in points]
    net_process = [p.process_seconds - tiny.process_seconds for p in points]
    exponents = {"exponent": fit_exponent([p.voxels for p in points], net_case),
                 "exponent_process": fit_exponent([p.voxels for p in points], net_process)}
    lines = [header, "", "| plan spacing mm | network grid | voxels | windows | case s | case s - tiny | "
             "process s | process s - tiny |", "|---:|---|---:|---|---:|---:|---:|---:|",
             f"| tiny: {TINY_EDGE}^3 block, 3 mm plan | {'x'.join(map(str, tiny.image_shape))} | {tiny.voxels:,} | "
             f"{tiny.windows} | {tiny.case_seconds:.2f} | | {tiny.process_seconds:.2f} | |"]
    for point, case, process in zip(points, net_case, net_process):
        lines.append(f"| {point.spacing_mm:g} | {'x'.join(map(str, point.image_shape))} | {point.voxels:,} | "
                     f"{point.windows} | {point.case_seconds:.2f} | {case:.2f} | {point.process_seconds:.2f} | "
                     f"{process:.2f} |")
    verdict = "met" if exponents["exponent"] <= GOAL_EXPONENT else "missed"
    lines += ["", f"Exponent b of time ~ voxels^b: {exponents['exponent']:.3f} from case time ({verdict}: goal <= "
                  f"{GOAL_EXPONENT}); {exponents['exponent_process']:.3f} from process time."]
    return "\n".join(lines), exponents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/scaling"))
    parser.add_argument("--spacings", type=float, nargs="+", default=[3.0, 2.4, 2.0],
                        help="plan target spacings (mm), one volume size each")
    parser.add_argument("--window", choices=["auto", "patch"], default="auto")
    parser.add_argument("--memory-budget-gib", type=float, default=8.0,
                        help="unimos's memory budget (auto: the largest window that fits it)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--quick", action="store_true", help="smoke test: spacings 6, 4.8, 4 mm, patch 32, 1 repeat")
    parser.add_argument("--results", type=Path, help="results folder (default bench/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.spacings, args.patch, args.repeats = [6.0, 4.8, 4.0], 32, 1
    if args.repeats < 1 or len(args.spacings) < 2:
        parser.error("need --repeats >= 1 and at least two --spacings")
    from _common import RESULTS, SHARED_DATA, machine_line, merge_summary

    from unimos.utils.atomic import write_json_atomic, write_text_atomic

    source = SHARED_DATA / SMALL_CT
    if not source.exists():
        raise SystemExit(f"{source}: the example CT is missing. Fix: run from the repository beside ../shared/data")
    args.out.mkdir(parents=True, exist_ok=True)
    env = child_env(args.out)
    tiny_input = cropped_ct(source, args.out / "inputs" / f"example_ct_{TINY_EDGE}.nii.gz", TINY_EDGE)
    base = unimos_checkpoint(args.out / "models" / "3mm", args.patch)
    tiny = measure(base, tiny_input, args.out / "runs" / "tiny", env, args.window, args.repeats,
                   args.memory_budget_gib, 3.0)
    points = []
    for spacing in args.spacings:
        checkpoint = unimos_checkpoint(args.out / "models" / f"{spacing:g}mm", args.patch, [spacing] * 3)
        points.append(measure(checkpoint, source, args.out / "runs" / f"{spacing:g}mm", env, args.window,
                              args.repeats, args.memory_budget_gib, spacing))
    header = (f"{machine_line()}; `unimos predict --window {args.window} --memory-budget-gib "
              f"{args.memory_budget_gib:g}`, torch {THREADS} threads, the peers' network (random weights), patch "
              f"{args.patch}^3; {source.name} predicted with plans at {', '.join(f'{s:g}' for s in args.spacings)} mm; "
              f"median of {args.repeats} fresh processes per size")
    text, exponents = report(points, tiny, header)
    print("\n" + text)
    results = args.results or RESULTS
    results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results / "scaling.md", text + "\n")
    write_json_atomic(results / "scaling.json", {"header": header, **exponents, "tiny": asdict(tiny),
                                                 "points": [asdict(p) for p in points]})
    merge_summary("scaling", {**{k: round(v, 3) for k, v in exponents.items()}, "window": args.window,
                              "goal": GOAL_EXPONENT,
                              "points": [{"spacing_mm": p.spacing_mm, "voxels": p.voxels,
                                          "seconds": round(p.case_seconds, 2)} for p in points],
                              "tiny_seconds": round(tiny.case_seconds, 2)}, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
