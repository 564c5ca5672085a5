"""Small helpers for the standalone HTML pages (no external CSS, JS, fonts or images)."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any, Iterable, Optional, Sequence

STYLE = """
<style>
.tx-page { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; color: #1f2937;
  max-width: 1200px; margin: 0 auto; padding: 16px 24px; }
.tx-page h1 { font-size: 24px; margin: 8px 0 4px; } .tx-page h2 { font-size: 19px; margin: 24px 0 8px;
  border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; } .tx-page h3 { font-size: 15px; margin: 16px 0 6px; }
.tx-page table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
.tx-page th, .tx-page td { border: 1px solid #e5e7eb; padding: 4px 10px; text-align: right; }
.tx-page th:first-child, .tx-page td:first-child { text-align: left; }
.tx-page th { background: #f3f4f6; }
.tx-badge { display: inline-block; padding: 4px 12px; border-radius: 4px; font-weight: 600; color: #fff; }
.tx-ok { background: #15803d; } .tx-alert { background: #b91c1c; } .tx-warn { background: #b45309; }
.tx-bad { color: #b91c1c; font-weight: 600; } .tx-good { color: #15803d; }
.tx-muted { color: #6b7280; font-size: 13px; }
.tx-page img { max-width: 100%; border: 1px solid #e5e7eb; margin: 4px 0; }
.tx-grid { display: flex; flex-wrap: wrap; gap: 12px; } .tx-grid > div { flex: 1 1 520px; }
</style>
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return esc(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells then are trusted HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f"<td>{c if raw else fmt(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_png(fig: Any) -> str:
    """A matplotlib figure as an inline ``<img>`` (base64 PNG); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


def page(title: str, body: str, head_extra: Optional[str] = None) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title>{STYLE}{head_extra or ''}</head>"
        f"<body><div class=\"tx-page\">{body}</div></body></html>\n"
    )
