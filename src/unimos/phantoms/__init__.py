"""Anatomical phantoms: a synthetic abdominal collection for trying unimos end to end, `make_demo_data(out)`.

It writes real NIfTI files and a manifest that mixes every kind of annotation unimos handles: a fully labeled
CT source, two partially labeled CT sources (one with the two kidneys merged into one label value), a sparsely
labeled CT source (every 5th axial slice), a partially labeled MR source, an unlabeled CT source and a held-out
CT test source. For every case the complete 9-class label is written too, with a second manifest that treats
every source as fully labeled (an upper bound to compare with).

The anatomy is drawn analytically on each case's own voxel grid, in world RAS+ millimetres (nibabel: +x towards
the patient's right, +y anterior, +z superior): a body outline (skin fat, muscle wall, intra-abdominal fat),
spine, ribs, psoas and paraspinal muscles, lung bases, bowel loops, and the nine organs as smoothly warped
ellipsoids and swept tubes, each jittered per patient (size, position, rotation, low-frequency shape). Every
organ is present and visible in every image, also where a source does not annotate it, so treating unannotated
organs as background is visibly wrong. All randomness flows from `np.random.default_rng(seed)`.

Modules, each using only the ones before it: `shapes` (grid, warps, ellipsoids, swept tubes), `anatomy` (one
patient's tissue codes and complete label), `imaging` (CT and MR images of it), `collection` (the sources, the
case files, the manifests). A layer of its own above `data` (docs/architecture.md): the data model does not
generate data.
"""

from unimos.phantoms.anatomy import CLASSES
from unimos.phantoms.collection import COMPLETE_LABELS, SOURCES, SSL_SOURCES, DemoSource, make_demo_data

__all__ = ["CLASSES", "COMPLETE_LABELS", "SOURCES", "SSL_SOURCES", "DemoSource", "make_demo_data"]
