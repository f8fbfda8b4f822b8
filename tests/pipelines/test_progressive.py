"""The progressive organ -> lesion pipeline (paper 004) on a tiny collection: its stages, their taxonomies, the
lesions read as organs in stage 1, the abandoned lesion-source case, and fused labels that keep every known label."""

import json
import re

import numpy as np
import pytest

from tests.conftest import tiny_case, tiny_training_plan, write_manifest
from unimos.data.manifest import load_manifest
from unimos.errors import UnimosError
from unimos.networks.checkpoint import read_checkpoint_meta
from unimos.pipelines.progressive import run_progressive
from unimos.preprocess.cache import CachedCase, open_cache, preprocess_manifest
from unimos.report.html import write_report
from unimos.report.training_logs import train_run_logs
from unimos.training.config import TrainConfig

LIVER = (slice(4, 12), slice(4, 12), slice(2, 8))
TUMOUR = (slice(6, 9), slice(6, 9), slice(4, 6))
SPLEEN = (slice(14, 20), slice(4, 10), slice(2, 8))


def _tiny_lesion_collection(root):
    """Project [liver, spleen, liver_tumor]: a full source (tumour inside the liver), a LiTS-like source (liver +
    tumour; its second case has no tumour), a liver-only source (organs only) and an unlabeled case."""
    def case(name, labels, seed):
        img, lab = tiny_case(root, name, labels=labels, seed=seed)
        return {"id": name, "image": str(img.relative_to(root)), "label": str(lab.relative_to(root))}

    full = [case(f"full_{i}", {1: LIVER, 2: SPLEEN, 3: TUMOUR}, i) for i in range(2)]
    lits = [case("lits_0", {1: LIVER, 2: TUMOUR}, 10), case("lits_empty", {1: LIVER}, 11)]
    organs = [case("organs_0", {1: LIVER}, 20)]
    img, _ = tiny_case(root, "unl_0", seed=30)
    return write_manifest(root, {
        "project": {"name": "lesions", "classes": ["liver", "spleen", "liver_tumor"]},
        "sources": [
            {"name": "full", "modality": "CT", "kind": "full", "labels": {1: "liver", 2: "spleen", 3: "liver_tumor"},
             "cases": full},
            {"name": "lits_like", "modality": "CT", "labels": {1: "liver", 2: "tumor"}, "cases": lits},
            {"name": "liver_only", "modality": "CT", "labels": {1: "liver"}, "cases": organs},
            {"name": "unlabeled", "modality": "CT", "kind": "unlabeled",
             "cases": [{"id": "unl_0", "image": str(img.relative_to(root))}]}]})


@pytest.fixture
def lesion_cache(tmp_path):
    manifest = load_manifest(_tiny_lesion_collection(tmp_path))
    plan = tiny_training_plan(manifest)
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    return {c.case_id: c for c in open_cache(tmp_path / "cache", plan)}, plan


def test_stages_taxonomies_lesions_as_organs_and_fused_labels(lesion_cache, tmp_path):
    by_id, plan = lesion_cache
    config = TrainConfig(strategy="progressive", iterations=3, checkpoint_every=0, device="cpu", seed=1,
                         threads=1, augment=False)
    steps = []
    result = run_progressive(list(by_id.values()), plan, config, tmp_path / "run",
                             progress=lambda done, total, loss: steps.append((done, total)))
    run = tmp_path / "run"
    assert steps[-1] == (9, 9)  # 3 iterations per stage; stage 3 has one lesion group (liver_tumor)

    # stage 1: no lesion class, and the full cases' tumour voxels are liver (organ-stage index 1)
    assert [c["name"] for c in read_checkpoint_meta(run / "stage_1" / "checkpoint_final")["classes"]] == \
        ["liver", "spleen"]
    stage1 = CachedCase(run / "stage_1" / "organ_cache" / "full_0",
                        json.loads((run / "stage_1" / "organ_cache" / "full_0" / "meta.json").read_text()))
    original = np.asarray(by_id["full_0"].label())
    assert (np.asarray(stage1.label())[original == 3] == 1).all() and (original == 3).any()
    assert np.array_equal(np.asarray(stage1.label())[original != 3], original[original != 3])

    # stage 2: the project's classes; the LiTS-like case without a tumour is abandoned
    assert [c["name"] for c in read_checkpoint_meta(result.checkpoint)["classes"]] == \
        ["liver", "spleen", "liver_tumor"]
    record = json.loads((run / "progressive.json").read_text())
    assert [s["stage"] for s in record["stages"]] == [1, 2, 3]
    second = record["stages"][1]
    assert second["abandoned_without_lesion"] == ["lits_empty"] and "lits_empty" not in second["cases"]
    assert sorted(second["pseudo_labeled"]) == ["lits_0", "organs_0", "unl_0"]

    # fused labels never override a known label: the LiTS-like case keeps its liver and its tumour voxel for voxel
    for case_id in ("lits_0", "organs_0"):
        fused = np.load(run / "stage_2" / "pseudo_cache" / case_id / "label.npy")
        original, table = np.asarray(by_id[case_id].label()), by_id[case_id].candidate_table
        known = table.sum(axis=1)[original] == 1
        assert np.array_equal(fused[known], original[known])
    lits = np.asarray(by_id["lits_0"].label())
    assert (np.load(run / "stage_2" / "pseudo_cache" / "lits_0" / "label.npy")[lits == 3] == 3).all()
    # the liver-only case: its liver voxels may still be its tumour in stage 2, its spleen comes from stage 1
    organs_meta = json.loads((run / "stage_2" / "pseudo_cache" / "organs_0" / "meta.json").read_text())
    assert organs_meta["candidate_table"][1] == [0, 1, 0, 1]
    assert organs_meta["candidate_table"][2] == [0, 0, 1, 0]
    # stage 3: the lesion stage on liver crops of every case that annotates the liver with its tumour (the
    # tumour-free LiTS-like case too: it shows a liver without a tumour); predict takes it with stage 2's organs
    third = record["stages"][2]
    assert record["lesion_stage"] == third["lesion_stage"] == str(run / "stage_3") == str(result.lesion_stage)
    crops = json.loads((run / "stage_3" / "lesion_stage.json").read_text())["groups"]["liver_tumor"]["crops"]
    assert sorted(c["case"] for c in crops) == third["cases"] == ["full_0", "full_1", "lits_0", "lits_empty"]
    assert (run / "stage_3" / "liver_tumor" / "checkpoint_final.safetensors").exists()
    # the run report finds the stages' training curves
    assert [log.label for log in train_run_logs(run)] == ["run stage 1", "run stage 2", "run stage 3 liver_tumor"]
    page = write_report(run, tmp_path / "report").read_text()
    assert f"--lesion-model {run / 'stage_3'}" in page  # the page says how to predict with the lesion stage
    assert "Stages (progressive.json)" in page and "left out (lesion source without a lesion): lits_empty" in page
    # per-case provenance: the liver-only case's own labels annotate the liver, the pseudo-label completed its spleen
    row = re.search(r"<tr><td>organs_0</td>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td>(.*?)</td>", row)[1:3] == ["liver", "spleen"]


def test_a_project_without_lesion_classes_is_refused(tiny_cache, tmp_path):
    cases, plan = tiny_cache
    with pytest.raises(UnimosError, match="no lesion class"):
        run_progressive(cases, plan, TrainConfig(strategy="progressive", iterations=1), tmp_path / "run")


def test_the_lesion_stage_is_an_option_of_the_progressive_pipeline(lesion_cache, tmp_path):
    by_id, plan = lesion_cache
    config = TrainConfig(strategy="progressive", iterations=1, checkpoint_every=0, device="cpu", seed=1,
                         threads=1, augment=False, strategy_options={"lesion_stage": False})
    result = run_progressive(list(by_id.values()), plan, config, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "progressive.json").read_text())
    assert [s["stage"] for s in record["stages"]] == [1, 2]
    assert record["lesion_stage"] is None and result.lesion_stage is None
    assert not (tmp_path / "run" / "stage_3").exists()


def test_a_lesion_stage_without_a_case_to_learn_from_is_refused_before_the_first_stage(lesion_cache, tmp_path):
    by_id, plan = lesion_cache
    cases = [by_id[i] for i in ("lits_empty", "organs_0", "unl_0")]  # no case holds a liver_tumor voxel
    config = TrainConfig(strategy="progressive", iterations=1, checkpoint_every=0, device="cpu", threads=1)
    with pytest.raises(UnimosError, match="no training case annotates a voxel of liver_tumor"):
        run_progressive(cases, plan, config, tmp_path / "run")
    assert not (tmp_path / "run" / "stage_1").exists()
