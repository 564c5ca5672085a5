"""TFX Trainer adapter: maps ``fn_args`` onto the plain model, training and export code."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import types
from tfx.components.trainer import executor as tfx_trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils
from tfx_bsl.public import tfxio

from textops import features
from textops.settings import Settings
from textops.components import distribution, model as model_lib, training

_READ_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What ``create_pipeline`` passes to the Trainer as ``custom_config``."""

    text_column: str
    oov_buckets: int
    embedding_dim: int = 64
    dropout: float = 0.0
    learning_rate: float = 0.01
    epochs: int = 5
    batch_size: int = 32
    shuffle_buffer: int = 100_000
    seed: int = 42
    strategy: str = "mirrored"
    mixed_precision: str = "auto"  # auto | on | off
    lr_decay: bool = True
    checkpoint_dir: Optional[str] = None  # stable across restarts; default: <model_run>/backup

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_settings(cls, settings: "Settings", strategy: Optional[str] = None) -> "TrainerConfig":
        return cls(
            text_column=settings.data.text_column,
            oov_buckets=settings.transform.oov_buckets,
            embedding_dim=settings.model.embedding_dim,
            dropout=settings.model.dropout,
            learning_rate=settings.training.learning_rate,
            epochs=settings.training.epochs,
            batch_size=settings.training.batch_size,
            shuffle_buffer=settings.training.shuffle_buffer,
            seed=settings.training.seed,
            strategy=strategy or settings.training.strategy,
            mixed_precision=settings.training.mixed_precision,
            lr_decay=settings.training.lr_decay,
            checkpoint_dir=settings.training.checkpoint_dir,
        )

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any]) -> "TrainerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown trainer settings {unknown}; expected some of {sorted(known)}")
        return cls(**config)


def _dataset(file_pattern, data_accessor, tft_output) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=_READ_BATCH, label_key=features.LABEL_ID_KEY, shuffle=False, num_epochs=1
        ),
        tft_output.transformed_metadata.schema,
    )


def configure_precision(mode: str) -> str:
    """Sets the Keras dtype policy; returns it. ``auto``: mixed_float16 when a GPU is present."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"mixed_precision must be auto, on or off, got {mode!r}")
    use = mode == "on" or (mode == "auto" and bool(tf.config.list_physical_devices("GPU")))
    policy = "mixed_float16" if use else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def run_fn(fn_args) -> None:
    """Entry point named in the Trainer component (``run_fn``)."""
    config = TrainerConfig.from_custom_config(fn_args.custom_config or {})
    configure_precision(config.mixed_precision)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    class_names = [c.decode("utf-8") for c in tft_output.vocabulary_by_name(features.LABEL_VOCAB_NAME)]
    vocab_size = tft_output.vocabulary_size_by_name(features.TOKEN_VOCAB_NAME) + config.oov_buckets

    train_config = training.TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle_buffer=config.shuffle_buffer,
        seed=config.seed,
        lr_decay=config.lr_decay,
    )
    train_ds = training.prepare_dataset(
        _dataset(fn_args.train_files, fn_args.data_accessor, tft_output),
        config.batch_size,
        shuffle=True,
        shuffle_buffer=config.shuffle_buffer,
        seed=config.seed,
    )
    eval_ds = training.prepare_dataset(
        _dataset(fn_args.eval_files, fn_args.data_accessor, tft_output), max(config.batch_size, 256), shuffle=False
    )
    model, history = training.train(
        model_lib.BowConfig(
            vocab_size=vocab_size,
            num_classes=len(class_names),
            embedding_dim=config.embedding_dim,
            dropout=config.dropout,
            learning_rate=config.learning_rate,
        ),
        train_ds,
        eval_ds,
        train_config,
        strategy=distribution.make_strategy(config.strategy),
        log_dir=os.path.join(fn_args.model_run_dir, "tensorboard"),
        backup_dir=config.checkpoint_dir or os.path.join(fn_args.model_run_dir, "backup"),
    )
    tokenizer = training.TftTokenizer(
        tft_output.transform_features_layer(), tft_output.raw_feature_spec(), config.text_column
    )
    # Under MultiWorkerMirroredStrategy every worker must take part in saving; only the chief's
    # copy is the output, the others write to a scratch directory.
    chief = distribution.is_chief()
    export_dir = fn_args.serving_model_dir if chief else tempfile.mkdtemp(prefix="textops-worker-export-")
    training.export_serving_model(model, tokenizer, class_names, export_dir)
    if not chief:
        tf.io.gfile.rmtree(export_dir)
        return
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump({"history": history, "classes": class_names, "vocab_size": vocab_size}, f, indent=2)


# -- the Trainer component: TFX's, plus an ``epochs`` parameter a pipeline run can override ----

EPOCHS_KEY = "epochs"


class TextTrainerSpec(standard_component_specs.TrainerSpec):
    PARAMETERS = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        # Overrides custom_config["epochs"]; a RuntimeParameter on Kubeflow (per-run setting).
        EPOCHS_KEY: ExecutionParameter(type=int, optional=True),
    }


class _Executor(tfx_trainer_executor.GenericExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        epochs = exec_properties.get(EPOCHS_KEY)
        if epochs:
            if int(epochs) < 1:
                raise ValueError(f"epochs must be >= 1, got {epochs}")
            custom = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
            custom["epochs"] = int(epochs)
            exec_properties = {**exec_properties, standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(custom)}
        return super().Do(input_dict, output_dict, exec_properties)


class Trainer(base_component.BaseComponent):
    """TFX's generic Trainer running ``run_fn`` with an overridable ``epochs`` parameter."""

    SPEC_CLASS = TextTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(_Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        schema: types.BaseChannel,
        run_fn: str,
        custom_config: dict,
        epochs=None,
    ):
        super().__init__(
            spec=TextTrainerSpec(
                examples=examples,
                transform_graph=transform_graph,
                schema=schema,
                train_args=trainer_pb2.TrainArgs(),
                eval_args=trainer_pb2.EvalArgs(),
                run_fn=run_fn,
                custom_config=json_utils.dumps(custom_config),
                epochs=epochs,
                model=types.Channel(type=standard_artifacts.Model),
                model_run=types.Channel(type=standard_artifacts.ModelRun),
            )
        )
