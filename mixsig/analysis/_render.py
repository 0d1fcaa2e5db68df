"""``write_report``: report.html (self-contained), report.md, report.json and samples.csv.

Page assembly only: the sections (``mixsig.analysis.sections``) make their figures and their blocks
(headings, paragraphs, tables, figures); the page is their blocks in order, rendered to HTML and Markdown
from the same blocks, so both show the same numbers; report.json holds every number. Every text is escaped
for its page (``html.escape`` for report.html, :func:`md_text`/:func:`md_cell` for report.md), so ids, texts,
labels and names from a manifest show as text; samples.csv marks its formula-like text cells
(:func:`mixsig.analysis.sections.samples.write_csv`).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from pathlib import Path


from mixsig.analysis import sections
from mixsig.jsonutil import jsonable

log = logging.getLogger(__name__)

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#212529;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #dee2e6;padding-bottom:.3em}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #dee2e6}table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #dee2e6;padding:.25em .55em;text-align:right}th{background:#f1f3f5}
td:first-child,th:first-child,td.t{text-align:left}figure{margin:1em 0}figcaption{font-size:.85em;color:#495057}
img{max-width:100%}.note{background:#fff9db;border-left:4px solid #fab005;padding:.4em .8em;margin:.4em 0}
.skip{background:#f1f3f5;border-left:4px solid #868e96;padding:.4em .8em;margin:.4em 0}
.warn{background:#fff5f5;border-left:6px solid #e03131;color:#c92a2a;font-weight:600;padding:.4em .8em;margin:.4em 0}
"""


#: The order of report.json's ``figures`` (version 1 of the report); a section's figure not named here follows.
FIGURE_ORDER = ("metrics", "disagreement", "confidence", "dominance", "uncertainty", "human", "descriptors", "layers",
                "dynamics")


def _td(c) -> str:
    text = str(c)
    numeric = text[:1].isdigit() or text[:2] in ("-0", "-1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9") or text == "–"
    return f"<td>{html.escape(text)}</td>" if numeric else f"<td class='t'>{html.escape(text)}</td>"


def _render_html(blocks, title) -> str:
    def inline(text):
        t = html.escape(text)
        parts = t.split("**")
        return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))

    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    for blk in blocks:
        kind = blk[0]
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{html.escape(blk[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{inline(blk[1])}</p>")
        elif kind in ("note", "skip"):
            out.append(f"<div class='{kind}'>{inline(blk[1])}</div>")
        elif kind == "warn":
            out.append(f"<div class='warn' role='alert'>WARNING: {inline(blk[1])}</div>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in blk[1])
            body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in blk[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(blk[1]).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(blk[2])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(blk[2])}</figcaption></figure>")
        elif kind == "html":  # raw HTML a section built with every text escaped (the sample browser)
            out.append(blk[1])
    out.append("</body></html>")
    return "\n".join(out)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def md_text(text) -> str:
    """``text`` made inert for report.md, which renders user-supplied strings (ids, texts, labels, class, run,
    subset and column names) as they are: HTML's ``& < >`` become entities (a ``<script>`` or ``<img onerror>``
    shows as text, as in report.html), line breaks become spaces (a string cannot end its heading, note or
    table row and start a block of its own), and ``](`` becomes ``]\\(`` (no inline link or image: a
    ``![](http://...)`` fetches nothing). ``**bold**`` and `` `code` `` from the sections stay markup."""
    t = html.escape(str(text), quote=False)
    return _LINE_BREAK.sub(" ", t).replace("](", "]\\(")


def md_cell(text) -> str:
    """:func:`md_text` for a table cell, with ``\\`` and ``|`` escaped too: a cell cannot split into two."""
    return md_text(str(text).replace("\\", "\\\\").replace("|", "\\|"))


def _render_md(blocks) -> str:
    out = []
    for blk in blocks:
        kind = blk[0]
        text = md_text(blk[1]) if kind in ("h1", "h2", "p", "note", "warn", "skip") else None
        if kind == "h1":
            out.append(f"# {text}\n")
        elif kind == "h2":
            out.append(f"## {text}\n")
        elif kind == "p":
            out.append(text + "\n")
        elif kind == "note":
            out.append(f"> Note: {text}\n")
        elif kind == "warn":
            out.append(f"> **WARNING:** {text}\n")
        elif kind == "skip":
            out.append(f"> {text}\n")
        elif kind == "table":
            out.append("| " + " | ".join(md_cell(h) for h in blk[1]) + " |")
            out.append("|" + "---|" * len(blk[1]))
            out.extend("| " + " | ".join(md_cell(c) for c in r) + " |" for r in blk[2])
            out.append("")
        elif kind == "img":
            out.append(f"*Figure: {md_text(blk[2])} (embedded in report.html).*\n")
        elif kind == "html":
            out.append(md_text(blk[2]) + "\n")
    return "\n".join(out)


def _figures(result: dict) -> dict[str, tuple[bytes, str]]:
    """Every section's figures ``{name: (png, caption)}``, in :data:`FIGURE_ORDER`."""
    made: dict[str, tuple[bytes, str]] = {}
    for section in sections.PAGE:
        made.update(section.figures(result))
    order = [n for n in FIGURE_ORDER if n in made] + [n for n in made if n not in FIGURE_ORDER]
    return {n: made[n] for n in order}


def _blocks(result: dict, figures: dict[str, tuple[bytes, str]]) -> list[tuple]:
    """The page: every section's blocks, in :data:`mixsig.analysis.sections.PAGE` order."""
    return [blk for section in sections.PAGE for blk in section.blocks(result, figures)]


#: Where report.html states its own size (the sample browser's statement); replaced by :func:`_with_size`.
PAGE_SIZE = "<!--mixsig:page-size-->"  # no escaped text can hold "<" raw: only a section's own markup
#: Entries of the analysis result that are not written to report.json (per-sample data: samples.csv, the page).
NOT_IN_JSON = ("samples", "browser_data")


def size_text(n: int) -> str:
    """A file size as the report states it: ``1,234,567 bytes (1.23 MB)``."""
    return f"{n:,} bytes ({n / 1e6:.2f} MB)"


def _with_size(page: str) -> str:
    """``page`` with :data:`PAGE_SIZE` replaced by the UTF-8 size of the finished page (a fixed point: the
    stated number counts its own digits)."""
    if PAGE_SIZE not in page:
        return page
    base = len(page.encode("utf-8")) - len(PAGE_SIZE)
    n = base
    for _ in range(5):
        n = base + len(size_text(n))
    return page.replace(PAGE_SIZE, size_text(n), 1)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(result: dict, out_dir, plots: bool = True) -> dict[str, Path]:
    """Write ``report.html`` (self-contained: CSS inline, figures as base64 PNG), ``report.md``,
    ``report.json`` (every number; per-sample data is in ``samples.csv`` and report.html's sample browser; its
    ``browser.report_html_bytes`` is report.html's size, which the page states too) and ``samples.csv`` into
    ``out_dir`` (created if missing). ``plots=False`` leaves the figures out. Returns ``{name: path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(result) if plots else {}
    # the sections see the report's folder (the sample browser links media relative to it); report.json does not
    blocks = _blocks({**result, "report_dir": str(out.resolve())}, figures)
    title = f"mixsig report — {result['run']['name']}"
    paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json",
             "csv": out / "samples.csv"}
    page = _with_size(_render_html(blocks, title))
    _atomic_write(paths["html"], page)
    _atomic_write(paths["md"], _render_md(blocks))
    doc = {k: v for k, v in result.items() if k not in NOT_IN_JSON}
    if doc.get("browser") is not None:
        doc["browser"] = {**doc["browser"], "report_html_bytes": len(page.encode("utf-8"))}
    doc["figures"] = list(figures)
    doc["samples_csv"] = "samples.csv"
    _atomic_write(paths["json"], json.dumps(jsonable(doc), indent=1, allow_nan=False))
    tmp = paths["csv"].with_name(f".samples.csv.tmp-{os.getpid()}")
    sections.SAMPLES.write_csv(tmp, result["samples"])
    os.replace(tmp, paths["csv"])
    log.debug("report written to %s", out)
    return paths
