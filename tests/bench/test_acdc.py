"""The ACDC benchmark's collections: sources split by patient, derived labels keep only their classes, scribbles
and every-5th-slice labels load as sparse with the right annotated regions, the plan becomes slice-wise, inputs
untouched."""

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.bench.scripts import load_bench_script
from tests.conftest import write_nifti
from unimos.data.io import read_volume
from unimos.data.labels import to_project_labels
from unimos.data.manifest import load_manifest

SHAPE = (12, 10, 7)
LABELED_SLICES = range(1, 6)
"""The heart of every tiny volume lies on slices 1-5 of axis 2; slices 0 and 6 hold no label."""


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("acdc")


def _acdc_like(root: Path) -> Path:
    """10 patients x 2 frames of tiny volumes: RV (1), MYO (2), LV (3) as slabs on slices 1-5, scribbles as lines
    (4 = unannotated elsewhere), ACDC's dataset.json and the splits.json keys the benchmark reads."""
    patients = [f"patient{p:03d}" for p in range(1, 11)]
    frames = {p: [f"{p}_frame01", f"{p}_frame{10 + i:02d}"] for i, p in enumerate(patients)}
    for cases in frames.values():
        for cid in cases:
            label = np.zeros(SHAPE, dtype=np.uint8)
            for value in (1, 2, 3):
                label[3 * value - 2:3 * value + 1, 2:8, LABELED_SLICES.start:LABELED_SLICES.stop] = value
            scribble = np.full(SHAPE, 4, dtype=np.uint8)
            scribble[0, :, 2] = 0  # a background scribble
            for value in (1, 2, 3):
                scribble[3 * value - 1, 3:7, 2] = value
            write_nifti(root / "labelsTr" / f"{cid}.nii.gz", label)
            write_nifti(root / "scribblesTr" / f"{cid}.nii.gz", scribble)
            write_nifti(root / "imagesTr" / f"{cid}_0000.nii.gz", (label * 100 + 50).astype(np.uint16))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "RV": 1, "MYO": 2, "LV": 3},
        "numTraining": 20, "file_ending": ".nii.gz"}))

    def cases(members: list[str]) -> list[str]:
        return [cid for p in members for cid in frames[p]]
    train, validation = patients[:8], patients[8:]
    (root / "splits.json").write_text(json.dumps({
        "train": cases(train), "validation": cases(validation),
        "train_labeled_3_patients": cases(train[:3]), "train_unlabeled_given_3": cases(train[3:]),
        "train_labeled_7_patients": cases(train[:7]), "train_unlabeled_given_7": cases(train[7:])}))
    return root


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


@pytest.fixture(scope="module")
def made(bench, tmp_path_factory):
    root = tmp_path_factory.mktemp("acdc")
    data = _acdc_like(root / "acdc")
    before = _digest(data)
    result = bench.write_manifests(data, root / "out", seed=0)
    return {"data": data, "out": root / "out", "before": before, **result}


def _values(path: Path) -> set[int]:
    return set(np.unique(np.asanyarray(nib.load(str(path)).dataobj)).tolist())


def test_the_data_folder_is_untouched_and_derived_labels_live_under_out(made):
    assert _digest(made["data"]) == made["before"]
    derived = sorted((made["out"] / "data" / "labels").glob("*.nii.gz"))
    assert derived and all(made["out"] in p.parents for p in derived)


def test_partial_sources_are_split_by_patient_with_both_frames_together_and_seeded(bench):
    train = [f"patient{p:03d}_frame{f:02d}" for p in range(1, 11) for f in (1, 12)]
    full = train[:6]
    sources = bench.assign_partial_sources(train, full, seed=0)
    assert sources["full_src"] == sorted(full)
    dealt = [cid for ids in sources.values() for cid in ids]
    assert sorted(dealt) == sorted(train)  # every case exactly once
    for ids in sources.values():
        patients = {bench.patient_of(cid) for cid in ids}
        assert len(ids) == 2 * len(patients)  # both frames of every patient in the same source
    assert sorted([len(sources["lv_myo_src"]), len(sources["rv_src"])]) == [6, 8]  # 7 patients dealt alternately
    assert bench.assign_partial_sources(train, full, seed=0) == sources
    assert len({json.dumps(bench.assign_partial_sources(train, full, seed=s)) for s in range(5)}) > 1


def test_partial_label_files_keep_only_their_sources_classes(made):
    manifest = load_manifest(made["manifests"]["partial"])
    expected = {"lv_myo_src": ({0, 2, 3}, {"myocardium", "left_ventricle"}),
                "rv_src": ({0, 1}, {"right_ventricle"}),
                "full_src": ({0, 1, 2, 3}, {"right_ventricle", "myocardium", "left_ventricle"})}
    for source, (values, classes) in expected.items():
        cases = manifest.cases_of(source)
        assert [c.case_id for c in cases] == made["partial_sources"][source]
        for case in cases:
            assert case.kind == ("full" if source == "full_src" else "partial")
            assert case.annotated_classes == classes
            assert _values(case.label_path) == values
    declared = {s.name: sorted(v for v, m in s.label_map.items() if m.kind == "class") for s in manifest.sources}
    assert declared["lv_myo_src"] == [2, 3] and declared["rv_src"] == [1]
    assert [c.label_path.parent for c in manifest.split("validation")] == [made["data"].resolve() / "labelsTr"] * 4


def test_scribbles_load_as_sparse_with_4_ignored_and_0_a_background_scribble(made):
    manifest = load_manifest(made["manifests"]["scribbles"])
    case = manifest.split("train")[0]
    assert case.kind == "sparse" and case.label_path.parent == made["data"].resolve() / "scribblesTr"
    assert case.source.label_map[4].kind == "ignore" and case.source.label_map[0].kind == "background"
    assert case.annotated_classes == {"right_ventricle", "myocardium", "left_ventricle"}
    scribble = read_volume(case.label_path, kind="label")
    labels, region = to_project_labels(case, manifest.taxonomy, scribble)
    np.testing.assert_array_equal(region, scribble.array != 4)
    assert region[0, :, 2].all() and (labels[0, :, 2] == 0).all()  # background scribble: annotated as background
    assert labels[region].max() == 3 and not region[:, :, 0].any()


def test_twenty_percent_of_slices_keep_every_fifth_slice_including_labeled_ones(made):
    manifest = load_manifest(made["manifests"]["slices"])
    train = manifest.split("train")
    assert len(train) == 16 and {c.kind for c in train} == {"sparse"}
    for case in train:
        slices = case.annotated_slices[2]
        assert list(slices) == list(range(slices[0], SHAPE[2], 5)) and slices[0] < 5
        assert any(s in LABELED_SLICES for s in slices)
        labels, region = to_project_labels(case, manifest.taxonomy, read_volume(case.label_path, kind="label"))
        assert sorted(np.flatnonzero(region.any(axis=(0, 1)))) == list(slices)
        assert region[:, :, slices[0]].all()
    assert len({c.annotated_slices[2][0] for c in train}) > 1  # the offset is drawn per volume


def test_every_nth_slices_only_draws_offsets_that_hit_a_labeled_slice(bench, tmp_path):
    label = np.zeros((4, 4, 12), dtype=np.uint8)
    label[1, 1, 3] = 2
    path = write_nifti(tmp_path / "one_slice.nii.gz", label)
    for seed in range(5):
        assert bench.every_nth_slices(path, np.random.default_rng(seed)) == [3, 8]


def test_ssl_collections_hold_the_split_labeled_patients_and_the_rest_unlabeled(made):
    splits = json.loads((made["data"] / "splits.json").read_text())
    for count in ("3", "7"):
        manifest = load_manifest(made["manifests"][f"ssl{count}"])
        kinds = {c.case_id: c.kind for c in manifest.split("train")}
        labeled = sorted(cid for cid, kind in kinds.items() if kind == "full")
        unlabeled = sorted(cid for cid, kind in kinds.items() if kind == "unlabeled")
        assert labeled == sorted(splits[f"train_labeled_{count}_patients"])
        assert unlabeled == sorted(splits[f"train_unlabeled_given_{count}"])
        assert sorted(c.case_id for c in manifest.split("validation")) == sorted(splits["validation"])


def test_slice_wise_plan_trains_a_2d_network_on_in_plane_slices_and_keeps_the_cache(bench):
    from unimos.data.plan_spec import ClassSpec, NormalisationSpec, Plan
    from unimos.networks.registry import build_network
    from unimos.preprocess.plan import with_hashes
    from unimos.training.loop import training_patch

    fine = with_hashes(Plan(unimos_plan_version=1, target_spacing_mm=[1.0, 1.0, 1.0], patch_size=[128, 120, 16],
                            batch_size=2, normalisation={"MR": NormalisationSpec(scheme="zscore_per_volume")},
                            network={"name": "dynunet", "spatial_dims": 3}, classes=[ClassSpec(name="myocardium")]))
    plan = bench.slice_wise_plan(fine, bench.SCHEDULES["default"])
    network = build_network(plan.network, in_channels=1, num_classes=4)
    assert network.spatial_dims == 2 and network.required_divisor() == (16, 16)
    assert training_patch(plan.patch_size, network) == [128, 128]
    assert plan.batch_size == bench.SCHEDULES["default"].batch_size
    assert plan.cache_key == fine.cache_key and plan.hash != fine.hash
    published = bench.slice_wise_plan(fine, bench.SCHEDULES["published"])
    assert published.patch_size[:2] == [256, 256] and published.batch_size == 12


def test_rows_share_one_upper_bound_and_the_summary_has_the_issue_keys(bench):
    rows = bench.rows_for(["ssl", "partial", "sparse"], ["supervised", "unimatch"])
    assert list(rows) == ["ssl3_supervised", "ssl3_unimatch", "ssl7_supervised", "ssl7_unimatch", "partial", "naive",
                          "upper_bound", "scribbles", "slices_20pct"]
    assert "upper_bound" in bench.rows_for(["sparse"], ["supervised"])
    results = {row: {"table": {"mean": {"dsc": i / 10}}} for i, row in enumerate(rows)}
    summary = bench.summary_entries(results)
    assert summary["acdc_ssl"] == {"3": {"supervised": 0.0, "unimatch": 0.1}, "7": {"supervised": 0.2, "unimatch": 0.3}}
    assert summary["acdc_partial"] == {"partial": 0.4, "naive": 0.5, "upper_bound": 0.6}
    assert summary["acdc_sparse"] == {"upper_bound": 0.6, "scribbles": 0.7, "slices_20pct": 0.8}
    ssl = bench.SCHEDULES["default"]
    assert ssl.iterations_for("partial", 1.0) == ssl.iterations_for("sparse", 1.0)  # the shared upper bound


def test_an_interrupted_row_continues_only_with_the_same_training_configuration(bench, tmp_path):
    from unimos.training.config import TrainConfig

    config = TrainConfig(strategy="unimatch", iterations=500).to_json()
    run = tmp_path / "runs" / "ssl3_unimatch"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config))
    assert not bench.can_continue(run, config)  # no checkpoint yet
    (run / "checkpoint_latest.json").write_text("{}")
    assert bench.can_continue(run, config)
    assert not bench.can_continue(run, {**config, "iterations": 1000})


def test_median_step_seconds_reads_the_seconds_column_of_a_run_log_and_ignores_a_paused_row(tmp_path):
    load_bench_script("acdc")  # puts bench/ on the path, as the scripts run
    from _common import median_step_seconds

    (tmp_path / "log.csv").write_text("step,loss,lr,seconds,data_seconds,val_dice\n"
                                      "10,1.0,0.003,0.5,0.01,\n20,0.9,0.003,0.7,0.01,\n30,0.8,0.003,95.0,0.01,\n")
    assert median_step_seconds(tmp_path) == 0.7
    assert median_step_seconds(tmp_path / "missing") is None


def test_median_step_seconds_pools_the_rounds_of_a_self_training_run(tmp_path):
    load_bench_script("acdc")
    from _common import median_step_seconds, run_logs

    for k, seconds in enumerate(("0.2,0.4", "0.6,0.8,1.0")):
        (tmp_path / f"round_{k}").mkdir()
        rows = "".join(f"{10 * (i + 1)},1.0,0.003,{s},0.01,\n" for i, s in enumerate(seconds.split(",")))
        (tmp_path / f"round_{k}" / "log.csv").write_text("step,loss,lr,seconds,data_seconds,val_dice\n" + rows)
    assert len(run_logs(tmp_path)) == 2
    assert median_step_seconds(tmp_path) == 0.6  # of 0.2, 0.4, 0.6, 0.8, 1.0


def test_acdc_md_keeps_the_earlier_runs_section_when_it_is_rewritten(tmp_path):
    bench = load_bench_script("acdc")
    path = tmp_path / "acdc.md"
    assert bench.kept_earlier_rows(path) == ""
    path.write_text("# ACDC benchmark\n\nnew rows\n\n# Earlier run: partial rows\n\n| a | b |\n")
    assert bench.kept_earlier_rows(path) == "\n# Earlier run: partial rows\n\n| a | b |\n"


def test_a_development_split_scores_training_patients_outside_both_labeled_sets_and_hides_the_validation_ones(
        bench, tmp_path):
    data = _acdc_like(tmp_path / "acdc")
    made = bench.write_manifests(data, tmp_path / "out", seed=0, development=1)
    # patient008 is the only training patient outside the 7 labeled ones: both its frames are the scored split
    assert made["scored_cases"] == ["patient008_frame01", "patient008_frame17"]
    for name in ("ssl3", "ssl7", "full", "partial"):
        manifest = load_manifest(made["manifests"][name])
        scored = sorted(c.case_id for c in manifest.cases if c.split == "validation")
        assert scored == made["scored_cases"], name
        trained = {c.case_id for c in manifest.cases if c.split == "train"}
        assert not trained & set(made["scored_cases"]), name
        assert not any(cid.startswith(("patient009", "patient010")) for cid in trained | set(scored)), name


def test_strategy_options_go_to_semi_supervised_rows_only_and_into_their_names(bench):
    rows = bench.rows_for(["ssl"], ["supervised", "guided_cps", "all_labeled"], ("3",), {"rectify_weight": 0})
    assert list(rows) == ["ssl3_supervised", "ssl3_guided_cps+rectify_weight=0", "ssl3_all_labeled"]
    assert rows["ssl3_guided_cps+rectify_weight=0"].options == (("rectify_weight", 0),)
    assert rows["ssl3_supervised"].options == ()


def test_strategy_options_that_a_chosen_strategy_refuses_are_all_listed(bench, capsys):
    assert bench.parse_options(["rectify_weight=0", "class_weights=none"], ["guided_cps"]) == {
        "rectify_weight": 0, "class_weights": "none"}
    assert bench.parse_options(["rectify_weight", "tau=2"], ["guided_cps"]) is None
    assert "is not KEY=VALUE" in capsys.readouterr().err
    assert bench.parse_options(["nonsense=1"], ["guided_cps", "cps"]) is None
    err = capsys.readouterr().err
    assert "guided_cps" in err and "cps" in err and "nonsense" in err
