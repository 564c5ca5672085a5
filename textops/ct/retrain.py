"""Production feedback as the next span, and retraining on it after a monitor alert."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
from pathlib import Path
from typing import Optional, Sequence

from textops.ct.runners import RunFn, kubeflow_runner, run_span, subprocess_runner
from textops.ct.state import Busy, LogFn, LoopError, log_decision, run_lock
from textops.settings import Settings


def _in_test(text: str, test_fraction: float) -> bool:
    bucket = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < test_fraction


def write_span(
    data: os.PathLike,
    texts: Sequence[str],
    labels: Sequence[str],
    settings: Settings,
    test_fraction: float = 0.3,
) -> tuple[int, Path]:
    """Writes labelled texts as the next span (train.csv + test.csv), atomically; returns (number, dir).

    The split is by a hash of the text, so a text repeated in production lands in one split only.
    """
    from textops.data import list_spans

    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    rows = [(t, l) for t, l in zip(texts, labels) if t and l]
    train = [r for r in rows if not _in_test(r[0], test_fraction)]
    test = [r for r in rows if _in_test(r[0], test_fraction)]
    if not train or not test:
        raise LoopError(
            f"{len(rows)} labelled production texts give {len(train)} train and {len(test)} test rows; "
            "a new span needs both. Collect more feedback before retraining."
        )
    base = Path(data)
    base.mkdir(parents=True, exist_ok=True)
    spans = settings.data.spans
    number = max(list_spans(base, spans), default=0) + 1
    final = base / f"{spans.prefix}{number}"
    staging = base / f".{spans.prefix}{number}.writing-{os.getpid()}"
    staging.mkdir()
    columns = [settings.data.text_column, settings.data.label_column]
    for name, part in (("train.csv", train), ("test.csv", test)):
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(part)
        (staging / name).write_text(buffer.getvalue(), encoding="utf-8")
    os.rename(staging, final)  # a reader sees the whole span or none of it
    return number, final


def labelled_window(result, feedback_path: os.PathLike) -> tuple[list[str], list[str]]:  # noqa: ANN001
    """The monitor window's texts that carry a fed-back label, with that label."""
    from textops.monitoring.feedback import FeedbackStats, join_feedback, read_feedback

    frame = result.window.frame
    targets = join_feedback(frame, read_feedback(feedback_path), FeedbackStats())
    keep = targets.notna()
    return frame.loc[keep, "text"].astype(str).tolist(), targets[keep].astype(str).tolist()


def retrain_on_drift(
    result,  # noqa: ANN001 - a textops.monitoring.monitor.MonitorResult
    feedback_path: Optional[os.PathLike],
    data: os.PathLike,
    output: os.PathLike,
    settings: Settings,
    run: RunFn,
    log: LogFn = print,
) -> dict:
    """After a monitor verdict: when it drifted or quality fell, add the feedback as a span and run.

    Returns the decision logged (``retrain`` -> ``ran``/``busy``, or ``no_retrain``).
    """
    kinds = sorted({a.kind for a in result.verdict.alerts} & {"drift", "quality"})
    if not kinds:
        return log_decision(
            output, {"decision": "no_retrain", "message": "the monitor found no drift and no quality alert; no retraining"}, log
        )
    if feedback_path is None:
        raise LoopError("--retrain-on-drift needs --feedback: the labelled production texts become the new span")
    texts, labels = labelled_window(result, feedback_path)
    try:
        with run_lock(output):
            number, path = write_span(data, texts, labels, settings)
            from textops.data import list_spans

            used = sorted(list_spans(data, settings.data.spans))[-settings.data.spans.window :]
            log_decision(
                output,
                {"decision": "start", "trigger": f"monitor ({', '.join(kinds)})", "span": number, "spans": used,
                 "message": f"monitor alert ({', '.join(kinds)}): wrote {len(texts)} labelled production texts as span "
                 f"{number} ({path}); retraining on spans {used}"},
                log,
            )
            return run_span(output, number, used, run, f"monitor:{','.join(kinds)}", log)
    except Busy as exc:
        return log_decision(output, {"decision": "busy", "message": f"{exc}; the feedback was not written"}, log)


@dataclasses.dataclass(frozen=True)
class RetrainTarget:
    """Where ``--retrain-on-drift`` writes the new span and retrains: the span root, the run
    directory, the pipeline settings (file + overrides, as ``textops run`` takes them) and,
    when set, the Kubeflow endpoint to submit to instead of running locally."""

    data: Path
    run_dir: Path
    settings: Settings
    config: Optional[Path] = None
    overrides: tuple[str, ...] = ()
    kfp_host: Optional[str] = None

    def runner(self, log: LogFn) -> RunFn:
        if self.kfp_host:
            return kubeflow_runner(self.data, self.run_dir, self.settings, self.kfp_host, log)
        return subprocess_runner(self.data.absolute(), self.run_dir.absolute(), self.config, self.overrides, log)
