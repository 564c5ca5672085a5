"""The one place where a tf.distribute strategy is chosen from settings."""

from __future__ import annotations

import json
import os
from typing import Literal

import tensorflow as tf

StrategyName = Literal["auto", "one_device", "mirrored", "multi_worker"]


def make_strategy(name: StrategyName, tf_config: str | None = None) -> tf.distribute.Strategy:
    """Builds the strategy named in settings.

    - ``one_device``: the first GPU if any, else the CPU.
    - ``mirrored``: synchronous data parallelism over every local GPU (the CPU when there is none).
    - ``multi_worker``: MultiWorkerMirroredStrategy across the workers named in ``TF_CONFIG``
      (set by the Kubeflow Training Operator or by hand); ``tf_config`` overrides the variable.
    - ``auto``: ``mirrored`` with two or more GPUs, otherwise ``one_device``.
    """
    # physical, not logical, devices: listing logical devices initializes the TF runtime, after
    # which MultiWorkerMirroredStrategy can no longer configure its collective ops.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        raw = tf_config if tf_config is not None else os.environ.get("TF_CONFIG", "")
        try:
            cluster = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON: {exc}") from None
        if not cluster.get("cluster", {}).get("worker"):
            raise ValueError(
                "strategy 'multi_worker' needs TF_CONFIG with a cluster.worker list "
                '(e.g. {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}); '
                "use 'mirrored' on a single machine"
            )
        if tf_config is not None:
            os.environ["TF_CONFIG"] = tf_config  # the resolver reads TF_CONFIG from the environment
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    raise ValueError(f"unknown strategy {name!r}; choose auto, one_device, mirrored or multi_worker")


def is_chief(tf_config: str | None = None) -> bool:
    """True on the process that writes outputs: the chief, or worker 0 when there is no chief,
    or the only process when TF_CONFIG is unset."""
    raw = tf_config if tf_config is not None else os.environ.get("TF_CONFIG", "")
    if not raw:
        return True
    config = json.loads(raw)
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and not config.get("cluster", {}).get("chief")
