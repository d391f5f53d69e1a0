"""The MODEL_DIR contract: its file names, its model kinds and what ``model.json`` says.

A MODEL_DIR holds::

    model.keras | model.skops   the fitted model (Keras 3 / scikit-learn via skops); an
                                ``ensemble`` has none: its model.json lists its members'
                                folders (relative to it) and their weights
    model.json                  kind, class_names, label_column, store_fingerprint, store,
                                image_size, resize_mode, normalisation, feature_columns,
                                options, seed, best_epoch, val_macro_f1, val_accuracy,
                                head, plankton_jobs_version, store_version, taxonomy (the
                                store's regrouping of its labels, or null), class_lineages
                                (class -> lineage joined with ``>``, where the store knew it)
    head.skops                  a ``cnn``'s logistic-regression head, if it has one
                                (:mod:`plankton_store.ml._head`): it replaces the softmax layer
    history.csv                 one row per epoch: epoch, loss, accuracy, val_loss,
                                val_accuracy, val_macro_f1, lr, samples, seconds, elapsed
    history.png                 loss, accuracy and validation macro-F1 curves
    thresholds.json             per-class thresholds, val labels and predictions
                                (``plankton-jobs thresholds``)
    val_scores.npz              the val split's labels, probabilities and class names,
                                saved with the thresholds: ``abundance`` calibrates on them
    abundance_margins.json      per estimator, the margins ``abundance`` adds to its 95%
                                intervals, fitted on shifted samples simulated from val
                                (``plankton-jobs thresholds``)

Reading ``model.json`` (:func:`read_model_info`) never imports TensorFlow, so a job's client
can plan with it while only the workers load the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plankton_store.store.format import Attr

MODEL_JSON = "model.json"
#: Keys of ``model.json`` that carry the training store's grouping of its labels.
TAXONOMY_KEY = "taxonomy"
CLASS_LINEAGES_KEY = "class_lineages"
KERAS_FILE = "model.keras"
SKOPS_FILE = "model.skops"
HEAD_FILE = "head.skops"
HISTORY_CSV = "history.csv"
HISTORY_PNG = "history.png"
THRESHOLDS_JSON = "thresholds.json"
VAL_SCORES_NPZ = "val_scores.npz"
ABUNDANCE_MARGINS_JSON = "abundance_margins.json"

#: The kinds ``plankton-jobs train`` fits.
MODEL_KINDS: tuple[str, ...] = ("mlp", "cnn", "seed-cnn", "features")
#: Kind of a MODEL_DIR that pools other MODEL_DIRs (``plankton-jobs ensemble``).
ENSEMBLE_KIND = "ensemble"
#: The kinds saved as a Keras model.
KERAS_KINDS: tuple[str, ...] = ("cnn", "seed-cnn")


def model_file(kind: str) -> str:
    """``model.keras`` for Keras kinds, ``model.json`` for an ensemble, else ``model.skops``."""
    if kind == ENSEMBLE_KIND:
        return MODEL_JSON
    return KERAS_FILE if kind in KERAS_KINDS else SKOPS_FILE


class ModelMismatchError(ValueError):
    """The model cannot score this data: other classes, label column or image format."""


@dataclass(frozen=True)
class ModelInfo:
    """What the client needs to know about a model, read from ``model.json`` only.

    Reading the JSON keeps TensorFlow out of the client process.
    """

    model_dir: str
    kind: str
    class_names: list[str]
    label_column: str
    store_fingerprint: str
    image_size: tuple[int, int]
    resize_mode: str
    feature_columns: dict[str, list[str]] = field(default_factory=dict)
    is_keras: bool = False
    #: Ensembles only: whether their weights were fitted on test-time-augmented predictions.
    fitted_with_tta: bool | None = None
    #: Id of the store version the model was trained on ("" for models made before versions).
    store_version: str = ""
    #: The training store's regrouping of its labels (``Taxonomy.to_attrs``), None if none.
    taxonomy: dict[str, Any] | None = None
    #: Class name -> lineage joined with ``>``, for the classes whose lineage is known.
    class_lineages: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<kind>:<folder name>``, e.g. ``cnn:cnn-64x48``."""
        return f"{self.kind}:{Path(self.model_dir).name}"


def read_model_info(model_dir: str | os.PathLike[str]) -> ModelInfo:
    """Read ``MODEL_DIR/model.json``.

    Raises
    ------
    FileNotFoundError
        No ``model.json`` in ``model_dir`` (with what to do).
    """
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; MODEL_DIR must be the --out folder of `plankton-jobs train`"
        )
    meta = json.loads(path.read_text())
    return ModelInfo(
        model_dir=str(Path(model_dir).absolute()),
        kind=str(meta.get("kind", "?")),
        class_names=[str(c) for c in meta["class_names"]],
        label_column=str(meta.get("label_column", "")),
        store_fingerprint=str(meta.get("store_fingerprint", "")),
        image_size=tuple(int(v) for v in meta["image_size"]),  # type: ignore[arg-type]
        resize_mode=str(meta.get("resize_mode", "stretch")),
        feature_columns={k: list(v) for k, v in (meta.get("feature_columns") or {}).items()},
        is_keras=_uses_keras(Path(model_dir), meta),
        fitted_with_tta=meta.get("fitted_with_tta"),
        store_version=str(meta.get("store_version") or ""),
        taxonomy=meta.get(TAXONOMY_KEY) or None,
        class_lineages={str(k): str(v) for k, v in (meta.get(CLASS_LINEAGES_KEY) or {}).items()},
    )


def grouping_info(store_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """What ``model.json`` records of a store's grouping of its labels: its regrouping
    (:data:`TAXONOMY_KEY`) and its classes' lineages (:data:`CLASS_LINEAGES_KEY`)."""
    return {
        TAXONOMY_KEY: store_attrs.get(Attr.TAXONOMY) or None,
        CLASS_LINEAGES_KEY: dict(store_attrs.get(Attr.CLASS_LINEAGES) or {}),
    }


def tta_mismatch_note(info: ModelInfo, tta: bool) -> str | None:
    """A note when an ensemble is used with another ``--tta`` setting than its weights were
    fitted for (they may then not be the best ones), else None."""
    if info.fitted_with_tta is None or info.fitted_with_tta == tta:
        return None
    fitted, used = ("with", "without") if info.fitted_with_tta else ("without", "with")
    return (
        f"the ensemble {info.name} had its weights fitted {fitted} --tta and is used {used} "
        f"it: its weights were chosen for other predictions (run `plankton-jobs ensemble` "
        f"{'with' if tta else 'without'} --tta to match)"
    )


def ensemble_members(model_dir: str | os.PathLike[str], meta: dict[str, Any]) -> list[Path]:
    """The member folders of an ensemble's ``model.json`` (stored relative to its folder)."""
    return [(Path(model_dir) / member).resolve() for member in meta["members"]]


def _uses_keras(model_dir: Path, meta: dict[str, Any]) -> bool:
    """Whether the model (or a member of an ensemble) is a Keras model."""
    if "members" in meta:
        return any(read_model_info(m).is_keras for m in ensemble_members(model_dir, meta))
    return (model_dir / KERAS_FILE).is_file()


def model_fingerprint(model_dir: str | os.PathLike[str]) -> str:
    """Short digest of model.json and the saved model file(s) (an ensemble's: and of its
    members')."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.name == MODEL_JSON or path.name.startswith("model."):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
    meta = json.loads((Path(model_dir) / MODEL_JSON).read_text())
    if "members" in meta:
        for member in ensemble_members(model_dir, meta):
            digest.update(model_fingerprint(member).encode())
    return digest.hexdigest()[:16]


def clear_model_dir(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """Make way for a new MODEL_DIR at ``out``: refuse an existing one unless ``overwrite``,
    and never remove a folder that is not a MODEL_DIR.

    Raises
    ------
    FileExistsError
        ``out`` exists and ``overwrite`` is False, or ``out`` is a non-empty folder without
        ``model.json``.
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} already exists: pass --overwrite to replace it")
        if out.is_dir() and any(out.iterdir()) and not (out / MODEL_JSON).is_file():
            raise FileExistsError(f"{out} is not a model dir; refusing to replace it")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    return out
