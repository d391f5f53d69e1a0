"""build-store: decode, filter, augment and resize an export into a Zarr v3 store, on Dask."""

from __future__ import annotations

from pathlib import Path

import click

from jobs._options import (
    DEFAULT_STATUSES,
    cluster_options,
    job_client,
    seed_option,
    status_option,
    taxonomy_from_options,
    taxonomy_options,
)
from plankton_store.io import RESIZE_MODES, ExportError, is_ecotaxa_zip, is_url, parse_size
from plankton_store.store import (
    DEFAULT_AUGMENTATIONS,
    DEFAULT_DROP_CLASSES,
    PLANNERS,
    BuildOptions,
    StoreExistsError,
    build_store,
    format_summary,
    store_state,
)


@click.command("build-store")
@click.argument("source")
@click.argument("store")
@click.option(
    "--label-column",
    default="level2",
    show_default=True,
    help="meta.csv column with the class labels (e.g. level1 for finer classes).",
)
@click.option(
    "--drop-class",
    "drop_classes",
    multiple=True,
    default=DEFAULT_DROP_CLASSES,
    show_default=True,
    help="Class to leave out (repeatable).",
)
@click.option("--keep-all-classes", is_flag=True, help="Drop no class (ignores --drop-class).")
@taxonomy_options
@click.option(
    "--max-per-class",
    type=click.IntRange(min=0),
    default=20000,
    show_default=True,
    help="Keep at most this many images per class, chosen at random; 0 = no cap.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of each class held out for testing.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of each class held out for validation.",
)
@click.option(
    "--augment-below",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Add augmented copies of train images of classes with fewer train images; "
    "0 = no augmentation.",
)
@click.option(
    "--augmentation",
    "augmentations",
    multiple=True,
    default=DEFAULT_AUGMENTATIONS,
    type=click.Choice(DEFAULT_AUGMENTATIONS),
    show_default=True,
    help="Operation used for augmented copies (repeatable).",
)
@click.option("--size", default="64x48", show_default=True, help="Stored image HEIGHTxWIDTH.")
@click.option(
    "--resize",
    "resize_mode",
    type=click.Choice(RESIZE_MODES),
    default="stretch",
    show_default=True,
    help="stretch: fill the frame; pad: keep the aspect ratio on the background grey.",
)
@click.option(
    "--compute-features",
    is_flag=True,
    help="Also compute 36 shape and grey-level features (area, ESD, axes, perimeter, grey-level "
    "moments, holes, radial profile, texture, Hu moments, ...) from every image at "
    "full resolution into the feature table 'computed', for the features model: for exports "
    "without feature tables. Costs a second, full-resolution decode of every image and about "
    "1 ms of CPU per image.",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    default=None,
    help="Samples per shard; each Dask task writes whole shards [default: 4096, fewer for "
    "stores under 65,536 samples so that at least 16 blocks share out the work].",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Samples per chunk inside a shard (the unit a reader decompresses).",
)
@status_option("validated")
@seed_option
@click.option(
    "--planner",
    type=click.Choice(PLANNERS),
    default=PLANNERS[0],
    show_default=True,
    help="How rows are capped, split and ordered. 'hashed' decides each row by keys hashed "
    "from the seed and its objid, so a plan can be made partition by partition (for "
    "archives too large to plan in one process; docs/archive-scale.md) and is the same "
    "whatever the partitioning; it is another plan than 'sequential' for the same seed. "
    "--resume and ingest use the planner the store was built with.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing store at STORE.")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted build of STORE: only blocks never written are run, with the "
    "options the build started with.",
)
@cluster_options
def build_store_command(
    source: str,
    store: str,
    label_column: str,
    drop_classes: tuple[str, ...],
    keep_all_classes: bool,
    taxonomy_map: str | None,
    lineage_level: int | None,
    max_per_class: int,
    test_fraction: float,
    val_fraction: float,
    augment_below: int,
    augmentations: tuple[str, ...],
    size: str,
    resize_mode: str,
    compute_features: bool,
    block_size: int | None,
    chunk_size: int,
    statuses: tuple[str, ...] | None,
    seed: int,
    planner: str,
    overwrite: bool,
    resume: bool,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Build a chunked Zarr v3 feature store from an export in SOURCE, written to STORE.

    SOURCE is a FlowCam/EcoTaxa export folder (meta.csv + imgs.zip or imgs/, optional
    features_*.csv.gz), an EcoTaxa TSV export (a folder or .zip of ecotaxa*.tsv tables and
    their images; docs/ecotaxa.md) or an image folder (SOURCE/CLASS/IMAGE). SOURCE and
    STORE are paths or fsspec URLs (s3://bucket/store.zarr); endpoint and credentials come
    from the fsspec configuration (e.g. AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    FSSPEC_S3_ENDPOINT_URL), which the Dask workers need too. Rows that are not stored are
    listed with their reason in STORE.rejects.csv. --lineage-level and --taxonomy-map
    regroup the labels before --drop-class applies (docs/taxonomy.md); the store records
    the regrouping.
    """
    taxonomy = taxonomy_from_options(taxonomy_map, lineage_level)
    try:
        options = BuildOptions(
            label_column=label_column,
            drop_classes=() if keep_all_classes else tuple(drop_classes),
            max_per_class=max_per_class or None,
            test_fraction=test_fraction,
            val_fraction=val_fraction,
            augment_below=augment_below,
            augmentations=tuple(augmentations),
            size=parse_size(size),
            resize_mode=resize_mode,
            block_size=block_size,
            chunk_size=min(chunk_size, block_size or chunk_size),
            seed=seed,
            planner=planner,
            compute_features=compute_features,
            statuses=statuses or DEFAULT_STATUSES,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if overwrite and resume:
        raise click.UsageError("--overwrite and --resume exclude each other")
    if not is_url(source) and not Path(source).is_dir() and not is_ecotaxa_zip(source):
        raise click.BadParameter(f"{source}: no such folder or .zip", param_hint="'SOURCE'")
    state = store_state(store)
    if state is not None and not (overwrite or resume):
        raise click.UsageError(
            f"{store} already exists ({state}): pass --overwrite to replace it"
            + (" or --resume to finish it" if state == "incomplete" else "")
        )
    with job_client(workers, scheduler, cluster_config) as client:
        try:
            summary = build_store(
                source,
                store,
                options,
                client,
                overwrite=overwrite,
                resume=resume,
                taxonomy=taxonomy,
            )
        except (ExportError, StoreExistsError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(format_summary(summary))
