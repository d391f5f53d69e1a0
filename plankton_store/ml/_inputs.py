"""What every model predicts from: a store's per-sample arrays, as stored."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plankton_store.ml._trainset import gather_images, log_sizes
from plankton_store.store import PlanktonStore
from plankton_store.store import format as fmt


@dataclass
class ModelInputs:
    """What every model predicts from: the per-sample arrays of a store, as stored.

    Attributes
    ----------
    images : numpy.ndarray
        ``(n, h, w)`` uint8.
    orig_height, orig_width : numpy.ndarray
        ``(n,)`` int32 size before resizing.
    features : dict
        Table name -> ``(n, F)`` float32 (NaN allowed); may be empty.
    """

    images: np.ndarray
    orig_height: np.ndarray
    orig_width: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_store(
        cls, store: PlanktonStore, indices: np.ndarray, images: bool = True
    ) -> ModelInputs:
        """Gather samples ``indices`` of ``store``, reading each needed chunk once.

        ``images=False`` skips the pixels (``images`` is then ``(n, 0, 0)``), for the
        ``features`` model.
        """
        indices = np.asarray(indices, dtype=np.int64)
        features = {}
        for table in store.feature_tables:
            arr, _ = store.features(table)
            features[table] = np.asarray(arr[:], dtype=np.float32)[indices]
        pixels = (
            gather_images(store.images, indices)
            if images
            else np.zeros((len(indices), 0, 0), dtype=np.uint8)
        )
        return cls(
            images=pixels,
            orig_height=np.asarray(store.array(fmt.ORIG_HEIGHT)[:], np.int32)[indices],
            orig_width=np.asarray(store.array(fmt.ORIG_WIDTH)[:], np.int32)[indices],
            features=features,
        )

    def subset(self, rows: np.ndarray) -> ModelInputs:
        """The inputs of ``rows`` (positions into these inputs)."""
        return ModelInputs(
            self.images[rows],
            self.orig_height[rows],
            self.orig_width[rows],
            {k: v[rows] for k, v in self.features.items()},
        )

    @property
    def log_size(self) -> np.ndarray:
        return log_sizes(self.orig_height, self.orig_width)


def feature_matrix(inputs: ModelInputs, feature_columns: dict[str, list[str]]) -> np.ndarray:
    """The ``features`` model's input: every table of ``feature_columns`` (in that order)
    then ``log(orig_height), log(orig_width)``, as float32 (NaN kept)."""
    parts = []
    for table, columns in feature_columns.items():
        if table not in inputs.features:
            raise ValueError(f"the features model needs feature table {table!r}")
        values = inputs.features[table]
        if values.shape[1] != len(columns):
            raise ValueError(
                f"feature table {table!r} has {values.shape[1]} columns, not {len(columns)}"
            )
        parts.append(values.astype(np.float32, copy=False))
    parts.append(inputs.log_size)
    return np.concatenate(parts, axis=1)


def keras_inputs(inputs: ModelInputs, kind: str) -> dict[str, np.ndarray]:
    """The Keras input dictionary of a ``cnn`` / ``seed-cnn`` model."""
    data = {"image": inputs.images[..., None]}
    if kind == "cnn":
        data["size"] = inputs.log_size
    return data


def store_feature_columns(store: PlanktonStore) -> dict[str, list[str]]:
    """Every feature table of ``store`` and its column names."""
    return {table: store.features(table)[1] for table in store.feature_tables}
