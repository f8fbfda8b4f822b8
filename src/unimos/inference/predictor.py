"""`predict`: a trained model on new scans, results written in each input's exact geometry.

Per input: read -> prepare (RAS, plan spacing, body crop, normalisation; as in training) -> sliding-window
probabilities -> argmax on the plan's grid (only the label map is resampled back, never the C probability
channels: that is where nnU-Net spends its time and memory) -> largest component per organ -> nearest
resampling onto the input's grid -> atomic NIfTI write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unimos.data.io import case_id_from_path, read_volume, write_nifti
from unimos.data.volume import Volume
from unimos.errors import UnimosError
from unimos.inference.memory import UsageMeter
from unimos.inference.postprocess import largest_component_per_class
from unimos.inference.sliding import predict_probabilities
from unimos.preprocess.prepare import PreparedGeometry, prepare_image
from unimos.preprocess.resample import reorient, resample_nearest
from unimos.training import checkpoint as ckpt
from unimos.utils.atomic import write_json_atomic


@dataclass
class PredictOptions:
    overlap: float = 0.5
    mirror: bool = False
    largest_component: bool = True
    sw_batch_size: int = 2
    modality: str | None = None


@dataclass
class LoadedModel:
    network: torch.nn.Module
    plan: dict[str, Any]
    class_names: list[str]
    meta: dict[str, Any]
    device: torch.device


@dataclass
class CaseRecord:
    case_id: str
    input: str
    output: str | None
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    area_mib_s: float = 0.0
    error: str | None = None
    stages: dict[str, float] = field(default_factory=dict)


def load_model(checkpoint: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Build the network a checkpoint describes and load its weights (safetensors only)."""
    from unimos.networks.registry import build_network

    device = torch.device(device)
    meta = ckpt.read_checkpoint_meta(checkpoint)
    tensors = ckpt.load_tensors(checkpoint)
    network = build_network(dict(meta["network"]), int(meta["in_channels"]), len(meta["classes"]) + 1)
    state = {k[len("model.main."):]: v for k, v in tensors.items() if k.startswith("model.main.")}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ckpt.CheckpointError(checkpoint, f"weights do not fit the network it describes ({str(err).splitlines()[0]})",
                                   "use an intact checkpoint written by `unimos train`") from None
    network.to(device).eval()
    names = ["background"] + [c["name"] for c in meta["classes"]]
    return LoadedModel(network, meta["plan"], names, meta, device)


def _modality(model: LoadedModel, options: PredictOptions) -> str:
    known = sorted(model.plan["normalisation"])
    if options.modality:
        if options.modality.upper() not in known:
            raise UnimosError("--modality", f"'{options.modality}' is not one the model was trained on ({known})",
                              f"use one of {known}")
        return options.modality.upper()
    if len(known) != 1:
        raise UnimosError("--modality", f"the model was trained on several modalities ({known})",
                          "say which one the inputs are with --modality")
    return known[0]


def labels_to_input_grid(labels: np.ndarray, geometry: PreparedGeometry) -> np.ndarray:
    """A label map on the cropped plan grid -> the input's own voxel grid (nearest, exact index mapping)."""
    full = np.zeros(geometry.resampled_shape, dtype=labels.dtype)
    full[geometry.crop] = labels
    ras = resample_nearest(Volume(full, geometry.resampled_affine), geometry.ras_shape).array
    inverse = np.zeros_like(geometry.ras_orientation)
    for axis, (target, flip) in enumerate(geometry.ras_orientation):
        inverse[int(target)] = [axis, flip]
    return reorient(Volume(ras, np.eye(4)), inverse).array


def predict_volume(model: LoadedModel, channels: list[Volume], options: PredictOptions,
                   stages: dict[str, float] | None = None) -> Volume:
    """Label map (project class indices) for one input, on the input's grid with its affine."""
    import time

    clock = time.perf_counter()
    timings = stages if stages is not None else {}
    image, geometry = prepare_image(channels, _modality(model, options), model.plan)
    timings["prepare"] = time.perf_counter() - clock
    clock = time.perf_counter()
    tensor = torch.from_numpy(image)[None].to(model.device)
    probs = predict_probabilities(model.network, tensor, model.meta.get("patch_size", model.plan["patch_size"]),
                                  options.overlap, options.mirror,
                                  options.sw_batch_size)
    labels = probs.argmax(1)[0].to(torch.uint8).cpu().numpy()
    timings["network"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if options.largest_component:
        labels = largest_component_per_class(labels)
    timings["postprocess"] = time.perf_counter() - clock
    clock = time.perf_counter()
    out = labels_to_input_grid(labels, geometry)
    timings["resample_back"] = time.perf_counter() - clock
    return Volume(out, channels[0].affine, channels[0].path)


def group_channels(inputs: Sequence[Path], n_channels: int) -> list[tuple[str, list[Path]]]:
    """Inputs as cases: nnU-Net style `<case>_0000, _0001...` files grouped when the model has several channels."""
    if n_channels == 1:
        return [(case_id_from_path(p), [p]) for p in inputs]
    groups: dict[str, list[Path]] = {}
    for path in inputs:
        groups.setdefault(case_id_from_path(path), []).append(path)
    for case_id, files in groups.items():
        if len(files) != n_channels:
            raise UnimosError(files[0], f"case '{case_id}' has {len(files)} channel file(s), the model needs {n_channels}",
                              "give <case>_0000 ... files for every channel")
    return sorted((k, sorted(v)) for k, v in groups.items())


def predict_files(model: LoadedModel, inputs: Sequence[Path], out_dir: str | Path, options: PredictOptions,
                  skip_existing: bool = False, progress: Callable[[int, int], None] | None = None) -> list[CaseRecord]:
    """Predict every input into `out_dir/<case_id>.nii.gz`; a failing case is recorded and the batch goes on."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "labels.json", {str(i): n for i, n in enumerate(model.class_names)})
    cases = group_channels(list(inputs), int(model.meta["in_channels"]))
    records = []
    for done, (case_id, files) in enumerate(cases, start=1):
        target = out_dir / f"{case_id}.nii.gz"
        record = CaseRecord(case_id, str(files[0]), str(target))
        if skip_existing and target.exists():
            record.error = None
            record.stages["skipped"] = 1.0
        else:
            try:
                with UsageMeter() as meter:
                    channels = [read_volume(f, kind="image") for f in files]
                    prediction = predict_volume(model, channels, options, record.stages)
                    write_nifti(prediction, target, dtype=np.uint8)
                record.seconds, record.peak_rss_mib, record.area_mib_s = (
                    meter.usage.seconds, meter.usage.peak_rss_mib, meter.usage.area_mib_s)
            except UnimosError as err:
                record.output, record.error = None, str(err)
        records.append(record)
        if progress:
            progress(done, len(cases))
    write_json_atomic(out_dir / "predict_log.json", [asdict(r) for r in records])
    return records
