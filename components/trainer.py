"""TFX Trainer adapter: maps ``fn_args`` onto the plain model, training and export code."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from textops import features
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

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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


def run_fn(fn_args) -> None:
    """Entry point named in the Trainer component (``run_fn``)."""
    config = TrainerConfig.from_custom_config(fn_args.custom_config or {})
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    class_names = [c.decode("utf-8") for c in tft_output.vocabulary_by_name(features.LABEL_VOCAB_NAME)]
    vocab_size = tft_output.vocabulary_size_by_name(features.TOKEN_VOCAB_NAME) + config.oov_buckets

    train_config = training.TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, shuffle_buffer=config.shuffle_buffer, seed=config.seed
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
    )
    tokenizer = training.TftTokenizer(
        tft_output.transform_features_layer(), tft_output.raw_feature_spec(), config.text_column
    )
    training.export_serving_model(model, tokenizer, class_names, fn_args.serving_model_dir)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump({"history": history, "classes": class_names, "vocab_size": vocab_size}, f, indent=2)
