"""The PNG figures of the evaluate and explore reports (matplotlib, Agg backend).

Figures are sized by the number of classes, so that 40 class names stay readable
(8 pt, one row of at least 0.26 inch each) and never overlap. Import this module lazily:
it loads matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# ``vert=False`` is deprecated from matplotlib 3.10, where ``orientation`` replaces it.
_HORIZONTAL: dict = (
    {"orientation": "horizontal"}
    if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)
#: Font size of class names.
LABEL_FONTSIZE = 8
#: Height per class row (inches): 8 pt text is 0.11 inch, this leaves room between rows.
ROW_INCH = 0.26
DPI = 110


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _rows_figure(n: int, width: float, ncols: int = 1, **kw: object) -> tuple[plt.Figure, object]:
    """A figure whose axes give each of ``n`` class rows exactly :data:`ROW_INCH`."""
    top, bottom = 0.45, 0.75  # inches for the title and the x axis
    height = ROW_INCH * n + top + bottom
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), **kw)
    fig.subplots_adjust(top=1 - top / height, bottom=bottom / height)
    return fig, axes


def _log_x(ax: plt.Axes) -> None:
    """Log x axis with plain-number labels: decades, plus 2x and 5x when it spans under two
    decades (more minor labels would overlap). Call after plotting (it reads the limits)."""
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    ax.xaxis.set_major_formatter(plain)
    low, high = ax.get_xlim()
    if low > 0 and np.log10(high / low) < 2:

        def minor(v: float, _: object) -> str:
            lead = round(v / 10 ** np.floor(np.log10(v) + 1e-9))
            return f"{v:,.0f}" if lead in (2, 5) else ""

        ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(minor))
        ax.tick_params(axis="x", which="minor", labelsize=7)
    else:
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_axisbelow(True)


def _label_width_inch(names: Sequence[str]) -> float:
    """Rough width of the longest name at :data:`LABEL_FONTSIZE` (about 0.6 em a character)."""
    longest = max((len(n) for n in names), default=1)
    return 0.6 * LABEL_FONTSIZE / 72 * longest + 0.2


def confusion_png(
    rates: np.ndarray,
    class_names: Sequence[str],
    support: Sequence[int],
    path: str | Path,
    title: str = "",
) -> Path:
    """Row-normalised confusion matrix; rows = true class (with its support), columns = predicted.

    Cells show the row percentage (blank when it rounds to 0).
    """
    n = len(class_names)
    cell = max(ROW_INCH, 0.3)
    side = cell * n
    label_w = _label_width_inch(class_names)
    fig, ax = plt.subplots(figsize=(side + label_w + 1.8, side + label_w + 1.0))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(np.arange(n))
    ax.set_yticks(np.arange(n))
    ax.set_xticklabels(class_names, rotation=90, fontsize=LABEL_FONTSIZE)
    ax.set_yticklabels(
        [f"{c} ({s})" for c, s in zip(class_names, support, strict=True)], fontsize=LABEL_FONTSIZE
    )
    ax.set_xlabel("predicted class", fontsize=10)
    ax.set_ylabel("true class (test samples)", fontsize=10)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.9", linewidth=0.4)
    ax.tick_params(which="minor", length=0)
    percent = np.rint(rates * 100).astype(int)
    small = 6 if n > 20 else 8
    for i, j in zip(*np.nonzero(percent), strict=True):
        ax.text(
            j,
            i,
            str(percent[i, j]),
            ha="center",
            va="center",
            fontsize=small,
            color="white" if rates[i, j] > 0.5 else "black",
        )
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="share of the true class")
    ax.set_title(title or "Confusion matrix (row-normalised, %)", fontsize=11)
    return _save(fig, path)


def per_class_f1_png(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Horizontal bars of F1 per class, worst at the top, with precision and recall marks.

    ``table`` has the columns of :func:`plankton_store.report.per_class_table`.
    """
    t = table.sort_values(["f1", "support"], ascending=[True, True]).reset_index(drop=True)
    n = len(t)
    names = [f"{c} (n={s})" for c, s in zip(t["class"], t["support"], strict=True)]
    label_w = _label_width_inch(names)
    fig, ax = _rows_figure(n, label_w + 6.5)
    y = np.arange(n)
    ax.barh(y, t["f1"], color="tab:blue", height=0.7, label="F1")
    ax.scatter(t["precision"], y, marker="|", s=60, color="tab:orange", label="precision", zorder=3)
    ax.scatter(t["recall"], y, marker="x", s=18, color="tab:green", label="recall", zorder=3)
    # F1 values in their own column right of the 0-1 scale, where no bar or mark can reach.
    for yi, f1 in zip(y, t["f1"], strict=True):
        ax.text(1.03, yi, f"{f1:.2f}", va="center", fontsize=7)
    ax.axvline(1.0, color="0.6", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=LABEL_FONTSIZE)
    ax.set_ylim(n - 0.5, -0.5)  # worst class on top
    ax.set_xlim(0, 1.12)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_axisbelow(True)
    ax.set_xlabel("score (F1 value at the right)")
    ax.grid(axis="x", color="0.9")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or "Per-class F1 (worst first); n = test samples", fontsize=11)
    return _save(fig, path)


def class_counts_png(counts: pd.Series, path: str | Path, title: str = "") -> Path:
    """Images per class as horizontal bars on a log scale, largest at the top."""
    counts = counts.sort_values(ascending=False)
    n = len(counts)
    names = [str(c) for c in counts.index]
    fig, ax = _rows_figure(n, _label_width_inch(names) + 6.0)
    y = np.arange(n)
    ax.barh(y, counts.to_numpy(), color="tab:blue", height=0.7)
    _log_x(ax)
    for yi, v in zip(y, counts.to_numpy(), strict=True):
        ax.text(v * 1.05, yi, f"{v:,}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=LABEL_FONTSIZE)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0.8, max(2.0, float(counts.max())) * 3)
    ax.set_xlabel("images (log scale)")
    ax.grid(axis="x", color="0.9", which="both")
    ax.set_title(title or "Images per class", fontsize=11)
    return _save(fig, path)


def size_histograms_png(sizes: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Histograms of image height, width and area (pixels, log-spaced bins) over all images."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, col in zip(axes, ("height", "width", "area"), strict=True):
        values = sizes[col].to_numpy(dtype=float)
        values = values[values > 0]
        if len(values):
            bins = np.geomspace(values.min(), max(values.max(), values.min() + 1), 40)
            ax.hist(values, bins=bins, color="tab:blue")
            med = float(np.median(values))
            ax.axvline(med, color="tab:red", linewidth=1)
            ax.text(
                med,
                ax.get_ylim()[1] * 0.97,
                f" median {med:,.0f}",
                color="tab:red",
                va="top",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
        _log_x(ax)
        ax.set_xlabel(f"{col} (pixels{'²' if col == 'area' else ''}, log scale)")
        ax.set_ylabel("images")
    fig.suptitle(title or "Image sizes (before resizing)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def size_by_class_png(sizes: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Box plots of height, width and area per class (log scale), sorted by median area.

    ``sizes`` has columns ``label``, ``height``, ``width``, ``area``.
    """
    groups = sizes.groupby("label", observed=True)
    order = groups["area"].median().sort_values(ascending=False).index.tolist()
    n = len(order)
    names = [f"{c} (n={len(groups.get_group(c))})" for c in order]
    fig, axes = _rows_figure(n, _label_width_inch(names) + 11, ncols=3, sharey=True)
    for ax, col in zip(axes, ("height", "width", "area"), strict=True):
        data = [groups.get_group(c)[col].to_numpy(dtype=float) for c in order]
        ax.boxplot(
            data,
            **_HORIZONTAL,
            positions=np.arange(n),
            widths=0.6,
            showfliers=False,
            medianprops={"color": "tab:red"},
        )
        _log_x(ax)
        ax.set_xlabel(f"{col} (log scale)")
        ax.grid(axis="x", color="0.9", which="both")
    axes[0].set_yticks(np.arange(n))
    axes[0].set_yticklabels(names, fontsize=LABEL_FONTSIZE)
    axes[0].set_ylim(n - 0.5, -0.5)
    fig.suptitle(title or "Image size per class (boxes: quartiles, whiskers: 1.5 IQR)", fontsize=11)
    fig.subplots_adjust(wspace=0.08)
    return _save(fig, path)


def example_grid_png(
    examples: Mapping[str, Sequence[np.ndarray]],
    path: str | Path,
    per_class: int = 8,
    title: str = "",
) -> Path:
    """One row per class: its name, then up to ``per_class`` example images (grey, 0-255)."""
    names = list(examples)
    n = len(names)
    cell = 0.75
    label_w = _label_width_inch(names) + 0.2
    fig = plt.figure(figsize=(label_w + cell * per_class, cell * n + 0.6))
    height = cell * n + 0.6
    width = label_w + cell * per_class
    for r, name in enumerate(names):
        top = 1 - (0.4 + cell * (r + 1)) / height
        fig.text(
            (label_w - 0.1) / width,
            top + cell / 2 / height,
            name,
            ha="right",
            va="center",
            fontsize=LABEL_FONTSIZE,
        )
        for c, image in enumerate(list(examples[name])[:per_class]):
            ax = fig.add_axes(
                ((label_w + c * cell) / width, top, cell * 0.95 / width, cell * 0.95 / height)
            )
            ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_axis_off()
    fig.suptitle(title or "Example images per class", fontsize=11, y=1 - 0.15 / height)
    fig.savefig(Path(path), dpi=DPI)
    plt.close(fig)
    return Path(path)


def history_png(history: pd.DataFrame, out: str | Path, title: str = "") -> None:
    """PNG of loss, accuracy and validation macro-F1 per epoch (a MODEL_DIR's history.png)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epoch = history["epoch"]
    panels = (
        ("loss", [("loss", "train"), ("val_loss", "val")]),
        ("accuracy", [("accuracy", "train (balanced batches)"), ("val_accuracy", "val")]),
        ("val macro-F1", [("val_macro_f1", "val")]),
    )
    for ax, (name, series) in zip(axes, panels, strict=True):
        for column, label in series:
            if column in history and history[column].notna().any():
                ax.plot(epoch, history[column], marker=".", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if "val_macro_f1" in history and history["val_macro_f1"].notna().any():
        best = int(history["val_macro_f1"].to_numpy().argmax())
        axes[2].axvline(epoch.iloc[best], color="grey", ls="--", lw=1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
