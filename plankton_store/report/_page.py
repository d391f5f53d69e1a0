"""What every HTML page of the reports shares: CSS, JavaScript, figures and the page frame.

Pages are one file each, with inline CSS and JavaScript, that load nothing from the network
and open straight from disk. The shared script

- sorts every ``table.sortable`` by the clicked header (again: reversed); a cell's
  ``data-v`` is its numeric sort key;
- swaps an image with its ``data-alt`` on a click (the original image and the stored, resized
  one), and the ``#toggle-all`` button swaps every image of the page;
- replaces an image that fails to load (a moved or deleted file) by the text
  ``missing: <file>`` and lists the missing files at the top of the page (``#missing``).
"""

from __future__ import annotations

import html
import json
from string import Template
from typing import Any

from plankton_store.report._thumbs import Shown

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}
table.sortable th{cursor:pointer}
th[data-order=asc]::after{content:" \\25B2"}
th[data-order=desc]::after{content:" \\25BC"}
td.name,th.name{text-align:left}
#confusion td.c{min-width:2.2em;cursor:pointer}
#confusion td.c.sel{outline:2px solid #d00}
.mosaic{display:flex;flex-wrap:wrap;gap:4px;margin:.3em 0 1em;align-items:flex-end}
figure{margin:0;min-width:96px;max-width:120px;font-size:11px;text-align:center;
  border:1px solid #ddd;padding:2px}
figure img{max-width:96px;max-height:96px;background:#000;vertical-align:bottom}
figure img.stored{width:64px;image-rendering:pixelated}
figure img[data-alt]{cursor:pointer}
.missing{color:#a00;font-size:11px}
#missing{color:#a00;border:1px solid #a00;padding:4px 8px}
.note{color:#555}
svg.hist{background:#fafafa;border:1px solid #ddd;margin:0 .5em .5em 0}
"""

JS = r"""
(function(){
function swap(img){const alt=img.dataset.alt;if(!alt)return;
  img.dataset.alt=img.getAttribute('src');img.src=alt;
  const stored=!img.classList.contains('stored');img.classList.toggle('stored',stored);
  img.title=stored?'stored image (click: original)':'original image (click: stored)';}
window.plankton={swap:swap};
document.addEventListener('click',function(e){const t=e.target;
  if(t.tagName==='IMG'&&t.dataset.alt)swap(t);});
const all=document.getElementById('toggle-all');
if(all){all.addEventListener('click',function(){
  const stored=all.dataset.showing!=='stored';all.dataset.showing=stored?'stored':'original';
  document.querySelectorAll('img[data-alt]').forEach(function(img){
    if(img.classList.contains('stored')!==stored)swap(img);});
  all.textContent=stored?'Show the original images':'Show the stored images';});}
document.querySelectorAll('table.sortable th').forEach(function(th){
  th.addEventListener('click',function(){
    const col=th.cellIndex,body=th.closest('table').tBodies[0],asc=th.dataset.order!=='asc';
    th.closest('tr').querySelectorAll('th').forEach(function(o){delete o.dataset.order;});
    th.dataset.order=asc?'asc':'desc';
    const key=function(tr){const c=tr.cells[col];
      return c.dataset.v!==undefined?Number(c.dataset.v):c.textContent;};
    const rows=Array.from(body.rows).sort(function(a,b){const x=key(a),y=key(b);
      const d=typeof x==='number'?x-y:String(x).localeCompare(String(y));return asc?d:-d;});
    rows.forEach(function(r){body.appendChild(r);});
  });
});
const gone=[];
document.addEventListener('error',function(e){const t=e.target;
  if(t.tagName!=='IMG')return;const src=t.getAttribute('src'),m=document.createElement('div');
  m.className='missing';m.textContent='missing: '+src;t.replaceWith(m);gone.push(src);
  const box=document.getElementById('missing');if(!box)return;box.hidden=false;
  box.textContent=gone.length+' image file'+(gone.length>1?'s are':' is')+
    ' missing (the report folder was moved without them, or they were deleted): '+
    gone.slice(0,20).join(', ')+(gone.length>20?' and '+(gone.length-20)+' more':'');},true);
})();
"""

_FRAME = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,">
<title>$title</title><style>$css</style></head>
<body>
<h1>$title</h1>
<p id="missing" hidden></p>
$body
$data<script>$js</script>
</body></html>
""")


def esc(value: object) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def frame(title: str, body: str, data: Any = None, script: str = "") -> str:
    """A whole page: ``body`` (HTML) under an ``<h1>`` of ``title`` (plain text).

    ``data`` (JSON-able) goes into ``<script id="data">`` for ``script``, which runs after
    the shared script.
    """
    blob = (
        '<script type="application/json" id="data">'
        + json.dumps(data).replace("</", "<\\/")
        + "</script>\n"
        if data is not None
        else ""
    )
    return _FRAME.substitute(title=esc(title), css=CSS, body=body, data=blob, js=JS + script)


def figure(caption: str, shown: Shown | None, missing: str = "no image") -> str:
    """One captioned thumbnail: ``shown`` from :func:`~._thumbs.write_pictures`, or the text
    ``missing`` where the image could not be read."""
    if shown is None:
        image = f'<div class="missing">{esc(missing)}</div>'
    else:
        alt = (
            f' data-alt="{esc(shown.alt)}" title="original image (click: stored)"'
            if shown.alt
            else ""
        )
        kind = ' class="stored"' if shown.stored else ""
        image = f'<img src="{esc(shown.src)}"{kind}{alt} loading="lazy" alt="{esc(caption)}">'
    return f"<figure>{image}<figcaption>{esc(caption)}</figcaption></figure>"


def toggle_button(shown: dict[int, Shown]) -> str:
    """The "show the stored images" button, where some image has a stored version."""
    if not any(s.alt for s in shown.values()):
        return ""
    return '<p><button id="toggle-all" type="button">Show the stored images</button></p>'


def image_note(shown: dict[int, Shown], wanted: int, note: str) -> str:
    """The paragraph that says where the thumbnails come from and what could not be shown."""
    originals = sum(1 for s in shown.values() if not s.stored)
    parts = []
    if originals:
        parts.append(
            "Thumbnails are the original images (at most 96 pixels a side); click one to see"
            " the stored version the model was given, and again to go back."
            if any(s.alt for s in shown.values())
            else "Thumbnails are the original images (at most 96 pixels a side)."
        )
    if len(shown) > originals:
        parts.append(
            f"{len(shown) - originals} thumbnails are the stored (resized) images: their"
            " original is not reachable."
        )
    if wanted > len(shown):
        k = wanted - len(shown)
        parts.append(f'{k} image{"s" * (k > 1)} could not be read: "no image" in their place.')
    if note:
        parts.append(note)
    return f'<p class="note" id="image-note">{esc(" ".join(parts))}</p>' if parts else ""
