"""A Kubeflow Training Operator ``TFJob`` manifest for multi-worker training, from settings.

The workers run ``textops.components.tfjob_train`` (the Trainer's ``run_fn`` under
MultiWorkerMirroredStrategy) in the pipeline image, on the Transform outputs of a pipeline run;
GPUs per worker, node selector and tolerations come from ``kubeflow.trainer`` like the
pipeline's Trainer. The operator injects ``TF_CONFIG`` into every pod.
"""

from __future__ import annotations

import json
from typing import Any

from textops.pipelines.kubeflow_runner import kubernetes_executor_config
from textops.settings import Settings

ENTRYPOINT = "textops.components.tfjob_train"
TRAINING_SECTIONS = ("data", "transform", "model", "training")


def tfjob_manifest(
    settings: Settings,
    name: str,
    workers: int,
    transformed_examples: str,
    transform_graph: str,
    serving_model_dir: str,
    model_run_dir: str,
    gpus_per_worker: int | None = None,
    namespace: str = "kubeflow",
    hyperparameters: str | None = None,
) -> dict[str, Any]:
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not settings.training.checkpoint_dir:
        raise ValueError(
            "set training.checkpoint_dir to shared storage (gs://, s3://) so restarted workers resume "
            "from the last epoch instead of starting over"
        )
    kf = settings.kubeflow
    resources = kf.trainer
    gpus = resources.gpus if gpus_per_worker is None else gpus_per_worker
    limits: dict[str, Any] = {}
    if resources.cpu:
        limits["cpu"] = resources.cpu
    if resources.memory:
        limits["memory"] = resources.memory
    if gpus:
        limits[resources.gpu_resource] = gpus
    args = [
        "--transformed-examples", transformed_examples,
        "--transform-graph", transform_graph,
        "--serving-model-dir", serving_model_dir,
        "--model-run-dir", model_run_dir,
    ]
    # Every setting the Trainer's code reads travels with the job (the model kind and sizes must
    # match the Transform outputs): one JSON value (valid YAML) per section.
    values = settings.to_dict()
    for section in TRAINING_SECTIONS:
        args += ["--set", f"{section}={json.dumps(values[section], separators=(',', ':'))}"]
    if hyperparameters:
        args += ["--hyperparameters", hyperparameters]
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "tensorflow",  # the name the Training Operator expects
                "image": kf.image,
                "command": ["python", "-m", ENTRYPOINT],
                "args": args,
                "resources": {"limits": limits},
            }
        ]
    }
    k8s = kubernetes_executor_config(resources)
    if resources.node_selector:
        pod_spec["nodeSelector"] = dict(resources.node_selector)
    if "tolerations" in k8s:
        pod_spec["tolerations"] = k8s["tolerations"]
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3},
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "OnFailure",
                    "template": {"spec": pod_spec},
                }
            },
        },
    }
