"""TFX Trainer adapter: maps ``fn_args`` onto the plain model, training and export code."""

from __future__ import annotations

import dataclasses
import json
import re
import logging
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
from textops.config import dataclass_from_config
from textops.settings import Settings
from textops.tuning import ENCODER_SIZES, coerce_hyperparameter
from textops.components import distribution, model as model_lib, training
from textops.components import text as text_ops, transformer as transformer_lib

log = logging.getLogger(__name__)

_READ_BATCH = 1024
ENCODER_DIR = "encoder"  # <model_run>/encoder: the trained encoder, reusable as a pre-trained one


# At batch 32 (training.REFERENCE_BATCH_SIZE); an unset learning rate follows the batch size by
# training.scaled_learning_rate.
DEFAULT_LEARNING_RATE = {"bow": 0.01, "transformer": 1e-3}
# bow: 256 examples a step cost little more than 32 (a sparse lookup and a scatter), so larger
# batches cut the per-step overhead ~8x at the same accuracy (README, "Training speed"); smaller
# for a small split (training.auto_batch_size). transformer: 32.
DEFAULT_BATCH_SIZE = {"bow": 256, "transformer": 32}


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What ``create_pipeline`` passes to the Trainer as ``custom_config``."""

    text_column: str
    oov_buckets: int
    model_kind: str = "bow"  # bow | transformer
    embedding_dim: int = 64
    dropout: float = 0.0
    ngram_weighting: str = "idf"  # bow: model.BowConfig.ngram_weighting
    learning_rate: Optional[float] = None  # None: DEFAULT_LEARNING_RATE[model_kind], scaled to the batch size
    # The most epochs with early stopping (the default), else exactly these; None: by the
    # split's size (training.auto_epochs); TrainingSettings.epochs.
    epochs: Optional[int] = None
    batch_size: Optional[int] = None  # None: DEFAULT_BATCH_SIZE[model_kind]
    shuffle_buffer: int = 100_000
    seed: int = 42
    strategy: str = "auto"
    mixed_precision: str = "auto"  # auto | on | off
    lr_decay: bool = True
    early_stopping_patience: int = 2  # > 0: epochs is the most; see training.BestEpoch; 0: exactly epochs
    checkpoint_dir: Optional[str] = None  # stable across restarts; default: <model_run>/backup
    # transformer
    sequence_length: int = 64
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    ffn_size: int = 256
    transformer_dropout: float = 0.1
    pooling: str = "mean"
    word_vocab_size: int = 20_000
    char_vocab_size: int = 1_000
    pretrained_encoder: Optional[str] = None
    pretrain_epochs: int = 0
    pretrain_learning_rate: Optional[float] = None  # None: 1e-3 at batch 32, scaled to pretrain_batch_size
    mask_rate: float = 0.15
    pretrain_batch_size: int = 32
    pretrain_head_pieces: Optional[int] = 2048  # None: one softmax over every piece (transformer.MaskedLMHead)

    def __post_init__(self) -> None:
        if self.model_kind not in DEFAULT_LEARNING_RATE:
            raise ValueError(f"model_kind must be one of {sorted(DEFAULT_LEARNING_RATE)}, got {self.model_kind!r}")

    def batch_size_for(self, train_examples: Optional[int] = None) -> int:
        """The set batch size, else the model's default (for bow, smaller on a small split)."""
        if self.batch_size:
            return self.batch_size
        largest = DEFAULT_BATCH_SIZE[self.model_kind]
        if self.model_kind == "bow" and train_examples is not None:
            return training.auto_batch_size(train_examples, largest)
        return largest

    def epochs_for(self, train_examples: Optional[int] = None) -> int:
        """The set epochs, else ``training.auto_epochs`` of the split's size."""
        return self.epochs or training.auto_epochs(train_examples)

    def learning_rate_for(self, train_examples: Optional[int] = None) -> float:
        """The set learning rate, else the model's default scaled to ``batch_size_for``."""
        return self.learning_rate or training.scaled_learning_rate(
            DEFAULT_LEARNING_RATE[self.model_kind], self.batch_size_for(train_examples)
        )

    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate_for(None)

    def model_config(self, num_classes: int, vocab_size: int, train_examples: Optional[int] = None):
        if self.model_kind == "bow":
            return model_lib.BowConfig(
                vocab_size=vocab_size,
                num_classes=num_classes,
                embedding_dim=self.embedding_dim,
                dropout=self.dropout,
                learning_rate=self.learning_rate_for(train_examples),
                ngram_weighting=self.ngram_weighting,
            )
        return transformer_lib.ClassifierConfig(
            encoder=transformer_lib.EncoderConfig(
                vocab_size=vocab_size,
                sequence_length=self.sequence_length,
                hidden_size=self.hidden_size,
                num_layers=self.num_layers,
                num_heads=self.num_heads,
                ffn_size=self.ffn_size,
                dropout=self.transformer_dropout,
            ),
            num_classes=num_classes,
            pooling=self.pooling,
            learning_rate=self.learning_rate_for(train_examples),
        )

    def pretrain_config(self) -> Optional[transformer_lib.PretrainConfig]:
        if self.model_kind != "transformer" or not self.pretrain_epochs:
            return None
        return transformer_lib.PretrainConfig(
            epochs=self.pretrain_epochs, learning_rate=self.pretrain_learning_rate, mask_rate=self.mask_rate,
            batch_size=self.pretrain_batch_size, head_pieces=self.pretrain_head_pieces,
        )

    def train_config(self, train_examples: Optional[int] = None) -> training.TrainConfig:
        return training.TrainConfig(
            epochs=self.epochs_for(train_examples),
            batch_size=self.batch_size_for(train_examples),
            shuffle_buffer=self.shuffle_buffer,
            seed=self.seed,
            lr_decay=self.lr_decay,
            early_stopping_patience=self.early_stopping_patience,
        )

    def with_hyperparameters(self, values: Mapping[str, Any]) -> "TrainerConfig":
        """This config with tuned values applied (a KerasTuner ``HyperParameters.values``)."""
        tuned = tuned_values(values)
        if self.pretrained_encoder and set(tuned) & set(ENCODER_SIZES):
            raise ValueError(f"the pre-trained encoder fixes {sorted(set(tuned) & set(ENCODER_SIZES))}; they cannot be tuned")
        config = dataclasses.replace(self, **tuned)
        if config.model_kind == "transformer" and config.hidden_size % config.num_heads:
            raise ValueError(f"hidden_size ({config.hidden_size}) must be a multiple of num_heads ({config.num_heads})")
        return config

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_settings(cls, settings: "Settings", strategy: Optional[str] = None) -> "TrainerConfig":
        m, t = settings.model, settings.model.transformer
        return cls(
            text_column=settings.data.text_column,
            oov_buckets=settings.transform.oov_buckets,
            model_kind=m.kind,
            embedding_dim=m.embedding_dim,
            dropout=m.dropout,
            ngram_weighting=m.ngram_weighting,
            learning_rate=settings.training.learning_rate,
            epochs=None if settings.training.epochs == "auto" else settings.training.epochs,
            batch_size=settings.training.batch_size,
            shuffle_buffer=settings.training.shuffle_buffer,
            seed=settings.training.seed,
            strategy=strategy or settings.training.strategy,
            mixed_precision=settings.training.mixed_precision,
            lr_decay=settings.training.lr_decay,
            early_stopping_patience=settings.training.early_stopping_patience,
            checkpoint_dir=settings.training.checkpoint_dir,
            sequence_length=t.sequence_length,
            hidden_size=t.hidden_size,
            num_layers=t.num_layers,
            num_heads=t.num_heads,
            ffn_size=t.ffn_size,
            transformer_dropout=t.dropout,
            pooling=t.pooling,
            word_vocab_size=t.word_vocab_size,
            char_vocab_size=t.char_vocab_size,
            pretrained_encoder=t.pretrained_encoder,
            pretrain_epochs=m.pretraining.epochs,
            pretrain_learning_rate=m.pretraining.learning_rate,
            mask_rate=m.pretraining.mask_rate,
            pretrain_batch_size=m.pretraining.batch_size,
            pretrain_head_pieces=m.pretraining.head_pieces,
        )

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any]) -> "TrainerConfig":
        return dataclass_from_config(cls, config, "trainer")


def tuned_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The tunable hyperparameters in ``values`` with their TrainerConfig types (an integer stays
    an integer); KerasTuner's bookkeeping entries (``tuner/epochs``, ...) are left out."""
    return {k: coerce_hyperparameter(k, v) for k, v in values.items() if not k.startswith("tuner/")}


def hyperparameters_config_values(hp_config: Any) -> dict[str, Any]:
    """``tuned_values`` of a ``keras_tuner.HyperParameters.get_config()`` (the Tuner's output file)."""
    values = hp_config.get("values") if isinstance(hp_config, Mapping) else None
    if not isinstance(values, Mapping):
        raise ValueError(f"the best hyperparameters are not a KerasTuner HyperParameters config: {hp_config!r}")
    return tuned_values(values)


def _dataset(file_pattern, data_accessor, tft_output) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=_READ_BATCH, label_key=features.LABEL_ID_KEY, shuffle=False, num_epochs=1
        ),
        tft_output.transformed_metadata.schema,
    )


# Early stopping without a validation split evaluates on training.HOLDOUT_FRACTION of train,
# named so in history.json's eval_splits.
HOLDOUT_SPLIT = "train-holdout"


def split_names(files) -> list[str]:
    """ExampleGen split names (``Split-<name>``) in a list of file patterns."""
    files = [files] if isinstance(files, str) else list(files or [])
    return sorted({m.group(1) for f in files for m in [re.search(r"Split-([^/]+)", f)] if m})


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What ``run_fn`` and the Tuner's trials train on: Transform's outputs and the split files."""

    tft_output: Any
    class_names: list[str]
    vocab_size: int
    vocabulary: Optional[list]  # transformer pieces assembled from Transform's vocabularies
    train_files: Any
    eval_files: Any
    data_accessor: Any

    # Each split read once into memory (training.InMemorySplit), shared by the Tuner's trials.
    splits: dict = dataclasses.field(default_factory=dict, compare=False)

    def _split(self, name: str) -> training.InMemorySplit:
        if name not in self.splits:
            files = self.train_files if name == "train" else self.eval_files
            self.splits[name] = training.InMemorySplit.read(_dataset(files, self.data_accessor, self.tft_output))
        return self.splits[name]

    @property
    def train_examples(self) -> int:
        return self._split("train").size

    def holds_out(self, config: TrainerConfig) -> bool:
        """Whether ``datasets`` holds part of train out: early stopping without a validation split."""
        return bool(config.early_stopping_patience) and "validation" not in split_names(self.eval_files)

    def eval_splits(self, config: TrainerConfig) -> list[str]:
        """What the per-epoch evaluation (``val_*``) runs on."""
        return [HOLDOUT_SPLIT] if self.holds_out(config) else split_names(self.eval_files)

    def model_config(self, config: TrainerConfig):
        return config.model_config(len(self.class_names), self.vocab_size, self.train_examples)

    def train_config(self, config: TrainerConfig) -> training.TrainConfig:
        return config.train_config(self.train_examples)

    def datasets(self, config: TrainerConfig) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """(train, eval): train shuffled and batched by ``config.batch_size_for`` its size."""
        batch_size = config.batch_size_for(self.train_examples)
        training.seed_everything(config.seed)  # before the shuffle is built (InMemorySplit.batches)
        if self.holds_out(config):  # the eval split (the gate's) is then never read
            train, evaluation = self._split("train").hold_out(training.HOLDOUT_FRACTION, config.seed)
        else:
            train, evaluation = self._split("train"), self._split("eval")
        train_ds = train.batches(batch_size, shuffle=True, shuffle_buffer=config.shuffle_buffer, seed=config.seed)
        eval_ds = evaluation.batches(max(batch_size, 256), shuffle=False)
        return train_ds, eval_ds


def load_training_data(fn_args, config: TrainerConfig) -> TrainingData:
    """Class names, vocabulary and split files from the Trainer's or the Tuner's ``fn_args``."""
    tft_output = tft.TFTransformOutput(fn_args.transform_output or fn_args.transform_graph_path)
    class_names = [c.decode("utf-8") for c in tft_output.vocabulary_by_name(features.LABEL_VOCAB_NAME)]
    vocabulary = None
    if config.model_kind == "bow":
        vocab_size = tft_output.vocabulary_size_by_name(features.TOKEN_VOCAB_NAME) + config.oov_buckets
    elif config.pretrained_encoder:
        vocab_size = transformer_lib.read_encoder_config(config.pretrained_encoder).vocab_size
    else:
        vocabulary = text_ops.assemble_vocabulary(
            tft_output.vocabulary_by_name(features.WORD_VOCAB_NAME),
            tft_output.vocabulary_by_name(features.CHAR_VOCAB_NAME),
            config.word_vocab_size,
            config.char_vocab_size,
        )
        vocab_size = len(vocabulary)
    return TrainingData(
        tft_output, class_names, vocab_size, vocabulary, fn_args.train_files, fn_args.eval_files, fn_args.data_accessor
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
    # The Tuner's best hyperparameters (a KerasTuner HyperParameters config), when it ran.
    tuned = hyperparameters_config_values(fn_args.hyperparameters) if fn_args.hyperparameters is not None else None
    if tuned is not None:
        config = config.with_hyperparameters(tuned)
        log.info("training with the tuned hyperparameters %s", tuned)
    configure_precision(config.mixed_precision)
    data = load_training_data(fn_args, config)
    tft_output, class_names, vocab_size, vocabulary = data.tft_output, data.class_names, data.vocab_size, data.vocabulary
    train_ds, eval_ds = data.datasets(config)
    model, history = training.train(
        data.model_config(config),
        train_ds,
        eval_ds,
        data.train_config(config),
        strategy=distribution.make_strategy(config.strategy),
        log_dir=os.path.join(fn_args.model_run_dir, "tensorboard"),
        backup_dir=config.checkpoint_dir or os.path.join(fn_args.model_run_dir, "backup"),
        pretrain=config.pretrain_config(),
        pretrained_encoder=config.pretrained_encoder,
    )
    tokenizer = training.TftTokenizer(
        tft_output.transform_features_layer(), tft_output.raw_feature_spec(), config.text_column
    )
    if config.model_kind == "transformer" and config.pretrained_encoder:
        # Transform looked the pieces up in tables built from the encoder's vocab.txt (no asset):
        # ship the word pieces as an asset, as a data-built vocabulary is, for monitoring's OOV share.
        words_file = os.path.join(tempfile.mkdtemp(prefix="textops-pieces-"), features.WORD_VOCAB_NAME)
        pieces, word_pieces = transformer_lib.read_vocabulary(config.pretrained_encoder)
        with open(words_file, "w", encoding="utf-8") as f:
            f.writelines(f"{w}\n" for w in pieces[text_ops.NUM_SPECIAL : text_ops.NUM_SPECIAL + word_pieces])
        model.textops_word_pieces = tf.saved_model.Asset(words_file)
    # Under MultiWorkerMirroredStrategy every worker must take part in saving; only the chief's
    # copy is the output, the others write to a scratch directory.
    chief = distribution.is_chief()
    export_dir = fn_args.serving_model_dir if chief else tempfile.mkdtemp(prefix="textops-worker-export-")
    training.export_serving_model(model, tokenizer, class_names, export_dir)
    if not chief:
        tf.io.gfile.rmtree(export_dir)
        return
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    if config.model_kind == "transformer":
        # The (pre-)trained encoder in the documented format: another run can start from it
        # (model.transformer.pretrained_encoder).
        source = config.pretrained_encoder
        transformer_lib.save_encoder(
            model.get_layer("encoder"),
            os.path.join(fn_args.model_run_dir, ENCODER_DIR),
            *(transformer_lib.read_vocabulary(source) if source else (vocabulary, config.word_vocab_size)),
        )
    record = {
        "history": history,
        "classes": class_names,
        "vocab_size": vocab_size,
        # What the per-epoch val_* figures were computed on: the validation split when there is
        # one, else a hold-out of train under early stopping, else the eval split.
        "eval_splits": data.eval_splits(config),
        # 1-based epoch whose weights were exported (the best one under early stopping).
        "kept_epoch": (training.kept_epoch(history, data.train_config(config)) or 0) + 1,
    }
    if tuned is not None:
        record["hyperparameters"] = tuned
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump(record, f, indent=2)


# -- the Trainer component: TFX's, plus an ``epochs`` parameter a pipeline run can override ----

EPOCHS_KEY = "epochs"


class TextTrainerSpec(standard_component_specs.TrainerSpec):
    PARAMETERS = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        # Overrides custom_config["epochs"] unless 0 (training.epochs: auto); a RuntimeParameter
        # on Kubeflow (per-run setting).
        EPOCHS_KEY: ExecutionParameter(type=int, optional=True),
    }


class _Executor(tfx_trainer_executor.GenericExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        epochs = exec_properties.get(EPOCHS_KEY)
        if epochs:
            if int(epochs) < 1:
                raise ValueError(f"epochs must be >= 1 (0: by the split's size), got {epochs}")
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
        hyperparameters: Optional[types.BaseChannel] = None,
        eval_split: str = "eval",
    ):
        """``eval_split``: what the Trainer evaluates on each epoch (``validation`` when the data has
        three splits, so the gate's split never steers training)."""
        # The Tuner's best_hyperparameters; absent (not None) without a Tuner, so the node is
        # the same as before tuning existed.
        tuned = {standard_component_specs.HYPERPARAMETERS_KEY: hyperparameters} if hyperparameters is not None else {}
        super().__init__(
            spec=TextTrainerSpec(
                examples=examples,
                transform_graph=transform_graph,
                schema=schema,
                train_args=trainer_pb2.TrainArgs(splits=["train"]),
                eval_args=trainer_pb2.EvalArgs(splits=[eval_split]),
                run_fn=run_fn,
                custom_config=json_utils.dumps(custom_config),
                epochs=epochs,
                model=types.Channel(type=standard_artifacts.Model),
                model_run=types.Channel(type=standard_artifacts.ModelRun),
                **tuned,
            )
        )
