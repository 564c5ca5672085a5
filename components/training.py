"""Training and export, independent of TFX.

``run_fn`` (components/trainer.py) maps TFX's ``fn_args`` onto these functions; tests and the
bare-training benchmark call them directly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tf_keras as keras

from textops import features
from textops.components import classification
from textops.components import model as model_lib
from textops.components import transformer as transformer_lib
from textops.components import text as text_ops
from textops.components.model import use_graph_train_function  # noqa: F401 - part of this module's API

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 32
    shuffle_buffer: int = 100_000
    seed: int = 42
    lr_decay: bool = True  # linear decay to 0 over the whole run
    # > 0 (with evaluation data): ``epochs`` is the most trained; training stops once the
    # evaluation metric below has not improved for this many epochs and keeps the best epoch's
    # weights (``BestEpoch``).
    early_stopping_patience: int = 0
    # Macro-F1 rather than the loss: on imbalanced data (wisesight_sentiment) the loss is lowest
    # after the first epoch, where the model mostly answers the majority class (README, "Accuracy").
    early_stopping_metric: str = "f1"  # val_<name>: loss, accuracy, f1, precision, recall, auc


# Early stopping on data without a validation split: this share of the training examples, drawn
# by the seed, is held out as the validation split (so the test split never steers training).
HOLDOUT_FRACTION = 0.1

REFERENCE_BATCH_SIZE = 32  # the batch size the models' default learning rates were tuned at


MIN_STEPS_PER_EPOCH = 32  # an automatic batch size leaves at least this many steps per epoch


def auto_batch_size(train_examples: int, largest: int) -> int:
    """``largest``, or smaller for a small training split: at least ``MIN_STEPS_PER_EPOCH`` steps
    per epoch (a 600-text split at 256 would train 3 steps an epoch), never below 32."""
    return max(REFERENCE_BATCH_SIZE, min(largest, train_examples // MIN_STEPS_PER_EPOCH))


MOST_EPOCHS = 20  # training.epochs: auto on a split of up to EPOCH_BUDGET_EXAMPLES / MOST_EPOCHS rows
FEWEST_AUTO_EPOCHS = 5  # fastText's default epochs
EPOCH_BUDGET_EXAMPLES = 500_000  # training.epochs: auto passes over at most this many examples (above the floor)


def auto_epochs(train_examples: Optional[int]) -> int:
    """The most epochs for a split of ``train_examples`` rows (``training.epochs: auto``):
    ``MOST_EPOCHS`` on a split of up to 25,000 rows, fewer on a larger one, so that a run passes
    over at most ``EPOCH_BUDGET_EXAMPLES`` examples, but never fewer than fastText's 5.

    The learning rate decays to 0 over these epochs and early stopping usually ends sooner; on a
    large split each epoch is many more updates, and 20 passes with a patience of 2 epochs cost
    far more than they gain (README, "Training speed": a 100k-row split trained 8 epochs to reach
    what 5 reach). Unknown size: ``MOST_EPOCHS``."""
    if not train_examples:
        return MOST_EPOCHS
    return max(FEWEST_AUTO_EPOCHS, min(MOST_EPOCHS, math.ceil(EPOCH_BUDGET_EXAMPLES / train_examples)))


def scaled_learning_rate(learning_rate_at_reference: float, batch_size: int) -> float:
    """The square-root scaling rule for Adam-type optimizers: a batch ``k`` times larger takes a
    learning rate ``sqrt(k)`` times larger (the gradient noise falls by ``sqrt(k)``; Malladi et
    al., "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", 2022). Measured on
    ag_news for the bow model: batch 256 at 0.01 x sqrt(8) matches batch 32 at 0.01."""
    return learning_rate_at_reference * math.sqrt(batch_size / REFERENCE_BATCH_SIZE)


@dataclasses.dataclass(frozen=True)
class InMemorySplit:
    """A split's examples read and parsed once into whole-split tensors: sparse features as one
    ragged tensor each (values + row lengths), dense ones concatenated; labels ``[n]``."""

    inputs: Any
    labels: tf.Tensor

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def read(cls, dataset: tf.data.Dataset) -> "InMemorySplit":
        """Every (features, label) batch of ``dataset``, once."""
        parts = list(dataset)
        if not parts:
            raise ValueError("the training or evaluation data has no examples")
        first = parts[0][0]

        def column(get):
            values = [get(inputs) for inputs, _ in parts]
            if isinstance(values[0], tf.SparseTensor):
                values = [tf.RaggedTensor.from_sparse(v) for v in values]
            return tf.concat(values, axis=0)

        if isinstance(first, Mapping):
            inputs = {k: column(lambda x, k=k: x[k]) for k in sorted(first)}
        else:
            inputs = column(lambda x: x)
        return cls(inputs, tf.concat([labels for _, labels in parts], axis=0))

    def take(self, index) -> "InMemorySplit":
        """The examples at ``index`` (a 1-D integer tensor or list), in that order."""
        index = tf.constant(index, tf.int64) if not isinstance(index, tf.Tensor) else index
        gather = lambda tensor: tf.gather(tensor, index)  # noqa: E731  (ragged rows stay ragged)
        inputs = {k: gather(v) for k, v in self.inputs.items()} if isinstance(self.inputs, Mapping) else gather(self.inputs)
        return InMemorySplit(inputs, gather(self.labels))

    def hold_out(self, fraction: float, seed: int) -> tuple["InMemorySplit", "InMemorySplit"]:
        """(rest, held out): a seeded random ``fraction`` of the examples set apart (at least one
        example, and at least one left to train on), e.g. a validation split for early stopping
        when the data has none of its own."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the held-out fraction must be between 0 and 1, got {fraction}")
        if self.size < 2:
            raise ValueError(f"cannot hold out examples of a split of {self.size}: early stopping needs 2 or more")
        held = min(self.size - 1, max(1, round(self.size * fraction)))
        order = np.random.default_rng(seed).permutation(self.size)
        return self.take(order[held:]), self.take(order[:held])

    def _gather(self, index: tf.Tensor):
        def take(tensor):
            rows = tf.gather(tensor, index)
            return rows.to_sparse() if isinstance(rows, tf.RaggedTensor) else rows

        inputs = {k: take(v) for k, v in self.inputs.items()} if isinstance(self.inputs, Mapping) else take(self.inputs)
        return inputs, tf.gather(self.labels, index)

    def batches(self, batch_size: int, *, shuffle: bool, shuffle_buffer: int = 100_000, seed: int = 42) -> tf.data.Dataset:
        """(features, label) batches, reshuffled every epoch when ``shuffle``; known cardinality.

        The order follows ``seed`` *and* TensorFlow's global seed (``tf.data``'s shuffle combines
        the two): call ``seed_everything`` first, or the first training of a process (no global seed
        yet) shuffles differently from every later one with the same seed."""
        indices = tf.data.Dataset.range(self.size)
        if shuffle:
            indices = indices.shuffle(min(self.size, shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
        batches = indices.batch(batch_size).map(self._gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return batches.prefetch(tf.data.AUTOTUNE)


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and TensorFlow's global seeds (``keras.utils.set_random_seed``): what a
    training job calls before it builds its datasets, so that a run with the same seed trains
    the same model whatever ran before it in the process."""
    keras.utils.set_random_seed(seed)


def prepare_dataset(
    dataset: tf.data.Dataset, batch_size: int, *, shuffle: bool, shuffle_buffer: int = 100_000, seed: int = 42
) -> tf.data.Dataset:
    """Batched (features, label) -> the same examples held in memory, optionally shuffled, in
    batches of ``batch_size``, prefetched.

    The examples are read and parsed once, here, into whole-split tensors (sparse n-gram ids as
    one ragged tensor); each epoch then shuffles example *indices* and gathers each batch with
    one vectorized ``tf.gather``. An element-wise pipeline (``unbatch().cache().shuffle().batch()``)
    pays per example for every sparse tensor it splits and re-batches, and its first epoch also
    reads and parses the files: here the first epoch costs what the others do. The dataset's
    cardinality is known (steps per epoch without a counting pass). Memory: the split once, as
    the cache it replaces.
    """
    return InMemorySplit.read(dataset).batches(batch_size, shuffle=shuffle, shuffle_buffer=shuffle_buffer, seed=seed)


ModelConfig = Union[model_lib.BowConfig, transformer_lib.ClassifierConfig]


def document_frequency(dataset: tf.data.Dataset, vocab_size: int) -> tuple[tf.Tensor, int]:
    """(per n-gram id, how many examples hold it at least once; how many examples) in one pass
    over ``dataset``'s (features, label) batches, the ids sparse under ``features.TOKENS_KEY``."""

    def add(state, batch):
        counts, examples = state
        inputs, labels = batch
        ids = inputs[features.TOKENS_KEY] if isinstance(inputs, Mapping) else inputs
        # Each (example, id) pair once, however often the n-gram occurs in the text.
        pairs, _ = tf.unique(ids.indices[:, 0] * vocab_size + ids.values)
        counts += tf.math.unsorted_segment_sum(tf.ones_like(pairs), pairs % vocab_size, vocab_size)
        return counts, examples + tf.shape(labels, out_type=tf.int64)[0]

    counts, examples = dataset.reduce((tf.zeros([vocab_size], tf.int64), tf.constant(0, tf.int64)), add)
    return counts, int(examples)


def _count_batches(dataset: tf.data.Dataset) -> int:
    known = int(dataset.cardinality())
    if known >= 0:  # prepare_dataset's batches: known without reading them
        return known
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


class EpochMetrics(keras.callbacks.Callback):
    """The evaluation metrics (``classification.epoch_metrics``: the loss, accuracy, macro
    precision, recall and F1, and AUC) over ``dataset``, once per epoch, as ``val_<name>``.

    Training steps update only the loss and accuracy; the rest runs here, once per epoch over the
    evaluation data, instead of on every training batch. Each epoch runs the model over the
    evaluation batches (read once and kept: ``InMemorySplit`` already holds the split in memory)
    and computes the metrics in numpy from the whole split's probabilities, so only the forward
    pass is TensorFlow. ``traced=False`` (the bow model: a handful of ops) runs it eagerly and
    the first epoch traces nothing for it; the transformer's is traced once and reused. Measured
    (README, "first ÷ later epoch"): Keras metric objects traced into one ``dataset.reduce`` made the first
    pass 1.0-2.0 s on a small split (later ones 0.25-0.4 s), and the same objects run eagerly
    cost 6 s in their first call, once per process.
    Put first among the callbacks, so the others (History, TensorBoard, a Tuner) see the values.
    """

    def __init__(self, dataset: tf.data.Dataset, num_classes: int, traced: bool = True):
        super().__init__()
        self.dataset = dataset
        self.num_classes = num_classes
        self.traced = traced
        self._forward = None
        self._batches: list = []
        self._labels: Optional[np.ndarray] = None

    def _build(self) -> None:
        model = self.model

        def forward(inputs):
            return model(inputs, training=False)

        self._forward = tf.function(forward, reduce_retracing=True) if self.traced else forward
        batches = list(self.dataset)  # one pass: inputs and labels of the same iteration, in order
        if not batches:
            raise ValueError("the evaluation data has no examples")
        self._batches = [inputs for inputs, _ in batches]
        self._labels = np.concatenate([np.asarray(labels).reshape(-1) for _, labels in batches])

    def on_epoch_end(self, epoch, logs=None):
        if self._forward is None:
            self._build()
        probabilities = np.concatenate([np.asarray(self._forward(inputs)) for inputs in self._batches], axis=0)
        if probabilities.shape[-1] != self.num_classes:
            raise ValueError(f"the model scores {probabilities.shape[-1]} classes, expected {self.num_classes}")
        values = classification.epoch_metrics(self._labels, probabilities)
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in values.items()})


def _direction(metric: str) -> float:
    """1 for a metric that is better lower (a loss), -1 for one better higher (accuracy, F1, AUC)."""
    return 1.0 if metric.endswith("loss") else -1.0


class BestEpoch(keras.callbacks.Callback):
    """Early stopping on an evaluation metric (``monitor``, from ``EpochMetrics``: a loss must
    fall, a score rise), keeping the weights of the best epoch.

    Stops once ``patience`` epochs in a row have not beaten the best value so far (a tie is no
    improvement), and at the end of training (stopped or not) puts the best epoch's weights back. The weights are
    copied into variables beside the model's (on its device, no round trip through NumPy: the
    n-gram table is hundreds of MB). ``best_epoch`` (0-based) and ``stopped_epoch`` (None when
    all epochs ran) tell what happened.
    """

    def __init__(self, patience: int, monitor: str = "val_loss"):
        super().__init__()
        if patience < 1:
            raise ValueError(f"early-stopping patience must be >= 1, got {patience}")
        self.patience = patience
        self.monitor = monitor
        self.sign = _direction(monitor)
        self.best = math.inf
        self.best_epoch: Optional[int] = None
        self.stopped_epoch: Optional[int] = None
        self._saved: list[tf.Variable] = []

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.stopped_epoch = math.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            raise ValueError(
                f"early stopping needs {self.monitor!r} each epoch (evaluation data), got only {sorted(logs or {})}"
            )
        current = self.sign * current
        if current < self.best:
            self.best, self.best_epoch = current, epoch
            if not self._saved:
                self._saved = [tf.Variable(w, trainable=False) for w in self.model.weights]
            else:
                for saved, weight in zip(self._saved, self.model.weights):
                    saved.assign(weight)
        elif epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._saved and self.best_epoch is not None:
            for saved, weight in zip(self._saved, self.model.weights):
                weight.assign(saved)
            log.info("kept the weights of epoch %d (lowest %s %.4f)", self.best_epoch + 1, self.monitor, self.best)


def _backup(strategy: tf.distribute.Strategy, backup_dir: Optional[str]) -> list[keras.callbacks.Callback]:
    if not backup_dir:
        return []
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        # Keras' BackupAndRestore supports the default, Mirrored, MultiWorkerMirrored and TPU
        # strategies only.
        log.warning("checkpoint/resume is off under OneDeviceStrategy; use 'mirrored' to resume killed jobs")
        return []
    return [keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch", delete_checkpoint=True)]


def _build_transformer(
    model_config: transformer_lib.ClassifierConfig,
    train_dataset: tf.data.Dataset,
    steps: int,
    config: TrainConfig,
    pretrain: Optional[transformer_lib.PretrainConfig],
    pretrained_encoder: Optional[str],
    backup_dir: Optional[str],
    strategy: tf.distribute.Strategy,
    log_dir: Optional[str],
    verbose: int,
) -> tuple[keras.Model, dict[str, list[float]], Optional[transformer_lib.Encoder]]:
    """Encoder (new, or loaded) -> optional masked-LM pre-training -> classifier on top of it.

    A finished pre-training stage is saved under ``backup_dir/pretrained`` so a job killed during
    fine-tuning resumes there instead of pre-training again.
    """
    history: dict[str, list[float]] = {}
    stage_dir = os.path.join(backup_dir, "pretrained") if backup_dir else None
    resumed = bool(stage_dir) and tf.io.gfile.exists(os.path.join(stage_dir, transformer_lib.ENCODER_CONFIG_FILE))
    with strategy.scope():
        source = stage_dir if resumed else pretrained_encoder
        encoder = (
            transformer_lib.load_encoder(source, model_config.encoder)
            if source
            else transformer_lib.build_encoder(model_config.encoder)
        )
    if pretrain is not None and pretrain.epochs and not resumed:
        with strategy.scope():
            history.update(
                transformer_lib.pretrain_mlm(
                    encoder,
                    train_dataset,
                    pretrain,
                    steps,
                    log_dir=os.path.join(log_dir, "pretraining") if log_dir else None,
                    verbose=verbose,
                    seed=config.seed,
                    callbacks=_backup(strategy, os.path.join(backup_dir, "mlm") if backup_dir else None),
                )
            )
        if stage_dir:
            transformer_lib.save_encoder(encoder, stage_dir)
    elif resumed:
        log.info("pre-training already finished before the restart; resuming from %s", stage_dir)
    total = model_config.decay_steps or (steps * config.epochs if config.lr_decay else 0)
    # Warm-up over the first 10% of the steps (BERT's fine-tuning recipe), then linear decay.
    model_config = dataclasses.replace(
        model_config, decay_steps=total, warmup_steps=model_config.warmup_steps or total // 10
    )
    with strategy.scope():
        model = transformer_lib.build_classifier(model_config, encoder)
    return model, history, encoder


def train(
    model_config: ModelConfig,
    train_dataset: tf.data.Dataset,
    eval_dataset: Optional[tf.data.Dataset],
    config: TrainConfig,
    strategy: Optional[tf.distribute.Strategy] = None,
    log_dir: Optional[str] = None,
    verbose: int = 2,
    backup_dir: Optional[str] = None,
    steps_per_epoch: Optional[int] = None,
    pretrain: Optional[transformer_lib.PretrainConfig] = None,
    pretrained_encoder: Optional[str] = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Builds the model under ``strategy`` and fits it; returns the model and its history.

    ``model_config`` picks the model: ``BowConfig`` (bag of n-grams) or ``ClassifierConfig``
    (Transformer encoder; ``pretrain`` adds masked-LM pre-training on the training texts first,
    ``pretrained_encoder`` starts from an encoder saved by ``transformer.save_encoder``).
    ``backup_dir``: Keras BackupAndRestore state (weights, optimizer, epoch) written after every
    epoch; a job killed mid-way and started again with the same directory resumes from its last
    completed epoch instead of starting over (the directory is removed when training finishes).
    """
    seed_everything(config.seed)
    strategy = strategy or tf.distribute.get_strategy()
    history: dict[str, list[float]] = {}
    if isinstance(model_config, transformer_lib.ClassifierConfig):
        steps = steps_per_epoch or _count_batches(train_dataset)
        model, history, _ = _build_transformer(
            model_config, train_dataset, steps, config, pretrain, pretrained_encoder, backup_dir, strategy, log_dir, verbose
        )
        backup_dir = os.path.join(backup_dir, "classifier") if backup_dir else None
    else:
        if config.lr_decay and not model_config.decay_steps:
            steps = steps_per_epoch or _count_batches(train_dataset)
            model_config = dataclasses.replace(model_config, decay_steps=max(1, steps * config.epochs))
        with strategy.scope():
            model = model_lib.build_bow_model(model_config)
            if model_config.ngram_weighting == "idf":  # the training split's idf, before the first step
                model.get_layer(model_lib.EMBEDDINGS_LAYER).set_document_frequency(
                    *document_frequency(train_dataset, model_config.vocab_size)
                )
    bow = isinstance(model_config, model_lib.BowConfig)
    use_graph_train_function(model)
    if eval_dataset is not None:  # first: the callbacks after it see the val_ metrics
        callbacks = [EpochMetrics(eval_dataset, model_config.num_classes, traced=not bow), *callbacks]
        if config.early_stopping_patience:  # right after the metrics it reads; restores before the others end
            callbacks.insert(1, BestEpoch(config.early_stopping_patience, f"val_{config.early_stopping_metric}"))
    callbacks = [*callbacks, *_backup(strategy, backup_dir)]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    if steps_per_epoch is None and int(train_dataset.cardinality()) > 0:
        # One iterator for the whole run instead of a new one per epoch (each costs ~0.15 s
        # here); the indices are still reshuffled every epoch (prepare_dataset).
        steps_per_epoch = int(train_dataset.cardinality())
        train_dataset = train_dataset.repeat()
    with strategy.scope():
        # The optimizer's slots now rather than inside the first traced step, which would then
        # be traced a second time (tf.function retraces a function that created variables).
        model.optimizer.build(model.trainable_variables)
    fit = model.fit(
        train_dataset,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )
    history.update({k: [float(v) for v in vals] for k, vals in fit.history.items()})
    return model, history


def kept_epoch(history: Mapping[str, Sequence[float]], config: TrainConfig) -> Optional[int]:
    """The 0-based epoch whose weights ``train`` kept: under early stopping the first best
    epoch of the watched metric (as ``BestEpoch`` chose it), else the last; None without a history."""
    watched = history.get(f"val_{config.early_stopping_metric}") or []
    if config.early_stopping_patience and watched:
        sign = _direction(config.early_stopping_metric)
        return min(range(len(watched)), key=lambda epoch: sign * watched[epoch])
    epochs = max((len(v) for v in history.values()), default=0)
    return epochs - 1 if epochs else None


def _raw_text_input(text: tf.Tensor, spec: Any) -> Any:
    """Shapes a ``[batch]`` string tensor like the raw feature the TFT graph was traced with."""
    if isinstance(spec, tf.io.VarLenFeature):
        n = tf.shape(text, out_type=tf.int64)[0]
        indices = tf.stack([tf.range(n), tf.zeros([n], tf.int64)], axis=1)
        return tf.SparseTensor(indices=indices, values=text, dense_shape=tf.stack([n, 1]))
    if isinstance(spec, tf.io.FixedLenFeature):
        return tf.reshape(text, [-1, *spec.shape])
    raise TypeError(f"unsupported raw text feature spec {spec!r}")


LENGTH_BUCKETS = (10, 30, 100)  # word-token boundaries of the text-length slices


def text_length_bucket(text: tf.Tensor) -> tf.Tensor:
    """'0-9', '10-29', '30-99' or '100+' word tokens: the text-length slice of each text."""
    n = tf.cast(text_ops.tokenize(text).row_lengths(), tf.int64)
    edges = list(LENGTH_BUCKETS)
    names = [f"{lo}-{hi - 1}" for lo, hi in zip([0] + edges[:-1], edges)] + [f"{edges[-1]}+"]
    index = tf.searchsorted(tf.constant(edges, tf.int64), n, side="right")
    return tf.gather(tf.constant(names), index)


class TftTokenizer(tf.Module):
    """Raw text -> the model's inputs through the Transform graph (the pipeline's tokenizer)."""

    def __init__(self, transform_layer: keras.layers.Layer, raw_feature_spec: Mapping[str, Any], text_column: str):
        super().__init__(name="tft_tokenizer")
        if text_column not in raw_feature_spec:
            raise ValueError(
                f"text column {text_column!r} is not a raw feature of the transform graph "
                f"(features: {sorted(raw_feature_spec)})"
            )
        self.transform_layer = transform_layer  # tracked: its vocabularies become SavedModel assets
        self.text_column = text_column
        self.text_spec = raw_feature_spec[text_column]

    def __call__(self, text: tf.Tensor) -> dict[str, Any]:
        transformed = self.transform_layer({self.text_column: _raw_text_input(text, self.text_spec)})
        return {k: v for k, v in transformed.items() if k in features.MODEL_INPUT_KEYS}


def export_serving_model(
    model: keras.Model,
    tokenizer: Callable[[tf.Tensor], Mapping[str, Any]],
    class_names: Sequence[str],
    export_dir: str,
) -> None:
    """Writes a SavedModel whose signatures take raw text (and tf.Examples) end to end.

    - ``serving_default``: ``text`` string[batch] -> probabilities, label, classes.
    - ``serving_tf_example``: serialized tf.Example[batch] with the text under ``text`` or the
      tokenizer's raw column -> the same outputs plus ``scores`` (TF's classify naming, which
      TFMA uses to map string labels to class ids).
    ``tokenizer`` (a tf.Module: the Transform graph, or a vocabulary table) is saved with the
    model, so nothing outside the SavedModel is needed to serve it.
    """
    model.textops_tokenizer = tokenizer  # tracked, so its assets are saved
    classes = tf.constant(list(class_names), dtype=tf.string)
    text_column = getattr(tokenizer, "text_column", features.SERVING_INPUT)

    def _predict(text: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = model(model.textops_tokenizer(text))
        batch = tf.shape(probabilities)[0]
        return {
            features.OUTPUT_PROBABILITIES: probabilities,
            features.OUTPUT_LABEL: tf.gather(classes, tf.argmax(probabilities, axis=1)),
            features.OUTPUT_CLASSES: tf.tile(classes[tf.newaxis, :], [batch, 1]),
        }

    # Traced without AutoGraph: the tokenizer and the models are core TensorFlow ops with no
    # data-dependent Python control flow, and AutoGraph's conversion of every function these
    # reach (the Transform graph's layer, Keras' layers) was most of the export's time.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_INPUT)], autograph=False)
    def serve_text(text):
        return _predict(text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_tf_example(examples):
        parsed = tf.io.parse_example(examples, {text_column: tf.io.FixedLenFeature([], tf.string, default_value="")})
        outputs = _predict(parsed[text_column])
        outputs[features.OUTPUT_SCORES] = outputs[features.OUTPUT_PROBABILITIES]
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def transformed_features(examples):
        parsed = tf.io.parse_example(examples, {text_column: tf.io.FixedLenFeature([], tf.string, default_value="")})
        return {features.TEXT_LENGTH_BUCKET: text_length_bucket(parsed[text_column])}

    signatures = {
        features.SERVING_SIGNATURE: serve_text.get_concrete_function(),
        features.EXAMPLE_SIGNATURE: serve_tf_example.get_concrete_function(),
        # Slicing features for TFMA (ModelSpec.preprocessing_function_names).
        features.TRANSFORMED_FEATURES_SIGNATURE: transformed_features.get_concrete_function(),
    }
    # save_traces=False: the signatures above are what serving, the Evaluator and monitoring load
    # (tf.saved_model.load); tracing every Keras layer's call again for a Keras-level reload
    # (which nothing does) was most of the export's time.
    model.save(export_dir, save_format="tf", signatures=signatures, include_optimizer=False, save_traces=False)
    log.info("exported SavedModel with signatures %s to %s", sorted(signatures), export_dir)
