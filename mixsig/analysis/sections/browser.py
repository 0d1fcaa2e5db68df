"""The sample browser: every analysed sample in one sortable, filterable table inside report.html; a click opens the
sample (full text, every subset's prediction side by side, gate / attention weights where the head has them, votes,
its audio and video segment playable in the page) (report.json ``browser``: what was embedded, the sizes).

The rows are one inline JSON blob (``<script type="application/json">``, ``<`` ``>`` ``&`` written as ``\\u003c``
``\\u003e`` ``\\u0026``, so no text can end the script) rendered by a small inline script: no network, no library.
Media of the :data:`Context.embed_media <mixsig.analysis._context.Context>` most misled and most ambiguous samples
(taken in turn from :func:`~mixsig.analysis.sections.top.ranked_misled` and
:func:`~mixsig.analysis.sections.top.ranked_ambiguous`) are cut to their ``start``–``end`` segment and embedded as
``data:`` URIs (:mod:`mixsig.analysis._media`); every other sample's media is linked by its path relative to the
report's folder, with a ``#t=start,end`` media fragment, so the browser plays only the segment while the corpus stays
where it was.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from urllib.parse import quote

import numpy as np

from mixsig.analysis import _media
from mixsig.analysis._context import Context
from mixsig.analysis.sections.attribution import _without
from mixsig.analysis.sections.top import ranked_ambiguous, ranked_misled

log = logging.getLogger(__name__)


def _r(x, nd=4):
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def _votes(ctx: Context, i: int) -> str:
    v = ctx.votes[i]
    v = v[v >= 0]
    counts = np.bincount(v, minlength=ctx.n_classes) if v.size else np.zeros(ctx.n_classes, int)
    return " · ".join(f"{ctx.inp.classes[k]} {int(c)}" for k, c in enumerate(counts) if c)


def _misleading(ctx: Context) -> np.ndarray | None:
    """Per analysed sample, the modalities whose removal fixes it (attribution section): misled samples only,
    ``"none"`` for a misled sample no single removal fixes, ``""`` for the others; None without attribution."""
    without, missing = _without(ctx)
    if not ctx.unimodal or missing:
        return None
    out = np.full(ctx.rows.size, "", dtype=object)
    misled = np.flatnonzero(ctx.category == "misled")
    for i in misled:
        out[i] = " ".join(m for m, s in without.items() if ctx.agg[s].pred[i] == ctx.y[i]) or "none"
    return out


def _columns(ctx: Context) -> tuple[list[dict], list[list]]:
    """The table's columns ``[{key, label, type}]`` (type ``s`` text, ``n`` number) and its rows."""
    inp, rows, cls = ctx.inp, ctx.rows, ctx.inp.classes
    cols: list[tuple[str, str, list]] = [
        ("id", "s", inp.ids[rows].tolist()), ("split", "s", inp.split[rows].tolist()),
        ("label", "s", [cls[k] for k in ctx.y])]
    full_pred = ctx.agg[ctx.full].pred
    for name in ctx.subsets:
        a = ctx.agg[name]
        cols.append((f"pred[{name}]", "s", [cls[k] for k in a.pred]))
        cols.append((f"conf[{name}]", "n", [_r(x) for x in a.mean_probs.max(axis=1)]))
    agree = np.sum([ctx.agg[s].pred == full_pred for s in ctx.subsets], axis=0)
    n_sub = len(ctx.subsets)
    cols.append(("agreement", "s", ["all agree" if k == n_sub else f"{k} of {n_sub} agree" for k in agree]))
    cols.append(("category", "s", [str(c) for c in ctx.category]))
    mis = _misleading(ctx)
    if mis is not None:
        cols.append(("misleading", "s", [str(m) for m in mis]))
    if ctx.unimodal:
        cols.append(("followed", "s", [str(f) for f in ctx.followed]))
    if ctx.votes.shape[1]:
        cols.append(("entropy", "n", [_r(x) for x in ctx.entropy]))
        cols.append(("votes", "s", [_votes(ctx, i) for i in range(rows.size)]))
    for k, v in ctx.descriptors.items():
        cols.append((f"desc[{k}]", "n", [_r(x) for x in v]))
    head = [{"key": k, "type": t} for k, t, _ in cols]
    return head, [list(r) for r in zip(*(c[2] for c in cols))]


def _weights(ctx: Context, i: int) -> dict:
    mods = ctx.full.split("+")
    out = {}
    for kind, store in (("gates", ctx.inp.gates), ("attention", ctx.inp.attention)):
        arr = store.get(ctx.full)
        if arr is not None:
            w = arr[:, ctx.rows[i], :].mean(axis=0)
            out[kind] = {m: _r(w[j]) for j, m in enumerate(mods)}
    return out


def _embed_order(ctx: Context, has_media: np.ndarray) -> list[int]:
    """The samples whose media are embedded: most misled and most ambiguous in turn, those with media only."""
    picked: dict[int, None] = {}
    mis, amb = [i for i in ranked_misled(ctx) if has_media[i]], [i for i in ranked_ambiguous(ctx) if has_media[i]]
    for k in range(max(len(mis), len(amb))):
        for lst in (mis, amb):
            if k < len(lst) and len(picked) < ctx.embed_media:
                picked.setdefault(int(lst[k]), None)
    return list(picked)


def _sample_media(ctx: Context, i: int, embed: bool, failed: dict) -> dict:
    """``{modality: {"file" | "src", "start", "end", "embedded", "bytes"?, "why"?}}`` of sample ``i``."""
    inp, row = ctx.inp, ctx.rows[i]
    start, end = float(inp.start[row]), float(inp.end[row])
    out = {}
    for kind, paths, cut, mime in (("audio", inp.audio, _media.cut_audio, _media.AUDIO_MIME),
                                   ("video", inp.video, _media.cut_video, _media.VIDEO_MIME)):
        rel = str(paths[row])
        if not rel:
            continue
        entry = {"start": _r(start, 3), "end": _r(end, 3), "embedded": False}
        if inp.media_root is None:
            entry["why"] = "no media root is known (pass --media-root DIR)"
            out[kind] = entry
            continue
        path = Path(inp.media_root) / rel
        entry["file"] = str(path.resolve())
        if not path.is_file():
            entry["why"] = f"{path} not found"
        elif embed:
            try:
                data = cut(path, start, end)
                entry.update(src=_media.data_uri(data, mime), embedded=True, bytes=len(data))
                del entry["file"]
            except Exception as exc:  # one unreadable file must not stop the report: it is linked instead
                failed[f"{inp.ids[row]} ({kind})"] = f"{exc}"
                log.warning("browser: could not embed %s: %s", path, exc)
        out[kind] = entry
    return out


def compute(ctx: Context) -> dict:
    inp, rows = ctx.inp, ctx.rows
    has_media = (np.char.str_len(inp.audio[rows]) + np.char.str_len(inp.video[rows])) > 0
    order = _embed_order(ctx, has_media) if ctx.embed_media > 0 else []
    embed = set(order)
    head, table = _columns(ctx)
    failed: dict[str, str] = {}
    details = []
    for i in range(rows.size):
        probs = {s: [_r(p) for p in ctx.agg[s].mean_probs[i]] for s in ctx.subsets}
        details.append({"text": str(inp.text[rows[i]]), "probs": probs, "weights": _weights(ctx, i),
                        "media": _sample_media(ctx, i, i in embed, failed) if has_media[i] else {}})
    embedded = [str(inp.ids[rows[i]]) for i in order
                if any(m.get("embedded") for m in details[i]["media"].values())]
    media_bytes = sum(m.get("bytes", 0) for d in details for m in d["media"].values())
    summary = {"n_samples": int(rows.size), "columns": [c["key"] for c in head], "embed_media": int(ctx.embed_media),
               "embedded": embedded, "embedded_bytes": int(media_bytes),
               "n_linked": int(sum(1 for d in details if d["media"] and not any(
                   m.get("embedded") for m in d["media"].values()))),
               "n_without_media": int((~has_media).sum()), "embed_failed": failed,
               "media_root": str(inp.media_root) if inp.media_root else None}
    data = {"classes": list(inp.classes), "subsets": list(ctx.subsets), "full": ctx.full, "columns": head,
            "rows": table, "details": details}
    return {"browser": summary, "browser_data": data}


def _links(data: dict, report_dir) -> dict:
    """``data`` with every linked medium's ``file`` replaced by ``src``: its path relative to ``report_dir``
    (URL-quoted, with a ``#t=start,end`` fragment when the segment is known)."""
    details = []
    for d in data["details"]:
        media = {}
        for kind, m in d["media"].items():
            m = dict(m)
            f = m.pop("file", None)
            if f is not None:
                rel = Path(os.path.relpath(f, report_dir)).as_posix() if report_dir else Path(f).as_uri()
                frag = f"#t={m['start']:g},{m['end']:g}" if m["start"] is not None and m["end"] is not None else ""
                m["src"] = (quote(rel) if report_dir else rel) + frag
            media[kind] = m
        details.append({**d, "media": media})
    return {**data, "details": details}


def page_json(data: dict) -> str:
    """``data`` as JSON safe inside ``<script type="application/json">``: ``< > &`` and the two JavaScript line
    separators are written as ``\\uXXXX`` escapes (``JSON.parse`` gives the same strings back)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def statement(summary: dict) -> str:
    """What the page (and stderr) says was embedded and linked."""
    emb = summary["embedded"]
    if summary["n_without_media"] == summary["n_samples"]:
        return f"{summary['n_samples']} samples; none has audio or video."
    lines = [f"{summary['n_samples']} samples. Media embedded (the segment, WebM Opus / VP8) for {len(emb)} of the "
             f"most misled and ambiguous samples (--embed-media {summary['embed_media']}; {_mb(summary['embedded_bytes'])})"
             + (f": {', '.join(emb)}" if emb else "") + "."]
    if summary["n_linked"]:
        lines.append(f"Media of {summary['n_linked']} {'other ' if emb else ''}samples are linked by their path relative to this "
                     f"report's folder (corpus: {summary['media_root'] or 'unknown'}); they play while the corpus "
                     "stays there, the link's #t=start,end fragment playing only the segment.")
    if summary["embed_failed"]:
        lines.append("Not embedded (linked instead): " + "; ".join(f"{k}: {v}" for k, v in
                                                                    summary["embed_failed"].items()) + ".")
    return " ".join(lines)


def blocks(report: dict, figures: dict) -> list[tuple]:
    summary, data = report.get("browser"), report.get("browser_data")
    b: list[tuple] = [("h2", "Sample browser")]
    if not summary or data is None:
        return b + [("skip", "Skipped: no per-sample data.")]
    data = _links(data, report.get("report_dir"))
    fill = {"@STATEMENT@": _esc(statement(summary)), "@DATA@": page_json(data), "@SCRIPT@": _SCRIPT}
    # one pass over the template: a placeholder's text inside a filled-in value (an id "@DATA@") stays text
    html_text = _PLACEHOLDER.sub(lambda m: fill[m.group(0)], _HTML)
    fallback = (f"The sample browser (every analysed sample, sortable and filterable, with its media) is in "
                f"report.html. {statement(summary)}")
    return b + [("html", html_text, fallback)]


def figures(report: dict) -> dict:
    return {}


def _esc(text: str) -> str:
    import html

    return html.escape(text)


_PLACEHOLDER = re.compile("@STATEMENT@|@DATA@|@SCRIPT@")

_HTML = """<div id='mx-browser'><p class='note' id='mx-statement'>@STATEMENT@ <span id='mx-size'>This file: <!--mixsig:page-size-->.</span></p>
<div class='mx-filters'><label>category <select id='mx-f-category'></select></label>
<label>label <select id='mx-f-label'></select></label> <label>subset agreement <select id='mx-f-agreement'></select></label>
<label>text <input id='mx-f-text' type='search' placeholder='id, text, prediction…'></label> <span id='mx-count'></span></div>
<div id='mx-detail' hidden></div><div class='mx-scroll'><table id='mx-table'><thead><tr id='mx-head'></tr></thead>
<tbody id='mx-rows'></tbody></table></div>
<button id='mx-more' type='button' hidden>show 200 more</button> <button id='mx-all' type='button' hidden>show all</button></div>
<style>.mx-scroll{max-height:32em;overflow:auto}#mx-table th{cursor:pointer;position:sticky;top:0}
#mx-rows tr{cursor:pointer}#mx-table td{white-space:nowrap}#mx-rows tr.mx-sel{background:#d0ebff}#mx-rows tr:hover{background:#e7f5ff}.mx-filters label{margin-right:.8em}
#mx-detail{border:2px solid #339af0;padding:.5em 1em;margin:.6em 0;background:#f8f9fa}#mx-detail .mx-text{white-space:pre-wrap}
#mx-detail video{width:192px;image-rendering:pixelated}</style>
<script type='application/json' id='mx-data'>@DATA@</script><script>@SCRIPT@</script>"""

_SCRIPT = r"""(function () {
  var D = JSON.parse(document.getElementById('mx-data').textContent), C = D.columns, R = D.rows;
  var sortCol = -1, dir = 1, order = R.map(function (_, i) { return i; }), STEP = 200, limit = STEP;
  function $(id) { return document.getElementById(id); }
  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]; });
  }
  function fmt(v, t) { return v == null ? '–' : (t === 'n' ? Number(v).toFixed(3) : v); }
  function col(k) { for (var j = 0; j < C.length; j++) if (C[j].key === k) return j; return -1; }
  var hay = R.map(function (r, i) {  // what the text filter searches: every text cell and the full text
    return (r.filter(function (v) { return typeof v === 'string'; }).join(' ') + ' ' + D.details[i].text).toLowerCase();
  });
  $('mx-head').innerHTML = C.map(function (c, j) {
    return '<th data-key="' + esc(c.key) + '" data-j="' + j + '">' + esc(c.key) + '</th>'; }).join('');
  function fill(id, k) {  // a filter's options: the column's values, with their counts
    var j = col(k), s = $(id), v = {};
    if (j < 0) { s.parentNode.hidden = true; return; }
    R.forEach(function (r) { v[r[j]] = (v[r[j]] || 0) + 1; });
    s.innerHTML = '<option value="">all</option>' + Object.keys(v).sort().map(function (x) {
      return '<option value="' + esc(x) + '">' + esc(x) + ' (' + v[x] + ')</option>'; }).join('');
    s.onchange = redraw;
  }
  function redraw() { limit = STEP; draw(); }  // a new filter or order: its first rows
  fill('mx-f-category', 'category'); fill('mx-f-label', 'label'); fill('mx-f-agreement', 'agreement');
  $('mx-f-text').oninput = redraw;
  $('mx-more').onclick = function () { limit += STEP; draw(); };
  $('mx-all').onclick = function () { limit = R.length; draw(); };
  function draw() {
    var f = [['category', $('mx-f-category').value], ['label', $('mx-f-label').value],
             ['agreement', $('mx-f-agreement').value]]
      .filter(function (x) { return x[1] !== ''; }).map(function (x) { return [col(x[0]), x[1]]; });
    var q = $('mx-f-text').value.toLowerCase(), out = [], n = 0;
    for (var o = 0; o < order.length; o++) {
      var i = order[o], r = R[i], ok = true;
      for (var k = 0; k < f.length; k++) if (r[f[k][0]] !== f[k][1]) { ok = false; break; }
      if (!ok || (q && hay[i].indexOf(q) < 0)) continue;
      if (n++ >= limit) continue;  // counted, not drawn: a page of thousands of rows would take seconds to lay out
      out.push('<tr data-i="' + i + '">' + r.map(function (v, j) {
        var t = C[j].type; return '<td' + (t === 'n' ? '' : ' class="t"') + '>' + esc(fmt(v, t)) + '</td>'; }).join('') + '</tr>');
    }
    $('mx-rows').innerHTML = out.join('');
    $('mx-count').textContent = n + ' matching of ' + R.length + ' samples' +
      (n > limit ? ', the first ' + limit + ' shown' : '');
    $('mx-more').hidden = $('mx-all').hidden = n <= limit;
  }
  $('mx-head').onclick = function (e) {  // sort by the clicked column; again: the other way; missing values last
    var th = e.target.closest('th'); if (!th) return;
    var j = +th.dataset.j, t = C[j].type;
    dir = sortCol === j ? -dir : 1; sortCol = j;
    order.sort(function (a, b) {
      var x = R[a][j], y = R[b][j];
      if (x == null || y == null) return x == null && y == null ? a - b : (x == null ? 1 : -1);
      var c = t === 'n' ? x - y : String(x).localeCompare(String(y));
      return c ? dir * c : a - b;
    });
    Array.prototype.forEach.call($('mx-head').children, function (h, k) {
      h.textContent = C[k].key + (k === j ? (dir > 0 ? ' ▲' : ' ▼') : ''); });
    redraw();
  };
  $('mx-rows').onclick = function (e) { var tr = e.target.closest('tr'); if (tr) show(+tr.dataset.i); };
  function show(i) {  // the sample: text, every subset's prediction, weights, votes, media
    var d = D.details[i], r = R[i];
    var h = '<h3>' + esc(r[0]) + ' <small>' + esc(r[col('split')]) + ', label ' + esc(r[col('label')]) + ', ' +
      esc(r[col('category')]) + '</small></h3><p class="mx-text">' + esc(d.text) + '</p>' +
      '<table class="mx-preds"><thead><tr><th>subset</th><th>prediction</th><th>confidence</th>' +
      D.classes.map(function (c) { return '<th>p(' + esc(c) + ')</th>'; }).join('') + '</tr></thead><tbody>';
    D.subsets.forEach(function (s) {
      h += '<tr><td class="t">' + esc(s) + (s === D.full ? ' (full)' : '') + '</td><td class="t">' +
        esc(r[col('pred[' + s + ']')]) + '</td><td>' + fmt(r[col('conf[' + s + ']')], 'n') + '</td>' +
        d.probs[s].map(function (v) { return '<td>' + fmt(v, 'n') + '</td>'; }).join('') + '</tr>';
    });
    h += '</tbody></table>';
    ['misleading', 'followed', 'entropy', 'votes'].forEach(function (k) {
      var j = col(k); if (j >= 0 && r[j] !== '') h += '<div>' + k + ': ' + esc(fmt(r[j], C[j].type)) + '</div>'; });
    Object.keys(d.weights).forEach(function (k) {
      h += '<div>' + k + ' weights (full model, seed mean): ' + Object.keys(d.weights[k]).map(function (m) {
        return esc(m) + ' ' + fmt(d.weights[k][m], 'n'); }).join(', ') + '</div>';
    });
    Object.keys(d.media).forEach(function (k) {
      var m = d.media[k], seg = m.start != null ? ' ' + m.start + '–' + m.end + ' s' : '';
      if (!m.src) { h += '<div>' + k + seg + ': not available (' + esc(m.why) + ')</div>'; return; }
      h += '<div class="mx-media">' + k + seg + (m.embedded ? ' (embedded)' : ' (linked: ' + esc(decodeURI(m.src)) + ')') +
        '<br><' + k + ' id="mx-' + k + '" controls preload="metadata" src="' + esc(m.src) + '"></' + k + '></div>';
    });
    var el = $('mx-detail'), old = $('mx-rows').querySelector('.mx-sel'),
        tr = $('mx-rows').querySelector('tr[data-i="' + i + '"]');
    if (old) old.classList.remove('mx-sel');
    if (tr) tr.classList.add('mx-sel');
    el.innerHTML = h; el.hidden = false; el.dataset.i = i; el.scrollIntoView({block: 'nearest'});
    Object.keys(d.media).forEach(function (k) {
      var m = d.media[k], e = $('mx-' + k);
      if (e && !m.embedded && m.end != null) segment(e, m.start, m.end);
    });
  }
  function segment(e, start, end) {  // a linked file: play start-end only (#t= pauses late, on a timeupdate)
    var timer = null;
    e.addEventListener('play', function () {
      if (e.currentTime >= end - 0.01 || e.currentTime < start - 0.01) e.currentTime = start;
      clearInterval(timer);
      timer = setInterval(function () { if (e.currentTime >= end) { e.pause(); e.currentTime = end; } }, 10);
    });
    e.addEventListener('pause', function () { clearInterval(timer); });
  }
  draw();
})();"""
