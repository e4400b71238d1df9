"""One self-contained HTML report per run: every image is embedded as a base64 data URI, the style
sheet is inline, and nothing refers to a file or address outside the page."""
from __future__ import annotations

import base64
import html
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..utils import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from .base import RunDir

__all__ = ["write_report", "render_report", "data_uri"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;color:#222;
padding:0 1em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}
.sub{color:#666;margin-top:0}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f5f5f5}
td.l,th.l{text-align:left}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5;padding:0 .2em}
.ok{color:#1a7f37;font-weight:bold}
"""


def data_uri(path: str | Path, mime: str = "image/png") -> str:
    """The file's bytes as a `data:` URI."""
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _kv_table(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th class='l'>{html.escape(str(k))}</th><td class='l'>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in d.items())
    return f"<table>{rows}</table>"


def _df_table(df: Any, max_rows: int = 50) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.head(max_rows).iterrows():
        body.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row.tolist()) + "</tr>")
    more = f"<p class='sub'>first {max_rows} of {len(df)} rows</p>" if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def render_report(run: "RunDir", title: str, config: dict[str, Any]) -> str:
    """The report's HTML for the files and items of `run`."""
    import pandas as pd
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='sub'>deepfit run written {html.escape(time.strftime('%Y-%m-%d %H:%M:%S'))} &middot; "
             f"output <code>{html.escape(str(run.final))}</code></p>"]
    s = dict(run.summary)
    final = s.pop("final_metrics", None)
    if final:
        parts.append("<h2>Final metrics</h2>" + _kv_table(final))
    if s:
        parts.append("<h2>Summary</h2>" + _kv_table(s))
    metrics = run.file("metrics.csv")
    if metrics.exists() and metrics.stat().st_size > 0:
        parts.append("<h2>Metrics per epoch</h2>" + _df_table(pd.read_csv(metrics)))
    for item in run.items:
        title_html = f"<h2>{html.escape(item.title)}</h2>"
        if item.kind == "figure":
            cap = f"<figcaption>{html.escape(item.caption)}</figcaption>" if item.caption else ""
            parts.append(f"{title_html}<figure><img alt='{html.escape(item.title)}' "
                         f"src='{data_uri(run.file(item.content))}'>{cap}</figure>")
        elif item.kind == "table":
            cap = f"<p class='sub'>{html.escape(item.caption)}</p>" if item.caption else ""
            parts.append(title_html + cap + _df_table(item.content))
        else:
            parts.append(f"{title_html}<p>{html.escape(str(item.content))}</p>")
    parts.append("<h2>Configuration</h2>" + _kv_table(config))
    files = sorted(p.name for p in run.path.iterdir() if p.is_file() and p.name not in ("STATUS", ".lock"))
    parts.append("<h2>Files</h2><p>" + ", ".join(f"<code>{html.escape(f)}</code>" for f in files + ["report.html"])
                 + "</p>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write_report(run: "RunDir", title: str, config: dict[str, Any]) -> Path:
    """Write `report.html` into the run directory (via a temporary file, renamed when complete)."""
    text = render_report(run, title, config)
    out = run.file("report.html")
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
