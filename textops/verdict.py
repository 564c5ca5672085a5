"""The monitor's verdict: which checks fired (typed alerts), each check's figures, and the exit
code a scheduler acts on. ``textops.monitoring.monitor`` builds it; the CLI prints it, writes it
as ``verdict.json`` and exports it to Prometheus; continuous training retrains on its alerts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, Optional

import numpy as np

from textops.errors import ExitCode

VERDICT_FILE = "verdict.json"
AlertKind = Literal["drift", "quality", "service"]


@dataclasses.dataclass
class Alert:
    kind: AlertKind
    check: str
    message: str
    value: Optional[float] = None
    threshold: Optional[float] = None


@dataclasses.dataclass
class Verdict:
    exit_code: ExitCode
    alerts: list[Alert]
    drift: dict[str, Any]
    quality: dict[str, Any]
    estimate: dict[str, Any]
    service: dict[str, Any]
    window: dict[str, Any]
    feedback: dict[str, Any]
    reference: dict[str, Any]
    notes: list[str]
    seconds: float = 0.0
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(a.kind == "drift" for a in self.alerts)

    @property
    def fired(self) -> list[str]:
        return [f"{a.kind}:{a.check}" for a in self.alerts]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = "alert" if self.alerts else "ok"
        out["drifted"] = self.drifted
        out["fired"] = self.fired
        return json_safe(out)

    def line(self) -> str:
        w = self.window
        head = f"ALERT ({', '.join(self.fired)})" if self.alerts else "OK"
        parts = [f"{head}: {w['records']} records {w['range']}"]
        if w.get("corrupt_lines"):
            parts.append(f"{w['corrupt_lines']} corrupt line(s) skipped")
        d = self.drift
        if d.get("columns"):
            text = d["columns"].get("text")
            if text:
                parts.append(f"text drift score {text['score']:.3f} (>{text['threshold']:.2f} drifts)")
            for name in ("prediction", "confidence"):
                sig = (d.get("signals") or {}).get(name)
                if sig and sig["fired"]:
                    parts.append(f"{name} drift {sig['score']:.3f} (>{sig['limit']:.3f}): {sig['meaning']}")
            parts.append(f"{d['drifted_count']}/{len(d['columns'])} columns drifted")
        e = self.estimate
        if e.get("metrics"):
            acc = e["metrics"]["accuracy"]
            parts.append(f"estimated accuracy {acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] (no labels)")
        q = self.quality
        if q.get("labelled"):
            f1 = q["metrics"].get("f1")
            shown = "n/a" if f1 is None or math.isnan(f1) else f"{f1:.3f}"
            parts.append(f"f1 {shown} on {q['labelled']} labelled")
        s = self.service
        if s.get("error_rate") is not None:
            parts.append(f"errors {100 * s['error_rate']:.1f}%")
        if s.get("latency_p99_ms") is not None:
            parts.append(f"p99 {s['latency_p99_ms']:.0f} ms")
        return "; ".join(parts)


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN/inf as None (JSON has neither)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
