"""Training beyond one node: the Trainer's ``run_fn`` as a Kubeflow Training Operator TFJob worker.

Each worker pod of the TFJob (``pipelines/tfjob.py`` writes the manifest) runs

    python -m textops.components.tfjob_train --transformed-examples URI --transform-graph URI \\
        --serving-model-dir URI --model-run-dir URI [--hyperparameters URI] \\
        [--config settings.yaml] [--set key=value ...]

on the outputs of a pipeline's Transform. The operator sets ``TF_CONFIG``; the strategy is
``multi_worker`` (MultiWorkerMirroredStrategy), so the workers train one model synchronously and
the chief writes the SavedModel (same signatures as the pipeline's Trainer) and the history.
``training.checkpoint_dir`` on shared storage lets restarted pods resume from the last epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from textops.settings import Settings, load_settings


def trainer_config(settings: Settings, strategy: str = "multi_worker") -> dict:
    from textops.components.trainer import TrainerConfig

    return TrainerConfig.from_settings(settings, strategy).to_custom_config()


def train(
    transformed_examples: str,
    transform_graph: str,
    serving_model_dir: str,
    model_run_dir: str,
    settings: Settings,
    strategy: str = "multi_worker",
    hyperparameters: Optional[str] = None,
) -> None:
    """Builds TFX's ``fn_args`` from artifact locations and runs the Trainer's ``run_fn``."""
    from tfx.components.trainer import fn_args_utils
    from tfx.types import artifact_utils, standard_artifacts

    from textops.components.trainer import run_fn

    examples = standard_artifacts.Examples()
    examples.uri = transformed_examples
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    graph = standard_artifacts.TransformGraph()
    graph.uri = transform_graph
    fn_args = fn_args_utils.get_common_fn_args(
        {"examples": [examples], "transform_graph": [graph]},
        {"train_args": "{}", "eval_args": "{}", "custom_config": json.dumps(trainer_config(settings, strategy))},
    )
    fn_args.transform_output = fn_args.transform_graph_path  # as the Trainer executor sets it
    fn_args.serving_model_dir = serving_model_dir
    fn_args.model_run_dir = model_run_dir
    if hyperparameters:
        fn_args.hyperparameters = read_hyperparameters(hyperparameters)
    run_fn(fn_args)


def read_hyperparameters(uri: str) -> dict:
    """The Tuner's ``best_hyperparameters`` artifact (its directory or the file in it)."""
    import tensorflow as tf

    path = uri if uri.endswith(".txt") else f"{uri.rstrip('/')}/best_hyperparameters.txt"
    if not tf.io.gfile.exists(path):
        raise SystemExit(f"--hyperparameters: {path} does not exist (pass the Tuner's best_hyperparameters artifact URI)")
    with tf.io.gfile.GFile(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--hyperparameters: {path} is not the Tuner's JSON: {exc}") from None


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m textops.components.tfjob_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transformed-examples", required=True, help="Transform's transformed_examples artifact URI")
    parser.add_argument("--transform-graph", required=True, help="Transform's transform_graph artifact URI")
    parser.add_argument("--serving-model-dir", required=True, help="where the chief writes the SavedModel")
    parser.add_argument("--model-run-dir", required=True, help="TensorBoard logs, history, checkpoints")
    parser.add_argument("--hyperparameters", default=None,
                        help="the Tuner's best_hyperparameters artifact URI (when the pipeline tuned)")
    parser.add_argument("--config", type=Path, default=None, help="settings YAML (the pipeline's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--strategy", default="multi_worker", choices=["multi_worker", "mirrored", "one_device", "auto"])
    args = parser.parse_args(argv)
    settings = load_settings(args.config, args.overrides)
    train(args.transformed_examples, args.transform_graph, args.serving_model_dir, args.model_run_dir, settings,
          args.strategy, args.hyperparameters)


if __name__ == "__main__":
    main()
