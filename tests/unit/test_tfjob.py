import json
import importlib

import pytest
import yaml

from textops.pipelines.tfjob import ENTRYPOINT, tfjob_manifest
from textops.settings import load_settings

URIS = dict(
    transformed_examples="gs://b/root/Transform/transformed_examples/7",
    transform_graph="gs://b/root/Transform/transform_graph/7",
    serving_model_dir="gs://b/tfjob/model",
    model_run_dir="gs://b/tfjob/model_run",
)


def test_manifest_has_workers_gpus_node_pool_and_the_entrypoint():
    settings = load_settings(
        None,
        [
            "training.checkpoint_dir=gs://b/tfjob/ckpt",
            "kubeflow.image=registry.invalid/textops-pipeline:1",
            "kubeflow.trainer.node_selector={pool: gpu}",
            "model.kind=transformer",
            "model.transformer.hidden_size=256",
        ],
    )
    job = tfjob_manifest(settings, "textops-train", workers=4, gpus_per_worker=2, **URIS)
    assert job["kind"] == "TFJob" and job["apiVersion"] == "kubeflow.org/v1"
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 4 and worker["restartPolicy"] == "OnFailure"
    pod = worker["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "tensorflow" and container["image"] == "registry.invalid/textops-pipeline:1"
    assert container["command"] == ["python", "-m", ENTRYPOINT]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16G", "nvidia.com/gpu": 2}
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    args = container["args"]
    assert args[args.index("--transformed-examples") + 1] == URIS["transformed_examples"]
    # Every training-relevant section travels whole, so the worker builds the pipeline's model.
    sections = {a.split("=", 1)[0]: json.loads(a.split("=", 1)[1]) for a in args if "=" in a and a.split("=", 1)[0] in
                ("data", "transform", "model", "training")}
    assert sections["training"]["checkpoint_dir"] == "gs://b/tfjob/ckpt"
    assert sections["model"] == settings.to_dict()["model"]
    from textops.settings import read_config, Settings

    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert Settings.model_validate(read_config(None, overrides)[0]).to_dict()["model"] == settings.to_dict()["model"]
    assert callable(importlib.import_module(ENTRYPOINT).main)
    yaml.safe_load(yaml.safe_dump(job))  # serializable as a manifest


def test_manifest_needs_shared_checkpoints_and_workers():
    with pytest.raises(ValueError, match="training.checkpoint_dir"):
        tfjob_manifest(load_settings(), "j", workers=2, **URIS)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        tfjob_manifest(load_settings(None, ["training.checkpoint_dir=/c"]), "j", workers=0, **URIS)
