"""The pipeline on real CT (../shared/data/abdomen_pseudo: pseudo-labels, so only geometry is checked)."""

import numpy as np

from unimos.data.manifest import load_manifest
from unimos.data.validation import inspect_manifest
from unimos.preprocess.cache import open_cache, preprocess_manifest
from unimos.preprocess.fingerprint import collect_fingerprint
from unimos.preprocess.plan import make_plan


def test_real_nnunet_folder_inspects_plans_and_preprocesses(shared_data, tmp_path):
    manifest = load_manifest(shared_data / "abdomen_pseudo")
    assert manifest.taxonomy.names[1:4] == ["spleen", "kidney_right", "kidney_left"]
    report = inspect_manifest(manifest)
    assert report.ok, report.problems
    plan = make_plan(collect_fingerprint(manifest), manifest.taxonomy, "3mm")
    ct = plan.normalisation["CT"]
    assert plan.fingerprint is not None
    assert plan.fingerprint["modalities"]["CT"]["intensity_source"] == "labeled foreground"
    assert ct.clip is not None and -1000 < ct.clip[0] < 0 < ct.clip[1] < 600  # organs (stomach gas included), not bone
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    cases = {c.case_id: c for c in open_cache(tmp_path / "cache", plan)}
    slab = cases["tsx_0003"]  # the DICOM-derived 512x512x20 LPS slab
    # whole voxels over the field of view
    assert np.allclose(np.linalg.norm(np.asarray(slab.meta["affine"])[:3, :3], axis=0), 3.0, atol=0.1)
    assert slab.meta["original_shape"] == [512, 512, 20]
    label = np.asarray(cases["tsx_0001"].label())
    affine = np.asarray(cases["tsx_0001"].meta["affine"])
    liver, spleen = (np.argwhere(label == manifest.taxonomy.index(n)).mean(axis=0) for n in ("liver", "spleen"))
    assert (affine @ np.append(liver, 1))[0] > (affine @ np.append(spleen, 1))[0]  # liver on the patient's right
