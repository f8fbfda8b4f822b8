"""Inference against the peers: `unimos predict`, a plain MONAI script and nnU-Net v2, same network, same input.

Each tool runs one case at a time, each run in its own fresh process (so its peak RSS is that process tree's
ru_maxrss, the largest single process), with torch at 2 threads. Time is measured end to end, from the input file to
the written label NIfTI, in a process that has already built its model ("case s"); the process's whole wall time,
start-up and model loading included, is reported beside it. Medians over --repeats runs, the tools interleaved run
by run so that a drift of the machine affects all alike.

The network is the one of ../shared/PEERS.md, with random weights (weights do not change the time): a 5-stage U-Net,
features 32/64/128/256/320, 3x3x3 kernels, strides 1/2/2/2/2, two convolutions per stage, InstanceNorm + LeakyReLU,
14 outputs (13 BTCV organs + background); unimos and MONAI build it as MONAI's DynUNet, nnU-Net as its
PlainConvUNet (the same computation). Patch 96^3 at 3 mm, overlap 0.5, Gaussian weighting, mirroring off.

- unimos: `unimos predict` (the CLI, in a subprocess) with a checkpoint of that network; its stages come from
  predict_log.json. Three rows: the plan's patch windows (the default, the peers' conditions) with the default
  `--precision auto` (bfloat16 on a CPU with AMX, float32 elsewhere; the windows column says which), the same in
  float32 (the peers' arithmetic), and `--window auto` (the fewest, largest windows that fit the memory budget: the
  whole 3 mm volume here).
- MONAI: the plain script `monai_peer` below (nibabel read, resize to 3 mm, CT normalisation, MONAI
  `sliding_window_inference`, argmax at 3 mm, nearest resize of the label map back, nibabel write), timed by stage.
  Row `monai_bf16`: the same script with its network under bfloat16 autocast, so that the peer gets the arithmetic
  unimos's default uses; measured by default only where that default is bfloat16 (a CPU that emulates bfloat16
  runs it tens of times slower, a row nobody would run).
- nnU-Net v2: `nnUNetPredictor.predict_from_files` on a model folder this script writes (dataset.json, plans.json
  with a 3d_fullres configuration, fold_0/checkpoint_final.pth with random weights), run by the Python of a separate
  environment (--nnunet-python; nnunetv2 is never a unimos dependency). Its stages are read from the times at which
  it prints its progress lines (preprocessing, network, export).

Inputs: totalseg/example_ct.nii.gz (122 x 101 x 112 at 3 mm) and the same CT upsampled with SimpleITK to
512 x 512 x 400 (written under --out). With --mirror-row, one more row per tool with mirroring on, on the small CT
(slow: nnU-Net takes about 215 s).

Goals (inference speed issue): the default `unimos predict` at most half the time of the fastest peer on both
inputs, the MONAI peer counted in the arithmetic of unimos's default (`monai_bf16` where that is bfloat16);
peak RSS <= 3 GiB on the large CT.

    .venv/bin/python bench/inference_peers.py --nnunet-python /work/nnunet_env/bin/python --out /tmp/peers
    .venv/bin/python bench/inference_peers.py --nnunet-python /work/nnunet_env/bin/python --out /tmp/peers \\
        --mirror-row                                                           # plus the mirroring rows
    .venv/bin/python bench/inference_peers.py --quick --out /tmp/peers_quick   # smoke test: 40^3 CT, patch 32^3

Writes bench/results/inference_peers.md and .json and the `inference` entry of bench/results/summary.json (or of
--results). This file is also run by the nnU-Net environment's Python for its worker; that Python has no unimos, so
everything outside the standard library is imported inside the functions that need it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
THREADS = 2
CLASSES = ["liver", "spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "stomach", "aorta",
           "inferior_vena_cava", "portal_and_splenic_vein", "pancreas", "adrenal_gland_right", "adrenal_gland_left"]
FILTERS = [32, 64, 128, 256, 320]
SPACING_MM = [3.0, 3.0, 3.0]
# CT normalisation shared by the three tools: clip to the foreground's 0.5-99.5 percentiles, then z-score.
CT_STATS = {"percentile_00_5": -200.0, "percentile_99_5": 300.0, "mean": 60.0, "std": 70.0}
SMALL_CT = Path("totalseg/example_ct.nii.gz")
LARGE_SHAPE = (512, 512, 400)
GOAL_RATIO, GOAL_PEAK_GIB = 0.5, 3.0
UNIMOS_PATCH, UNIMOS_FLOAT32, UNIMOS_AUTO = "unimos", "unimos_float32", "unimos_window_auto"
MONAI, MONAI_BF16, NNUNET = "monai", "monai_bf16", "nnunet_v2"
UNIMOS_TOOLS = (UNIMOS_PATCH, UNIMOS_FLOAT32, UNIMOS_AUTO)
PEERS = (MONAI, MONAI_BF16, NNUNET)
TOOL_NAMES = {UNIMOS_PATCH: "unimos (patch windows, default)",
              UNIMOS_FLOAT32: "unimos (patch windows, --precision float32)", UNIMOS_AUTO: "unimos (--window auto)",
              MONAI: "plain MONAI script", MONAI_BF16: "plain MONAI script, bfloat16 autocast",
              NNUNET: "nnU-Net v2 predict_from_files"}


# ----------------------------------------------------------------------------------------------------- records
@dataclass
class Run:
    """One measured run of one tool on one input.

    Attributes:
        case_seconds: input file to written label map, in a process whose model is loaded.
        process_seconds: the whole process, start-up and model loading included.
        peak_rss_mib: ru_maxrss of the process tree (its largest process), MiB.
        stages: seconds per stage, as the tool reports or this script measures them.
        notes: anything else the tool reports (windows used, its own main-process peak).
    """

    case_seconds: float
    process_seconds: float
    peak_rss_mib: float
    stages: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """The runs of one tool on one input, and their medians."""

    tool: str
    input_name: str
    runs: list[Run] = field(default_factory=list)
    skipped: str | None = None

    def median(self, key: str) -> float:
        return statistics.median(getattr(r, key) for r in self.runs)

    @property
    def precision(self) -> str:
        """The arithmetic its runs' network used, as the tool reports it (float32 when it does not say)."""
        return (self.runs[0].notes.get("windows", {}).get("precision") if self.runs else None) or "float32"

    def median_stages(self) -> dict[str, float]:
        names = list(self.runs[0].stages) if self.runs else []
        return {n: statistics.median(r.stages.get(n, 0.0) for r in self.runs) for n in names}


# ------------------------------------------------------------------------------------------------------ inputs
def upsampled_ct(source: Path, target: Path, shape: tuple[int, int, int]) -> Path:
    """The CT resampled (linear) onto a finer grid of `shape` voxels covering the same extent, as int16 NIfTI.

    Kept when it already exists (it takes a few seconds to make and ~100 MB on disk)."""
    if target.exists():
        return target
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    old_size, old_spacing = image.GetSize(), image.GetSpacing()
    spacing = [s * n / m for s, n, m in zip(old_spacing, old_size, shape)]
    # keep the outer edges of the voxels where they were: the first voxel centre moves by half a voxel difference
    shift = [(new - old) / 2 for new, old in zip(spacing, old_spacing)]
    direction = [image.GetDirection()[i:i + 3] for i in (0, 3, 6)]
    origin = [o + sum(direction[r][c] * shift[c] for c in range(3)) for r, o in enumerate(image.GetOrigin())]
    resampled = sitk.Resample(image, list(shape), sitk.Transform(), sitk.sitkLinear, origin, spacing,
                              image.GetDirection(), -1024.0, sitk.sitkInt16)
    target.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(resampled, str(target), True)
    return target


def cropped_ct(source: Path, target: Path, size: int) -> Path:
    """A `size`^3 block from the middle of the CT (for smoke tests)."""
    if target.exists():
        return target
    import nibabel as nib
    import numpy as np

    image = nib.load(str(source))
    array = np.asanyarray(image.dataobj)
    starts = [max((n - size) // 2, 0) for n in array.shape]
    block = array[tuple(slice(s, s + size) for s in starts)].astype(np.int16)
    affine = image.affine.copy()
    affine[:3, 3] = (image.affine @ np.array([*starts, 1.0]))[:3]
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(block, affine), str(target))
    return target


# ------------------------------------------------------------------------------------------------------ models
def network_config(patch: int) -> dict[str, Any]:
    """The peers' network as a unimos `dynunet` config (five levels: the patch must be a multiple of 16)."""
    if patch % 16:
        raise SystemExit(f"--patch {patch}: the 5-stage network needs a multiple of 16")
    return {"name": "dynunet", "spatial_dims": 3, "kernel_size": [[3, 3, 3]] * 5,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4, "filters": list(FILTERS), "deep_supervision": False}


def unimos_checkpoint(folder: Path, patch: int, spacing_mm: list[float] | None = None, seed: int = 0) -> Path:
    """A unimos checkpoint of the peers' network with fresh weights: a 3 mm plan edited to that network and patch.

    Args:
        folder: where CHECKPOINT.json/.safetensors are written.
        patch: window edge in voxels (96 for the peers' conditions).
        spacing_mm: the plan's target spacing (default 3 mm isotropic; the scaling bench varies it).
    """
    import torch

    from unimos.data.taxonomy import abdominal_taxonomy
    from unimos.networks.checkpoint import save_checkpoint
    from unimos.networks.registry import build_network
    from unimos.preprocess.plan import make_plan, with_hashes

    fingerprint = {"median_spacing_mm": list(SPACING_MM), "spacing_percentile_10_mm": list(SPACING_MM),
                   "median_extent_mm": [366.0, 303.0, 336.0], "modalities": {"CT": dict(CT_STATS)}}
    plan = make_plan(fingerprint, abdominal_taxonomy(CLASSES), "3mm")
    plan = with_hashes(plan.model_copy(update={"target_spacing_mm": list(spacing_mm or SPACING_MM),
                                               "patch_size": [patch] * 3, "network": network_config(patch)}))
    torch.manual_seed(seed)
    network = build_network(plan.network, 1, len(CLASSES) + 1)
    record = plan.model_record()
    meta = {"step": 0, "plan_hash": plan.hash, "classes": record["classes"], "in_channels": 1,
            "network": plan.network, "patch_size": plan.patch_size, "plan": record,
            "strategy": "supervised", "method": "partial"}
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder / "checkpoint_untrained", torch.nn.ModuleDict({"main": network}), meta)


def nnunet_plans(patch: int, median_shape: list[int]) -> dict[str, Any]:
    """nnU-Net v2 plans with one 3d_fullres configuration holding the peers' network (PlainConvUNet)."""
    architecture = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {"n_stages": 5, "features_per_stage": list(FILTERS),
                        "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 5,
                        "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4, "n_conv_per_stage": [2] * 5,
                        "n_conv_per_stage_decoder": [2] * 4, "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
                        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    resampling = "resample_data_or_seg_to_shape"
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [patch] * 3, "median_image_size_in_voxels": median_shape, "spacing": list(SPACING_MM),
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": resampling, "resampling_fn_seg": resampling,
        # nnU-Net's defaults: third order for the image, first order for labels and for the probabilities
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": resampling,
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": architecture, "batch_dice": True}
    intensity = {"max": 3000.0, "min": -1024.0, "median": 60.0, **CT_STATS}
    return {"dataset_name": "Dataset999_PeerBench", "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": list(SPACING_MM),
            "original_median_shape_after_transp": median_shape, "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "configurations": {"3d_fullres": configuration}, "experiment_planner_used": "ExperimentPlanner",
            "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": intensity}}


def nnunet_model_folder(folder: Path, patch: int, nnunet_python: str, env: dict[str, str]) -> Path:
    """An nnU-Net v2 trained-model folder without training: JSON files written here, the random-weight checkpoint
    written by nnU-Net's own environment (`_nnunet_checkpoint` below)."""
    model = folder / "Dataset999_PeerBench" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True, exist_ok=True)
    labels = {"background": 0, **{name: i for i, name in enumerate(CLASSES, start=1)}}
    dataset = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    (model / "dataset.json").write_text(json.dumps(dataset, indent=2))
    (model / "plans.json").write_text(json.dumps(nnunet_plans(patch, [122, 101, 112]), indent=2))
    if not (model / "fold_0" / "checkpoint_final.pth").exists():
        proc = subprocess.run([nnunet_python, str(HERE), "_nnunet_checkpoint", str(model)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{nnunet_python}: could not write the nnU-Net checkpoint in {model}:\n"
                             f"{proc.stderr[-3000:]}\nFix: give --nnunet-python the Python of an environment with "
                             "nnunetv2 installed")
    return model


def write_nnunet_checkpoint(model: Path, seed: int = 0) -> None:
    """Runs in nnU-Net's environment: the configured network, randomly initialised, saved with the keys
    `nnUNetPredictor.initialize_from_trained_model_folder` reads (network_weights, trainer_name, init_args,
    inference_allowed_mirroring_axes)."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    configuration = PlansManager(json.loads((model / "plans.json").read_text())).get_configuration("3d_fullres")
    torch.manual_seed(seed)
    network = get_network_from_plans(configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
                                      configuration.network_arch_init_kwargs_req_import, 1, len(CLASSES) + 1,
                                      allow_init=True, deep_supervision=False)
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": "3d_fullres"}, "inference_allowed_mirroring_axes": (0, 1, 2)},
               model / "fold_0" / "checkpoint_final.pth")


# ----------------------------------------------------------------------------------------- peer workers (child)
def _high_water_mib() -> float:
    """This process's peak RSS (VmHWM), MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def monai_peer(source: Path, output: Path, patch: int, mirror: bool, bfloat16: bool = False) -> dict[str, Any]:
    """The plain MONAI script: what a user writes with MONAI's building blocks, timed stage by stage.

    nibabel read -> resize to the 3 mm grid (trilinear) -> CT clip + z-score -> DynUNet by MONAI
    `sliding_window_inference` (Gaussian, overlap 0.5; with `mirror` the mean softmax over the 8 flips; with
    `bfloat16` the network under CPU bfloat16 autocast, the window blending in float32) -> argmax at 3 mm -> nearest
    resize of the label map to the input grid -> nibabel write (uint8).
    """
    import itertools

    import nibabel as nib
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import DynUNet
    from monai.transforms import Resize

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    network = DynUNet(3, 1, len(CLASSES) + 1, kernel_size=[[3, 3, 3]] * 5, strides=[[1, 1, 1]] + [[2, 2, 2]] * 4,
                      upsample_kernel_size=[[2, 2, 2]] * 4, filters=list(FILTERS),
                      norm_name=("INSTANCE", {"affine": True}),
                      act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01})).eval()
    stages: dict[str, float] = {}
    begin = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name], clock = now - clock, now

    image = nib.load(str(source))
    array = image.get_fdata(dtype=np.float32)
    lap("read")
    spacing = [float(s) for s in image.header.get_zooms()[:3]]
    grid = [max(1, round(n * s / t)) for n, s, t in zip(array.shape, spacing, SPACING_MM)]
    volume = Resize(grid, mode="trilinear")(torch.from_numpy(array)[None])
    low, high = CT_STATS["percentile_00_5"], CT_STATS["percentile_99_5"]
    volume = (volume.clamp(low, high) - CT_STATS["mean"]) / CT_STATS["std"]
    lap("resample")
    flips = [c for r in range(4) for c in itertools.combinations((2, 3, 4), r)] if mirror else [()]

    def predictor(window: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            return network(window).float()

    with torch.no_grad():
        x = torch.as_tensor(volume)[None]
        total = None
        for axes in flips:
            logits = sliding_window_inference(torch.flip(x, axes) if axes else x, [patch] * 3, 2, predictor,
                                              overlap=0.5, mode="gaussian")
            probs = torch.softmax(torch.as_tensor(logits), 1)
            probs = torch.flip(probs, axes) if axes else probs
            total = probs if total is None else total + probs
        labels = total.argmax(1).to(torch.float32)
    lap("network")
    back = Resize(list(array.shape), mode="nearest")(labels)[0]
    back = torch.as_tensor(back).to(torch.uint8).numpy()
    lap("resample_back")
    nib.save(nib.Nifti1Image(back, image.affine), str(output))
    lap("write")
    return {"case_seconds": time.perf_counter() - begin, "stages": stages,
            "notes": {"grid_3mm": grid, "main_process_peak_mib": round(_high_water_mib()),
                      "windows": {"precision": "bfloat16" if bfloat16 else "float32"}}}


class _LineClock:
    """Stands in for sys.stdout: passes text on and notes when each marker line was printed."""

    def __init__(self, stream: Any, markers: dict[str, str]) -> None:
        self.stream, self.markers, self.times = stream, markers, {}

    def write(self, text: str) -> int:
        for name, marker in self.markers.items():
            if marker in text and name not in self.times:
                self.times[name] = time.perf_counter()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def nnunet_peer(model: Path, source: Path, output: Path, mirror: bool) -> dict[str, Any]:
    """nnU-Net v2 as its users call it: `nnUNetPredictor.predict_from_files` (its worker processes included).

    Stages from the times it prints its progress: "Predicting <case>:" (preprocessed data arrived: reading,
    cropping, resampling, normalisation, worker start-up), "sending off prediction" (network done), the return
    (export: probabilities resampled to the input grid, argmax, SimpleITK write).
    """
    import resource

    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(THREADS)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    clock = _LineClock(sys.stdout, {"predicting": "Predicting ", "sent": "sending off prediction"})
    sys.stdout = clock
    begin = time.perf_counter()
    try:
        predictor.predict_from_files([[str(source)]], [str(output).removesuffix(".nii.gz")], save_probabilities=False,
                                     overwrite=True, num_processes_preprocessing=THREADS,
                                     num_processes_segmentation_export=THREADS)
    finally:
        sys.stdout = clock.stream
    end = time.perf_counter()
    marks = clock.times
    stages = {}
    if "predicting" in marks and "sent" in marks:
        stages = {"preprocess (workers, read, resample, normalise)": marks["predicting"] - begin,
                  "network": marks["sent"] - marks["predicting"],
                  "export (resample, argmax, write)": end - marks["sent"]}
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"case_seconds": end - begin, "stages": stages,
            "notes": {"main_process_peak_mib": round(_high_water_mib()), "largest_worker_peak_mib": round(children)}}


def worker_main(argv: list[str]) -> int:
    """Child-process entry: `_monai` / `_monai_bf16` / `_nnunet` run one case and write a JSON result;
    `_nnunet_checkpoint`."""
    if argv[0] == "_nnunet_checkpoint":
        write_nnunet_checkpoint(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(prog=f"{HERE.name} {argv[0]}")
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--mirror", action="store_true")
    parser.add_argument("--model", type=Path)
    args = parser.parse_args(argv[1:])
    if argv[0] in ("_monai", "_monai_bf16"):
        result = monai_peer(args.input, args.output, args.patch, args.mirror, bfloat16=argv[0] == "_monai_bf16")
    else:
        result = nnunet_peer(args.model, args.input, args.output, args.mirror)
    args.result.write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------- measuring (parent)
def child_env(out: Path) -> dict[str, str]:
    """Every tool's environment: 2 threads for OpenMP/MKL, nnU-Net's folders and process count set."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), nnUNet_def_n_proc=str(THREADS),
               nnUNet_n_proc_DA=str(THREADS), PYTHONUNBUFFERED="1")
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = str(out / "nnunet_env_dirs" / name)  # unused by prediction; set so nnU-Net does not warn
    return env


def run_process(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Run `cmd` to its end; (wall seconds, ru_maxrss of its process tree in MiB, exit code).

    os.wait4 gives the child's own resource usage, which on Linux includes the largest of its reaped descendants,
    so a tool's worker processes count, one at a time (the largest process, not their sum)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        begin = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - begin
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def _fail(tool: str, log: Path) -> None:
    tail = log.read_text()[-3000:] if log.exists() else ""
    raise SystemExit(f"{tool} failed; its output ends:\n{tail}\nFull log: {log}")


def check_output(labels: Path, source: Path, tool: str) -> None:
    """The label map exists and has the input's voxel grid (a tool that 'wins' by writing nothing would not count)."""
    import nibabel as nib

    if not labels.exists():
        raise SystemExit(f"{tool}: no label map at {labels}")
    got, want = nib.load(str(labels)).shape[:3], nib.load(str(source)).shape[:3]
    if tuple(got) != tuple(want):
        raise SystemExit(f"{tool}: label map {labels} has shape {got}, the input {want}")


def run_unimos(checkpoint: Path, source: Path, work: Path, env: dict[str, str], window: str, mirror: bool,
               extra: tuple[str, ...] = ()) -> Run:
    """`unimos predict` in a fresh process; case seconds, stages and windows from its predict_log.json."""
    out = work / "pred"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "unimos.cli.main", "predict", str(checkpoint), str(source), "--out", str(out),
           "--window", window, *(["--mirror"] if mirror else []), *extra]
    wall, peak, code = run_process(cmd, env, work / "log.txt")
    if code != 0:
        _fail(f"unimos predict --window {window}", work / "log.txt")
    record = json.loads((out / "predict_log.json").read_text())[0]
    if record["error"]:
        raise SystemExit(f"unimos predict: {record['error']}")
    check_output(Path(record["output"]), source, "unimos")
    notes = {"windows": record.get("window", {}), "case_peak_rss_mib": round(record["peak_rss_mib"])}
    return Run(record["seconds"], wall, peak, record["stages"], notes)


def run_worker(tool: str, python: str, source: Path, work: Path, env: dict[str, str], patch: int, mirror: bool,
               model: Path | None = None) -> Run:
    """The MONAI script or nnU-Net in a fresh process of `python` (this file's `_monai` / `_nnunet` entries)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    output, result = work / "labels.nii.gz", work / "result.json"
    cmd = [python, str(HERE), f"_{tool}", "--input", str(source), "--output", str(output), "--result", str(result),
           "--patch", str(patch), *(["--mirror"] if mirror else []), *(["--model", str(model)] if model else [])]
    wall, peak, code = run_process(cmd, env, work.parent / f"{work.name}.log")
    if code != 0 or not result.exists():
        _fail(tool, work.parent / f"{work.name}.log")
    check_output(output, source, tool)
    payload = json.loads(result.read_text())
    return Run(payload["case_seconds"], wall, peak, payload["stages"], payload.get("notes", {}))


# ------------------------------------------------------------------------------------------------------ report
def _fmt_stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in stages.items())


def table(rows: list[Row], title: str, repeats: int) -> str:
    """One Markdown table: a row per tool, medians, the ratio to the fastest peer in the row's arithmetic (the goal's
    ratio for unimos's rows) and where the time goes."""
    by_tool = {r.tool: r for r in rows}
    lines = [f"**{title}** (median of {repeats})", "",
             "| tool | case s | / fastest same-arithmetic peer | process s | peak RSS MiB | where the time goes (s) | "
             "windows, precision |", "|---|---:|---|---:|---:|---|---|"]
    for row in rows:
        name = TOOL_NAMES[row.tool]
        if not row.runs:
            lines.append(f"| {name} | {row.skipped or 'not measured'} | | | | | |")
            continue
        case = row.median("case_seconds")
        windows = row.runs[0].notes.get("windows", {})
        peer = same_arithmetic_peer(by_tool, row.precision)
        ratio = f"{case / peer[1]:.2f} ({peer[0]})" if peer else "-"
        window_text = ", ".join(
            ([f"{windows['count']} x {'x'.join(map(str, windows.get('size', [])))}"] if "count" in windows else [])
            + ([windows["precision"]] if windows.get("precision") else []))
        lines.append(f"| {name} | {case:.1f} | {ratio} | {row.median('process_seconds'):.1f} | "
                     f"{max(r.peak_rss_mib for r in row.runs):.0f} | {_fmt_stages(row.median_stages())} | "
                     f"{window_text} |")
    return "\n".join(lines)


def same_arithmetic_peer(rows: dict[str, Row], precision: str) -> tuple[str, float] | None:
    """The fastest peer measured on one input, the MONAI script counted in `precision` (unimos's arithmetic):
    (tool, median case seconds), or None when no such peer ran. nnU-Net runs its own float32 either way."""
    monai = MONAI_BF16 if precision == "bfloat16" else MONAI
    timed = [(rows[tool].median("case_seconds"), tool) for tool in (monai, NNUNET) if tool in rows and rows[tool].runs]
    if not timed:
        return None
    seconds, tool = min(timed)
    return tool, seconds


def goal_lines(results: dict[str, list[Row]], small: str, large: str) -> list[str]:
    """The speed issue's goals for each unimos row: <= GOAL_RATIO of the fastest same-arithmetic peer on both
    inputs, peak RSS <= GOAL_PEAK_GIB on the large one."""
    lines = []
    for tool in UNIMOS_TOOLS:
        verdicts = []
        for input_name in (small, large):
            rows = {r.tool: r for r in results.get(input_name, [])}
            mine = rows.get(tool)
            if not mine or not mine.runs:
                continue
            case = mine.median("case_seconds")
            precision = mine.precision
            peer = same_arithmetic_peer(rows, precision)
            if peer is None:
                verdicts.append(f"{input_name}: {case:.1f} s ({precision}; no {precision} peer measured)")
            else:
                ratio = case / peer[1]
                verdicts.append(f"{input_name}: {case:.1f} s, {ratio:.2f} x {peer[0]} ({precision}; "
                                f"{'met' if ratio <= GOAL_RATIO else 'missed'} <= {GOAL_RATIO})")
            if input_name == large:
                peak = max(r.peak_rss_mib for r in mine.runs) / 1024
                verdicts.append(f"peak {peak:.2f} GiB ({'met' if peak <= GOAL_PEAK_GIB else 'missed'} <= "
                                f"{GOAL_PEAK_GIB:g} GiB)")
        if verdicts:
            lines.append(f"- {TOOL_NAMES[tool]}: " + "; ".join(verdicts))
    return lines or ["- no unimos row measured"]


def summary_payload(results: dict[str, list[Row]]) -> dict[str, Any]:
    """{input: {tool: {seconds, peak_rss_mib, process_seconds}}} for bench/results/summary.json."""
    return {name: {row.tool: {"seconds": round(row.median("case_seconds"), 2),
                              "peak_rss_mib": round(max(r.peak_rss_mib for r in row.runs)),
                              "process_seconds": round(row.median("process_seconds"), 2)}
                   for row in rows if row.runs}
            for name, rows in results.items()}


# -------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/inference_peers"),
                        help="working folder: inputs, models, predictions, logs")
    parser.add_argument("--nnunet-python", help="Python of an environment with nnunetv2 (e.g. "
                                                "/work/nnunet_env/bin/python); without it nnU-Net is not measured")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and input; medians are reported")
    parser.add_argument("--mirror-row", action="store_true", help="also run every tool with mirroring on, small CT")
    parser.add_argument("--mirror-repeats", type=int, default=1, help="runs per tool for the mirroring rows")
    parser.add_argument("--tools", nargs="+", choices=[*UNIMOS_TOOLS, *PEERS],
                        help="default: every unimos row, MONAI, nnU-Net, and monai_bf16 where unimos's default "
                             "precision on this machine is bfloat16")
    parser.add_argument("--patch", type=int, default=96, help="window edge in voxels, a multiple of 16")
    parser.add_argument("--large-shape", type=int, nargs=3, default=list(LARGE_SHAPE))
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: a 40^3 block of the CT (and its 64x64x48 upsampling), patch 32, 1 repeat")
    parser.add_argument("--results", type=Path, help="results folder (default bench/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.patch, args.large_shape, args.repeats = 32, [64, 64, 48], 1
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.tools is None:
        args.tools = default_tools(default_precision())
    return args


def default_precision() -> str:
    """The arithmetic `unimos predict --precision auto` uses on this machine's CPU."""
    from unimos.utils.runtime import resolve_runtime

    return resolve_runtime("cpu", "auto").precision_name


def default_tools(precision: str) -> list[str]:
    """Every unimos row and peer, the bfloat16 MONAI row only where unimos's default runs in bfloat16."""
    return [*UNIMOS_TOOLS, MONAI, *([MONAI_BF16] if precision == "bfloat16" else []), NNUNET]


def prepare_inputs(args: argparse.Namespace, shared_data: Path) -> dict[str, Path]:
    source = shared_data / SMALL_CT
    if not source.exists():
        raise SystemExit(f"{source}: the example CT is missing. Fix: run from the repository beside ../shared/data")
    if args.quick:
        source = cropped_ct(source, args.out / "inputs" / "example_ct_40.nii.gz", 40)
    shape = tuple(args.large_shape)
    large = upsampled_ct(source, args.out / "inputs" / f"example_ct_{'x'.join(map(str, shape))}.nii.gz", shape)
    small_name = "totalseg_example_ct" + ("_40" if args.quick else "")
    return {small_name: source, f"{small_name}_{'x'.join(map(str, shape))}": large}


def measure_all(args: argparse.Namespace, inputs: dict[str, Path], mirror: bool, repeats: int,
                models: dict[str, Path], env: dict[str, str]) -> dict[str, list[Row]]:
    """Every tool on every input, `repeats` times, interleaved (run 1 of every tool, then run 2, ...)."""
    results = {name: [Row(tool, name) for tool in args.tools] for name in inputs}
    for name, rows in results.items():
        for row in rows:
            if row.tool == NNUNET and not args.nnunet_python:
                row.skipped = "not measured (no --nnunet-python given)"
    for repeat in range(repeats):
        for name, source in inputs.items():
            for row in results[name]:
                if row.skipped:
                    continue
                work = args.out / "runs" / f"{name}{'_mirror' if mirror else ''}" / row.tool / f"run{repeat}"
                if row.tool in UNIMOS_TOOLS:
                    window = "auto" if row.tool == UNIMOS_AUTO else "patch"
                    extra = ("--precision", "float32") if row.tool == UNIMOS_FLOAT32 else ()
                    run = run_unimos(models["unimos"], source, work, env, window, mirror, extra)
                elif row.tool in (MONAI, MONAI_BF16):
                    run = run_worker(row.tool, sys.executable, source, work, env, args.patch, mirror)
                else:
                    run = run_worker("nnunet", args.nnunet_python, source, work, env, args.patch, mirror,
                                     models["nnunet"])
                row.runs.append(run)
                print(f"  {name}{' mirror' if mirror else ''} run {repeat + 1}/{repeats} {row.tool}: "
                      f"{run.case_seconds:.1f} s case, {run.process_seconds:.1f} s process, "
                      f"{run.peak_rss_mib:.0f} MiB", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_"):
        return worker_main(argv)
    args = parse_args(argv)
    from _common import RESULTS, SHARED_DATA, machine_line, merge_summary

    from unimos.utils.atomic import write_json_atomic, write_text_atomic

    args.out.mkdir(parents=True, exist_ok=True)
    env = child_env(args.out)
    inputs = prepare_inputs(args, SHARED_DATA)
    models = {"unimos": unimos_checkpoint(args.out / "models" / "unimos", args.patch)}
    if args.nnunet_python and NNUNET in args.tools:
        models["nnunet"] = nnunet_model_folder(args.out / "models" / "nnunet", args.patch, args.nnunet_python, env)
    results = measure_all(args, inputs, False, args.repeats, models, env)
    mirrored: dict[str, list[Row]] = {}
    if args.mirror_row:
        small_name, small = next(iter(inputs.items()))
        mirrored = {f"{name}_mirror": rows for name, rows in
                    measure_all(args, {small_name: small}, True, args.mirror_repeats, models, env).items()}
    header = (f"{machine_line()}; torch {THREADS} threads; same network (5-stage U-Net 32-320, 14 outputs, random "
              f"weights), patch {args.patch}^3 at 3 mm, overlap 0.5, Gaussian; each run a fresh process; case s = "
              f"input file to written label map with the model loaded; peak RSS = largest process (ru_maxrss)")
    parts = [header, ""]
    for name, rows in results.items():
        parts += [table(rows, f"{name} ({inputs[name].name}), mirroring off", args.repeats), ""]
    for name, rows in mirrored.items():
        parts += [table(rows, f"{name}: mirroring on (8 flips)", args.mirror_repeats), ""]
    small_name, large_name = list(inputs)
    parts += [f"Goals (speed issue): <= {GOAL_RATIO} x the fastest peer in the same arithmetic on both inputs, peak "
              f"<= {GOAL_PEAK_GIB:g} GiB on the large CT:", *goal_lines(results, small_name, large_name)]
    text = "\n".join(parts)
    print("\n" + text)
    results_dir = args.results or RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results_dir / "inference_peers.md", text + "\n")
    write_json_atomic(results_dir / "inference_peers.json", {
        "header": header, "patch": args.patch, "repeats": args.repeats,
        "inputs": {k: str(v) for k, v in inputs.items()},
        "results": {name: [asdict(row) for row in rows] for name, rows in {**results, **mirrored}.items()}})
    merge_summary("inference", summary_payload({**results, **mirrored}), results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
