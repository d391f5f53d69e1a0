"""Models: training on balanced batches, the MODEL_DIR contract, prediction and evaluation.

Four kinds learn from a store (:data:`MODEL_KINDS`): an ``mlp`` on pixels and a ``features``
model (gradient boosting on the feature tables) with scikit-learn, a compact ``cnn`` and the
seed notebook's ``seed-cnn`` with Keras; an ``ensemble`` pools MODEL_DIRs. The MODEL_DIR's
files are defined in :mod:`plankton_store.ml._modeldir`; Keras loads only through
:func:`import_keras`, and only in the Keras code paths.
"""

from plankton_store.ml._augment import augment_batch, turn_images
from plankton_store.ml._balance import BALANCE_POLICIES, BalancedSampler, Selection
from plankton_store.ml._batches import Batch, BatchPipeline
from plankton_store.ml._embed import EmbedSummary, embed_store
from plankton_store.ml._ensemble import fit_weights, pool_probabilities, pool_views
from plankton_store.ml._evaluate import (
    BATCH,
    SPLITS,
    check_evaluation,
    class_mapping,
    evaluate,
    predict_store,
    split_indices,
)
from plankton_store.ml._fit import TREES_PER_EPOCH
from plankton_store.ml._grid import GRID_KEYS, GRID_SUMMARY, parse_grid, run_grid
from plankton_store.ml._head import HEAD_CHOICES, HEAD_MAX_ROWS, embedding_model, fit_head
from plankton_store.ml._history import History, val_metrics
from plankton_store.ml._inference import (
    ExportBlock,
    ExportBlockResult,
    cached_model,
    inputs_from_store,
    predict_export_block,
    predict_inputs,
    predict_store_block,
)
from plankton_store.ml._inputs import (
    ModelInputs,
    feature_matrix,
    keras_inputs,
    store_feature_columns,
)
from plankton_store.ml._keras import configure_keras, import_keras
from plankton_store.ml._large import PRESETS
from plankton_store.ml._modeldir import (
    ENSEMBLE_KIND,
    HEAD_FILE,
    HISTORY_CSV,
    HISTORY_PNG,
    KERAS_FILE,
    KERAS_KINDS,
    MODEL_JSON,
    MODEL_KINDS,
    SKOPS_FILE,
    ModelInfo,
    ModelMismatchError,
    clear_model_dir,
    ensemble_members,
    model_file,
    model_fingerprint,
    read_model_info,
    tta_mismatch_note,
)
from plankton_store.ml._models import SKOPS_TRUSTED, TrainedModel, load_model, save_model
from plankton_store.ml._nets import build_cnn, build_seed_cnn, conv_trunk
from plankton_store.ml._options import MODEL_DEFAULTS, TrainOptions
from plankton_store.ml._pinned import VersionScope, version_scope
from plankton_store.ml._pool import EnsembleResult, ensemble
from plankton_store.ml._predict import (
    CSV_FORMAT,
    DEFAULT_BLOCK_SIZE,
    PREDICTION_COLUMNS,
    PREDICTION_FORMATS,
    PROBABILITIES_SUFFIX,
    Classified,
    PredictResult,
    aligned_export_features,
    classify_export,
    load_probabilities,
    predict_source,
    predictions_frame,
    probabilities_path_for,
    rejects_path_for,
    save_probabilities,
    write_predictions,
)
from plankton_store.ml._similar import SIMILAR_CSV, SIMILAR_PNG, Neighbours, similar
from plankton_store.ml._thresholds import (
    DEFAULT_NON_LIVING,
    UNCLASSIFIED,
    apply_thresholds,
    fit_thresholds,
    living_classes,
    load_thresholds,
    mark_unclassified,
    save_thresholds,
    threshold_report,
)
from plankton_store.ml._thresholds_store import (
    fit_store_thresholds,
    load_abundance_margins,
    load_val_confusion,
    load_val_scores,
    save_abundance_margins,
)
from plankton_store.ml._train import TrainResult, train
from plankton_store.ml._trainset import (
    DEFAULT_MEMORY_LIMIT,
    Normalisation,
    TrainSet,
    gather_images,
    log_sizes,
    pooled,
)
from plankton_store.ml._tta import (
    DIHEDRAL,
    predict_proba_tta,
    predict_proba_views,
    tta_views,
)

__all__ = [
    "SIMILAR_CSV",
    "SIMILAR_PNG",
    "EmbedSummary",
    "Neighbours",
    "VersionScope",
    "embed_store",
    "similar",
    "version_scope",
    "UNCLASSIFIED",
    "DEFAULT_NON_LIVING",
    "living_classes",
    "threshold_report",
    "apply_thresholds",
    "fit_store_thresholds",
    "fit_thresholds",
    "load_val_confusion",
    "load_val_scores",
    "load_abundance_margins",
    "save_abundance_margins",
    "load_thresholds",
    "mark_unclassified",
    "save_thresholds",
    "BALANCE_POLICIES",
    "BATCH",
    "CSV_FORMAT",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_MEMORY_LIMIT",
    "DIHEDRAL",
    "ENSEMBLE_KIND",
    "GRID_KEYS",
    "GRID_SUMMARY",
    "HEAD_CHOICES",
    "PRESETS",
    "HEAD_FILE",
    "HEAD_MAX_ROWS",
    "HISTORY_CSV",
    "HISTORY_PNG",
    "KERAS_FILE",
    "KERAS_KINDS",
    "MODEL_DEFAULTS",
    "MODEL_JSON",
    "MODEL_KINDS",
    "PREDICTION_COLUMNS",
    "PREDICTION_FORMATS",
    "SKOPS_FILE",
    "SKOPS_TRUSTED",
    "SPLITS",
    "TREES_PER_EPOCH",
    "BalancedSampler",
    "Batch",
    "BatchPipeline",
    "Classified",
    "EnsembleResult",
    "ExportBlock",
    "ExportBlockResult",
    "History",
    "ModelInfo",
    "ModelInputs",
    "ModelMismatchError",
    "Normalisation",
    "PredictResult",
    "Selection",
    "TrainOptions",
    "TrainResult",
    "TrainSet",
    "TrainedModel",
    "aligned_export_features",
    "augment_batch",
    "build_cnn",
    "build_seed_cnn",
    "cached_model",
    "check_evaluation",
    "class_mapping",
    "classify_export",
    "clear_model_dir",
    "configure_keras",
    "conv_trunk",
    "embedding_model",
    "ensemble",
    "ensemble_members",
    "evaluate",
    "feature_matrix",
    "fit_head",
    "fit_weights",
    "gather_images",
    "import_keras",
    "inputs_from_store",
    "keras_inputs",
    "load_model",
    "log_sizes",
    "model_file",
    "model_fingerprint",
    "parse_grid",
    "pool_probabilities",
    "pool_views",
    "pooled",
    "predict_export_block",
    "predict_inputs",
    "predict_proba_tta",
    "predict_proba_views",
    "predict_source",
    "predict_store",
    "predict_store_block",
    "predictions_frame",
    "read_model_info",
    "rejects_path_for",
    "load_probabilities",
    "probabilities_path_for",
    "save_probabilities",
    "PROBABILITIES_SUFFIX",
    "run_grid",
    "save_model",
    "split_indices",
    "store_feature_columns",
    "train",
    "tta_mismatch_note",
    "tta_views",
    "turn_images",
    "val_metrics",
    "write_predictions",
]
