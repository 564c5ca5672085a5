"""Continuous training: new data spans trigger runs, one run at a time, and models can be rolled back.

Driven from the CLI (``textops schedule``, ``textops monitor --retrain-on-drift``,
``textops rollback``), one concern per module:

- :mod:`.cron`: the 5-field cron expression a schedule fires on.
- :mod:`.state`: the one lock on a run directory (``fcntl.flock`` on
  ``<output>/.textops-run.lock``, non-blocking: a scheduled tick and a drift-triggered retrain
  never run the pipeline on the same output at once), the state file and the decision log
  (``<output>/schedule.log``, JSON lines).
- :mod:`.runners`: how one pipeline run starts (a child ``textops run``, or a Kubeflow
  submission) and how its outcome is recorded against the span.
- :mod:`.schedule`: :func:`~.schedule.tick` starts a run when a span newer than the last one
  trained exists under ``<data>/span-N/``; :func:`~.schedule.serve_schedule` ticks on a cron.
- :mod:`.retrain`: labelled production texts become the next span (split by a hash of the
  text, written atomically), and a monitor alert retrains on it.
- :mod:`.rollback`: re-publishes an older version as the newest one (atomic), so our server,
  stock TF Serving and KServe all hot-swap to it with their usual "latest" policy.

Nothing here imports TensorFlow at import time; ``textops --help`` stays fast.
"""
