"""Shared fixtures: small hand-made exports and one Dask cluster for the whole session."""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real images (NDSB-2015 / PlanktonSet 1.0) in the FlowCam layout, outside the repository.
NDSB_DEV = Path(
    os.environ.get("PLANKTON_NDSB_DEV") or REPO_ROOT.parent / "shared" / "data" / "ndsb-dev"
)


def shape_image(label_index: int, height: int, width: int, rng: np.random.Generator) -> Image.Image:
    """A light image with a dark shape whose kind depends on the class index."""
    im = Image.new("L", (width, height), int(rng.integers(200, 240)))
    draw = ImageDraw.Draw(im)
    box = [width * 0.2, height * 0.2, width * 0.8, height * 0.8]
    ink = int(rng.integers(20, 80))
    kind = label_index % 3
    if kind == 0:
        draw.ellipse(box, fill=ink)
    elif kind == 1:
        draw.rectangle(box, fill=ink)
    else:
        draw.line([box[0], box[1], box[2], box[3]], fill=ink, width=max(1, width // 8))
    return im


def jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_flowcam_export(
    root: Path,
    class_counts: Mapping[str, int],
    seed: int = 0,
    extra_images: Mapping[str, bytes] | None = None,
    with_features: bool = True,
) -> Path:
    """A FlowCam-layout export: meta.csv, imgs.zip and features_native.csv.gz.

    Objids start at 1000 and follow the row order; ``extra_images`` adds or replaces zip
    members (for bad-input cases).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    labels = [name for name, n in class_counts.items() for _ in range(n)]
    labels = [labels[i] for i in rng.permutation(len(labels))]
    names = sorted(class_counts)
    lines = ["objid,status,level1,level2"]
    members: dict[str, bytes] = {}
    features = ["objid,area,mean"]
    for i, label in enumerate(labels):
        objid = 1000 + i
        lines.append(f"{objid},validated,{label}_fine,{label}")
        h, w = int(rng.integers(12, 120)), int(rng.integers(10, 90))
        im = shape_image(names.index(label) if label else 0, h, w, rng)
        members[f"imgs/{objid}.jpg"] = jpeg(im)
        arr = np.asarray(im)
        features.append(f"{objid},{int((arr < 128).sum())},{arr.mean():.3f}")
    members.update(extra_images or {})
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    with zipfile.ZipFile(root / "imgs.zip", "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    if with_features:
        with gzip.open(root / "features_native.csv.gz", "wt") as f:
            f.write("\n".join(features) + "\n")
    return root


#: Class sizes of the small standard test export: imbalanced, one class too small to split.
SMALL_COUNTS = {"detritus": 120, "copepod": 40, "diatom": 25, "rare": 4, "single": 1, "artefact": 6}


@pytest.fixture(scope="session")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_flowcam_export(tmp_path_factory.mktemp("small") / "export", SMALL_COUNTS)


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """Two single-threaded worker processes, shared by every test that needs Dask."""
    from distributed import Client

    from plankton_store.cluster import local_cluster

    with local_cluster(2, dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


#: Build options of ``small_store``: small blocks so that even a small export spans shards.
SMALL_STORE_OPTIONS = dict(block_size=32, chunk_size=16, augment_below=30, size=(32, 24))


@pytest.fixture(scope="session")
def small_store(small_export: Path, tmp_path_factory: pytest.TempPathFactory, dask_client) -> str:
    """A store built from ``small_export`` (artefact dropped; 32x24 images)."""
    from plankton_store.store import BuildOptions, build_store

    path = str(tmp_path_factory.mktemp("small_store") / "store.zarr")
    build_store(
        str(small_export),
        path,
        BuildOptions(**SMALL_STORE_OPTIONS),
        dask_client,
        progress=False,
        echo=lambda _: None,
    )
    return path


def fit_small_model(
    store_path: str, model_dir: Path, kind: str = "mlp", regularisation: float = 1.0
) -> Path:
    """Save a tiny real scikit-learn model of ``store_path`` (logistic regression on the
    standardised pixels for ``mlp``, on the feature tables + log sizes for ``features``;
    ``regularisation`` is its ``C``: small values give a weak, unsure model)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from plankton_store.ml import (
        ModelInputs,
        Normalisation,
        TrainedModel,
        feature_matrix,
        save_model,
    )
    from plankton_store.store import open_store

    store = open_store(store_path)
    train = store.split_indices("train")
    inputs = ModelInputs.from_store(store, train)
    pixels = inputs.images.astype(np.float64)
    norm = Normalisation(float(pixels.mean()), float(pixels.std()), (0.0, 0.0), (1.0, 1.0))
    columns = {t: store.features(t)[1] for t in store.feature_tables} if kind == "features" else {}
    if kind == "mlp":
        x = norm.images(inputs.images).reshape(len(train), -1)
    else:
        x = np.nan_to_num(feature_matrix(inputs, columns))
    with warnings.catch_warnings():
        # Convergence does not matter for a test model; it only has to be real and imperfect.
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = LogisticRegression(C=regularisation, max_iter=300).fit(x, store.labels[train])
    model = TrainedModel(
        kind=kind,
        estimator=estimator,
        class_names=store.class_names,
        label_column=store.label_column,
        store_fingerprint=store.fingerprint,
        image_size=store.image_size,
        resize_mode=store.attrs["resize_mode"],
        normalisation=norm,
        feature_columns=columns,
    )
    save_model(model_dir, model)
    return model_dir


@pytest.fixture(scope="session")
def small_model(small_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``mlp``-kind model dir (a real, tiny scikit-learn model) of ``small_store``."""
    return fit_small_model(small_store, tmp_path_factory.mktemp("models") / "mlp")


#: Classes of the demo export at DEMO_SCALE with fewer images than this are dropped from
#: ``demo_store``, so that every class has a handful of train and val samples.
DEMO_SCALE = 0.02
DEMO_MIN_IMAGES = 30


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory, dask_client) -> str:
    """A small store from the synthetic export: 15 imbalanced classes, 32x24, ~1000 samples."""
    from plankton_store.demo import expected_level2_counts, make_demo_export
    from plankton_store.store import DEFAULT_DROP_CLASSES, BuildOptions, build_store

    root = tmp_path_factory.mktemp("demo")
    export = make_demo_export(root / "export", scale=DEMO_SCALE, seed=0, workers=2, progress=False)
    small = tuple(k for k, v in expected_level2_counts(DEMO_SCALE).items() if v < DEMO_MIN_IMAGES)
    options = BuildOptions(
        size=(32, 24),
        drop_classes=DEFAULT_DROP_CLASSES + small,
        max_per_class=80,
        augment_below=0,
        val_fraction=0.2,
        test_fraction=0.2,
        block_size=256,
        chunk_size=64,
    )
    path = str(root / "demo.zarr")
    build_store(str(export), path, options, dask_client, progress=False)
    return path
