"""The evaluation report and the prediction gallery as offline HTML pages.

``report.html`` holds the summary with its intervals, a sortable per-class table, the
row-normalised confusion matrix as a heat map (a click on a cell shows the images of that
true/predicted pair) and, per true class, mosaics of its misclassified images and of its
correct images with the lowest and the highest confidence. :func:`gallery_html` is
``predict``'s page: per predicted class, the lowest- and highest-scored images. Each mosaic
shows at most :data:`~plankton_store.report._thumbs.MOSAIC_LIMIT` images; the shared frame,
CSS and script are in :mod:`plankton_store.report._page`.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

import numpy as np
import pandas as pd

from plankton_store.report._page import esc, figure, frame, image_note, toggle_button
from plankton_store.report._thumbs import (
    GALLERY_THUMBS_DIR,
    MOSAIC_LIMIT,
    THUMBS_DIR,
    Pictures,
    Shown,
    pick,
    write_pictures,
)

#: The gallery page ``predict`` writes beside its CSV.
GALLERY_HTML = "gallery.html"

_JS = r"""
(function(){
const data=JSON.parse(document.getElementById('data').textContent);
function figure(r){
  const label=data.rows[r][0],kind=data.rows[r][1],f=document.createElement('figure');
  if(kind){const img=document.createElement('img'),base=data.folder+'/'+r;
    img.src=base+'.png';img.loading='lazy';img.alt=label;
    if(kind===3)img.className='stored';
    if(kind===1){img.dataset.alt=base+'.stored.png';img.title='original image (click: stored)';}
    f.appendChild(img);}
  else{const m=document.createElement('div');m.className='missing';
    m.textContent='no image';f.appendChild(m);}
  const c=document.createElement('figcaption');c.textContent=label;f.appendChild(c);
  return f;
}
document.querySelectorAll('#confusion td.c').forEach(function(td){
  td.addEventListener('click',function(){
    document.querySelectorAll('#confusion td.sel').forEach(function(s){s.classList.remove('sel');});
    td.classList.add('sel');
    const key=td.dataset.i+','+td.dataset.j,rows=data.pairs[key]||[];
    const box=document.getElementById('pair'),mos=document.getElementById('pair-images');
    box.dataset.pair=key;
    document.getElementById('pair-title').textContent='true '+data.classes[td.dataset.i]+
      ', predicted '+data.classes[td.dataset.j]+': '+td.dataset.n+' images'+
      (rows.length<Number(td.dataset.n)?' (showing '+rows.length+')':'');
    mos.replaceChildren.apply(mos,rows.map(figure));
  });
});
})();
"""

_BODY = Template("""$facts
<h2>Summary</h2>
<table id="summary"><tr><th class="name">metric</th><th>value</th><th>$confidence interval</th></tr>
$summary</table>
$notes
<h2>Per class</h2>
<p class="note">Click a column header to sort.</p>
<table id="per-class" class="sortable"><thead><tr><th class="name">class</th><th>support</th>
<th>precision</th><th>recall</th><th>F1</th></tr></thead><tbody>
$per_class</tbody></table>
<h2>Confusion matrix (row-normalised, %)</h2>
<p class="note">Rows: true class; columns: predicted class. Click a cell to see its images
(at most $limit).</p>
$confusion
<div id="pair"><h3 id="pair-title">No cell chosen</h3><div id="pair-images" class="mosaic"></div>
</div>
<h2>Images per class</h2>
<p class="note">Per true class, at most $limit images per mosaic: misclassified (most confident
first), correct with the lowest and with the highest confidence.</p>
$image_note$toggle
$mosaics
""")


def _per_class_rows(per_class: pd.DataFrame) -> str:
    cells = []
    for _, r in per_class.iterrows():
        nums = "".join(
            f'<td data-v="{float(r[k]) if pd.notna(r[k]) else -1:.6g}">'
            f"{'n/a' if pd.isna(r[k]) else (f'{r[k]:.3f}' if k != 'support' else int(r[k]))}"
            "</td>"
            for k in ("support", "precision", "recall", "f1")
        )
        cells.append(f'<tr><td class="name">{esc(r["class"])}</td>{nums}</tr>')
    return "\n".join(cells)


def _confusion_table(counts: np.ndarray, rates: np.ndarray, names: list[str]) -> str:
    head = "".join(f'<th title="{esc(n)}">{j}</th>' for j, n in enumerate(names))
    rows = []
    for i, name in enumerate(names):
        cells = []
        for j in range(len(names)):
            rate = float(rates[i, j]) if counts[i].sum() else 0.0
            hue = "0,110,200" if i == j else "200,40,0"
            text = f"{100 * rate:.0f}" if counts[i, j] else ""
            colour = "#fff" if rate > 0.6 else "#000"
            cells.append(
                f'<td class="c" data-i="{i}" data-j="{j}" data-n="{int(counts[i, j])}" '
                f'title="{esc(name)} as {esc(names[j])}: {int(counts[i, j])}" '
                f'style="background:rgba({hue},{rate:.3f});color:{colour}">{text}</td>'
            )
        rows.append(f'<tr><th class="name">{i} {esc(name)}</th>{"".join(cells)}</tr>')
    return f'<table id="confusion"><tr><th></th>{head}</tr>\n' + "\n".join(rows) + "</table>"


def _choose(y_true: np.ndarray, y_pred: np.ndarray, top: np.ndarray, n_classes: int) -> dict:
    """The rows of every mosaic and of every non-empty confusion cell."""
    mosaics: dict[int, dict[str, np.ndarray]] = {}
    for c in range(n_classes):
        wrong = np.flatnonzero((y_true == c) & (y_pred != c))
        right = np.flatnonzero((y_true == c) & (y_pred == c))
        mosaics[c] = {
            "misclassified": pick(wrong, top, MOSAIC_LIMIT, highest=True),
            "correct, lowest confidence": pick(right, top, MOSAIC_LIMIT, highest=False),
            "correct, highest confidence": pick(right, top, MOSAIC_LIMIT, highest=True),
        }
    pairs = {}
    for i, j in zip(*np.nonzero(np.ones((n_classes, n_classes))), strict=True):
        rows = np.flatnonzero((y_true == i) & (y_pred == j))
        if len(rows):
            pairs[f"{i},{j}"] = pick(rows, top, MOSAIC_LIMIT, highest=True)
    return {"mosaics": mosaics, "pairs": pairs}


def evaluation_html(
    title: str,
    facts: list[str],
    summary_rows: list[tuple[str, str, str]],
    confidence: str,
    notes: list[str],
    per_class: pd.DataFrame,
    counts: np.ndarray,
    rates: np.ndarray,
    labels: tuple[np.ndarray, np.ndarray, np.ndarray],
    class_names: list[str],
    out_dir: Path,
    pictures: Pictures,
) -> str:
    """The evaluation page; writes the thumbnails it shows into ``out_dir/thumbs``.

    Parameters
    ----------
    title, facts, summary_rows, confidence, notes
        Heading, lines under it, ``(metric, value, interval)`` rows, the interval's level
        (``"95%"``) and notes, all as plain text.
    per_class
        Columns ``class, support, precision, recall, f1``.
    counts, rates
        The confusion matrix and its row-normalised rates.
    labels
        ``(y_true, y_pred, probability of the prediction)`` of every scored row.
    class_names
        Names of the class codes.
    out_dir
        Report folder (the page's folder).
    pictures
        The original and stored images of scored rows; with neither, "no image" takes the
        place of the thumbnails.

    Returns
    -------
    str
        The page.
    """
    y_true, y_pred, top = labels
    chosen = _choose(y_true, y_pred, top, len(class_names))
    every = [r for m in chosen["mosaics"].values() for rows in m.values() for r in rows]
    every += [r for rows in chosen["pairs"].values() for r in rows]
    every = np.unique(np.asarray(every, dtype=np.int64))
    shown = write_pictures(every, pictures, out_dir, THUMBS_DIR)

    def caption(r: int) -> str:
        return f"{class_names[y_true[r]]} → {class_names[y_pred[r]]} {top[r]:.2f}"

    mosaics = []
    for c, groups in chosen["mosaics"].items():
        mosaics.append(f'<h3 id="class-{c}">{esc(class_names[c])}</h3>')
        for what, rows in groups.items():
            figures = "".join(figure(caption(r), shown.get(int(r))) for r in rows)
            mosaics.append(
                f"<h4>{esc(what)} ({len(rows)})</h4>"
                f'<div class="mosaic" data-class="{c}" data-kind="{esc(what)}">{figures}</div>'
            )
    rows = sorted({int(r) for rows in chosen["pairs"].values() for r in rows})
    data = {
        "classes": class_names,
        "pairs": {k: [int(r) for r in v] for k, v in chosen["pairs"].items()},
        "folder": THUMBS_DIR,
        "rows": {r: [caption(r), _kind(shown.get(r))] for r in rows},
    }
    if pictures.originals is None and pictures.stored is None:
        note = (
            '<p class="note" id="image-note">The images of this evaluation are not readable'
            ' (a store that was moved): thumbnails show as "no image".</p>'
        )
    else:
        note = image_note(shown, len(every), pictures.note)
    body = _BODY.substitute(
        facts="<ul>" + "".join(f"<li>{esc(f)}</li>" for f in facts) + "</ul>",
        confidence=esc(confidence),
        summary="\n".join(
            f'<tr><td class="name">{esc(m)}</td><td>{esc(v)}</td><td>{esc(i)}</td></tr>'
            for m, v, i in summary_rows
        ),
        notes="".join(f'<p class="note">{esc(n)}</p>' for n in notes),
        per_class=_per_class_rows(per_class),
        confusion=_confusion_table(counts, rates, class_names),
        limit=MOSAIC_LIMIT,
        image_note=note,
        toggle=toggle_button(shown),
        mosaics="\n".join(mosaics),
    )
    return frame(title, body, data, _JS)


def _kind(shown: Shown | None) -> int:
    """What the page script shows for a row (files ``<row>.png``, ``<row>.stored.png``):
    0 nothing, 1 the original with its stored version, 2 the original only, 3 the stored."""
    if shown is None:
        return 0
    return 3 if shown.stored else (1 if shown.alt else 2)


_GALLERY = Template("""<p class="note">$n images in $k predicted classes. Per predicted class,
at most $limit images with the lowest score (where intruders show) and $limit with the
highest; each captioned with its predicted class and score, and its label where the source
has labels.</p>
$image_note
<ul>$index</ul>
$mosaics
""")


def gallery_html(title: str, predictions: pd.DataFrame, out_dir: Path, pictures: Pictures) -> str:
    """The gallery page of ``predict``; writes its thumbnails into ``out_dir/gallery-thumbs``.

    Parameters
    ----------
    title
        Heading (plain text).
    predictions
        ``predict``'s rows: ``predicted``, ``probability`` and, when labelled, ``label``;
        with thresholds, ``best_guess`` (an ``unclassified`` row's caption names it).
    out_dir
        Folder of the page.
    pictures
        Original images of rows (positions in ``predictions``).

    Returns
    -------
    str
        The page.
    """
    score = predictions["probability"].to_numpy(dtype=float)
    predicted = predictions["predicted"].astype(str).to_numpy()
    labels = None
    if "label" in predictions:  # an unlabelled row of a labelled source reads "(no label)"
        labels = predictions["label"].astype(object).fillna("(no label)").astype(str).to_numpy()
    guess = predictions.get("best_guess")
    guess = guess.astype(str).to_numpy() if guess is not None else predicted
    classes = sorted(set(predicted))
    chosen = {}
    for name in classes:
        rows = np.flatnonzero(predicted == name)
        low = pick(rows, score, MOSAIC_LIMIT, highest=False)
        high = pick(np.setdiff1d(rows, low), score, MOSAIC_LIMIT, highest=True)[::-1]
        chosen[name] = {"lowest score": low, "highest score": high}
    every = [r for groups in chosen.values() for rows in groups.values() for r in rows]
    every = np.unique(np.asarray(every, dtype=np.int64))
    shown = write_pictures(every, pictures, out_dir, GALLERY_THUMBS_DIR)

    def caption(r: int) -> str:
        label = f"{labels[r]} → " if labels is not None else ""
        unsure = f" (best guess {guess[r]})" if guess[r] != predicted[r] else ""
        return f"{label}{predicted[r]}{unsure} {score[r]:.2f}"

    mosaics = []
    for c, (name, groups) in enumerate(chosen.items()):
        n = int((predicted == name).sum())
        mosaics.append(f'<h2 id="class-{c}">{esc(name)} ({n})</h2>')
        for what, rows in groups.items():
            if not len(rows):  # a class of at most MOSAIC_LIMIT images is all "lowest"
                continue
            figures = "".join(figure(caption(r), shown.get(int(r))) for r in rows)
            mosaics.append(
                f"<h4>{esc(what)} ({len(rows)})</h4>"
                f'<div class="mosaic" data-class="{esc(name)}">{figures}</div>'
            )
    index = "".join(
        f'<li><a href="#class-{c}">{esc(name)}</a> ({int((predicted == name).sum())})</li>'
        for c, name in enumerate(classes)
    )
    body = _GALLERY.substitute(
        n=len(predictions),
        k=len(classes),
        limit=MOSAIC_LIMIT,
        image_note=image_note(shown, len(every), pictures.note),
        index=index,
        mosaics="\n".join(mosaics),
    )
    return frame(title, body)
