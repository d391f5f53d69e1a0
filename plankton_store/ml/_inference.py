"""The worker side of evaluate and predict: load a model once per process, predict a block.

A block is thousands of samples (a store shard, or a slice of an export): Dask costs about
2 ms per task, so there is never one task per image. Export images are decoded by
:func:`plankton_store.io.prepare_images`, the very code build-store uses, at the
model's image size and resize mode. TensorFlow is imported only by
:func:`plankton_store.ml.load_model`, and only for a Keras model.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plankton_store.io import image_features, prepare_images
from plankton_store.ml._inputs import ModelInputs
from plankton_store.ml._modeldir import MODEL_JSON, ensemble_members
from plankton_store.ml._models import load_model
from plankton_store.ml._tta import predict_proba_tta
from plankton_store.store import format as fmt
from plankton_store.store import open_store

# One loaded model per process, keyed by its folder and the model.json mtimes of the model and,
# for an ensemble, of every member: tasks of one job reuse it; a retrained model or member is
# loaded afresh.
_MODEL_CACHE: dict[tuple[tuple[str, int], ...], Any] = {}
_MODEL_LOCK = threading.Lock()


def cached_model(model_dir: str) -> Any:
    """The :class:`plankton_store.ml.TrainedModel` in ``model_dir``, loaded once per process."""
    key = _cache_key(Path(model_dir))
    model = _MODEL_CACHE.get(key)
    if model is None:
        with _MODEL_LOCK:
            model = _MODEL_CACHE.get(key)
            if model is None:
                model = load_model(model_dir)
                _MODEL_CACHE.clear()  # one model per worker is enough; free the last one
                _MODEL_CACHE[key] = model
    return model


def _cache_key(model_dir: Path) -> tuple[tuple[str, int], ...]:
    """``(folder, model.json mtime)`` of the model and of each ensemble member."""
    path = model_dir / MODEL_JSON
    key = ((os.path.abspath(model_dir), os.stat(path).st_mtime_ns),)
    meta = json.loads(path.read_text())
    if "members" in meta:
        key += tuple(p for member in ensemble_members(model_dir, meta) for p in _cache_key(member))
    return key


def inputs_from_store(store: Any, indices: np.ndarray) -> Any:
    """``ModelInputs.from_store(store, indices)``."""
    return ModelInputs.from_store(store, indices)


def predict_inputs(
    model: Any, inputs: Any, tta: bool, resize_mode: str, batch_size: int = 1024
) -> np.ndarray:
    """``model.predict_proba(inputs)``, or its mean over the 8 dihedral views when ``tta``."""
    if tta:
        proba = predict_proba_tta(model, inputs, resize_mode, batch_size)  # type: ignore[arg-type]
    else:
        proba = model.predict_proba(inputs, batch_size=batch_size)
    return np.asarray(proba, dtype=np.float32)


def predict_store_block(
    store_path: str,
    indices: np.ndarray,
    model_dir: str,
    tta: bool = False,
    batch_size: int = 1024,
    storage_options: dict[str, Any] | None = None,
) -> np.ndarray:
    """Class probabilities ``(len(indices), n_classes)`` of some samples of a store."""
    model = cached_model(model_dir)
    store = open_store(store_path, storage_options=storage_options)
    inputs = inputs_from_store(store, np.asarray(indices))
    return predict_inputs(model, inputs, tta, model.resize_mode, batch_size)


@dataclass
class ExportBlock:
    """One slice of an export to classify; small enough to ship with its task."""

    start: int
    refs: list[str]
    features: dict[str, np.ndarray] = field(default_factory=dict)  # table -> (n, F) float32
    size: tuple[int, int] = (64, 48)
    resize_mode: str = "stretch"
    #: Columns of the ``computed`` table the model needs from the images (none: not needed).
    computed_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.refs)


@dataclass
class ExportBlockResult:
    """Probabilities of the block's readable images and the reasons of the others."""

    start: int
    n: int
    ok: np.ndarray  # (n,) bool: the image was decoded and classified
    proba: np.ndarray  # (ok.sum(), n_classes) float32, rows of the ok images in order
    failures: dict[int, str]  # position in the block -> reason


def predict_export_block(
    block: ExportBlock,
    fetch: Callable[[str], bytes],
    model_dir: str,
    tta: bool = False,
    batch_size: int = 1024,
) -> ExportBlockResult:
    """Decode a block of export images exactly as build-store does, then classify them."""
    n = len(block)
    pixels, height, width, failures = prepare_images(
        fetch,
        block.refs,
        ["none"] * n,
        block.size,
        block.resize_mode,  # type: ignore[arg-type]
    )
    features = dict(block.features)
    if block.computed_columns:
        features[fmt.COMPUTED_FEATURES] = image_features(
            fetch, block.refs, ["none"] * n, skip=failures, columns=block.computed_columns
        )
    ok = np.ones(n, dtype=bool)
    ok[list(failures)] = False
    model = cached_model(model_dir)
    if ok.any():
        inputs = ModelInputs(
            pixels[ok], height[ok], width[ok], {t: v[ok] for t, v in features.items()}
        )
        proba = predict_inputs(model, inputs, tta, block.resize_mode, batch_size)
    else:
        proba = np.zeros((0, len(model.class_names)), dtype=np.float32)
    return ExportBlockResult(block.start, n, ok, proba, failures)
