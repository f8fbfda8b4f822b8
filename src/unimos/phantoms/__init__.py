"""Anatomical phantoms: a synthetic abdominal collection for trying unimos end to end, `make_demo_data(out)`.

It writes real NIfTI files and a manifest that mixes every kind of annotation unimos handles, in sources shaped
like the public datasets: LiTS-, KiTS- (both kidneys in one label value) and MSD-pancreas-like CTs that label one
organ and its tumour, MSD-spleen-like and vessel CTs, two BTCV-like CTs that label every organ but no lesion, a
CHAOS-like MR source, a sparsely labeled CT source (every 5th axial slice), unlabeled CTs and held-out test CTs
that label everything. Lesions (1-3, 5-30 mm) grow in the liver, kidneys and pancreas of a share of every
source's patients, also where the labels do not name them. For every case the complete label (9 organs, 3 lesion
classes) is written too, with a second manifest that treats every source as fully labeled (an upper bound).

The anatomy is drawn analytically on each case's own voxel grid, in world RAS+ millimetres (nibabel: +x towards
the patient's right, +y anterior, +z superior): a body outline (skin fat, muscle wall, intra-abdominal fat),
spine, ribs, psoas and paraspinal muscles, lung bases, bowel loops, and the nine organs as smoothly warped
ellipsoids and swept tubes, each jittered per patient (size, position, rotation, low-frequency shape), with
hypo- or hyper-dense lesions grown inside the liver, kidneys and pancreas. Every
organ is present and visible in every image, also where a source does not annotate it, so treating unannotated
organs as background is visibly wrong. All randomness flows from `np.random.default_rng(seed)`.

Modules, each using only the ones before it: `shapes` (grid, warps, ellipsoids, swept tubes), `anatomy` (one
patient's tissue codes and complete label), `imaging` (CT and MR images of it), `collection` (the sources, the
case files, the manifests). A layer of its own above `data` (docs/architecture.md): the data model does not
generate data.
"""

from unimos.phantoms.anatomy import ALL_CLASSES, CLASSES, LESIONS
from unimos.phantoms.collection import (
    COMPLETE_LABELS,
    ORGAN_LABELS,
    SOURCES,
    SSL_SOURCES,
    DemoSource,
    collection_classes,
    make_demo_data,
)

__all__ = ["ALL_CLASSES", "CLASSES", "COMPLETE_LABELS", "LESIONS", "ORGAN_LABELS", "SOURCES", "SSL_SOURCES",
           "DemoSource", "collection_classes", "make_demo_data"]
