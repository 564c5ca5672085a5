"""The default model: a fastText-style bag of word n-grams.

Mean of learned n-gram embeddings -> (dropout) -> linear softmax layer, as in Joulin et al.,
"Bag of Tricks for Efficient Text Classification" (2016), the mean weighted by each n-gram's
inverse document frequency in the training split (``BowConfig.ngram_weighting``). It reads the sparse n-gram ids that
Transform writes and runs without TFX (tests build it on in-memory tensors).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from textops import features


NGRAM_WEIGHTINGS = ("idf", "none")


@dataclasses.dataclass(frozen=True)
class BowConfig:
    vocab_size: int  # number of distinct ids (vocabulary + OOV buckets)
    num_classes: int
    embedding_dim: int = 64
    dropout: float = 0.0
    learning_rate: float = 0.01
    # lazy_adam and adagrad update only the embedding rows a batch touches; Keras' Adam rewrites
    # the whole n-gram table every step (about 10x slower on a 200k-row table, same accuracy).
    optimizer: str = "lazy_adam"
    # Linear decay of the learning rate to zero over this many steps (as fastText does); 0: constant.
    decay_steps: int = 0
    # How the n-gram embeddings of a text are averaged: "idf" weights each occurrence by its
    # n-gram's inverse document frequency in the training split (``EmbeddingBag``; set by
    # ``training.train``), so rare, discriminative n-grams count more than "the" or "of";
    # "none": the plain mean.
    ngram_weighting: str = "idf"

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if self.ngram_weighting not in NGRAM_WEIGHTINGS:
            raise ValueError(f"ngram_weighting must be one of {NGRAM_WEIGHTINGS}, got {self.ngram_weighting!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {self.optimizer!r}")
        if self.num_classes < 2:
            raise ValueError(
                f"a classifier needs at least 2 classes, the label vocabulary has {self.num_classes}"
            )


class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the embedding rows present in a sparse gradient.

    Keras' Adam decays the moments of *every* row on each step, a dense pass over the whole
    n-gram table (~20M floats) per batch. Like ``tfa.optimizers.LazyAdam`` (TensorFlow Addons is
    unmaintained), this applies the Adam update to the rows a batch touches, which is what makes
    a large bag-of-n-grams model train at fastText-like speed. Dense gradients use plain Adam.
    """

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        # One slice per row: Keras' apply_gradients has summed an embedding lookup's slices (one
        # per occurrence) per row before any update_step (Optimizer._deduplicate_sparse_grad).
        rows, grads = gradient.indices, tf.cast(gradient.values, dtype)
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grads
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(grads)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


_OPTIMIZERS = {
    "lazy_adam": lambda lr: LazyAdam(learning_rate=lr),
    "adagrad": lambda lr: keras.optimizers.Adagrad(learning_rate=lr),
    "sgd": lambda lr: keras.optimizers.SGD(learning_rate=lr),
    "adam": lambda lr: keras.optimizers.Adam(learning_rate=lr),
}


COMBINERS = ("mean", "sqrtn", "sum")  # as tf.nn.safe_embedding_lookup_sparse's


@keras.utils.register_keras_serializable(package="textops")
class EmbeddingBag(keras.layers.Layer):
    """Combines the embeddings of a variable number of ids per row (sparse input) by their mean.

    ``weighting="idf"``: a weighted mean, each occurrence weighted by its id's inverse document
    frequency (a non-trainable vector saved with the model, ones until
    ``set_document_frequency``), like the tf-idf weighting of a linear text classifier.
    Rows without ids (an empty text) embed to zeros. Built from core ops (``gather``,
    ``segment_sum``, ``pad``, ``div_no_nan``), so any TensorFlow Serving build can run it.

    The weighted mean is computed directly rather than by ``tf.nn.safe_embedding_lookup_sparse``
    (the same numbers, up to the order of the sums): that function's pruning of invalid ids and
    weights, filling of empty rows and ``unique`` before its gather made the train step's graph
    larger, its trace and first run (paid in every Trainer's first epoch) longer and its forward
    pass twice as slow (README, "The bag's own ops"). The ids come from the vocabulary lookup, so
    they are never negative or out of range; the sparse gradient (a slice per occurrence) is
    summed per row by Keras' ``apply_gradients`` before the optimizer's update.
    """

    def __init__(self, input_dim: int, output_dim: int, combiner: str = "mean", weighting: str = "none", **kwargs):
        super().__init__(**kwargs)
        if combiner not in COMBINERS:
            raise ValueError(f"combiner must be one of {COMBINERS}, got {combiner!r}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.combiner = combiner
        self.weighting = weighting

    def build(self, input_shape):
        bound = 0.05
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=keras.initializers.RandomUniform(-bound, bound),
            trainable=True,
        )
        if self.weighting == "idf":
            self.idf = self.add_weight(name="idf", shape=(self.input_dim,), initializer="ones", trainable=False)
        super().build(input_shape)

    def set_document_frequency(self, document_frequency, documents: int) -> None:
        """idf = ln((1 + documents) / (1 + df)) + 1 per id: scikit-learn's smoothed idf
        (``TfidfVectorizer(smooth_idf=True)``); an id no document has gets the largest weight."""
        df = tf.cast(tf.convert_to_tensor(document_frequency), tf.float32)
        if df.shape != (self.input_dim,):
            raise ValueError(f"document frequencies for {self.input_dim} ids expected, got shape {df.shape}")
        self.idf.assign(tf.math.log((1.0 + documents) / (1.0 + df)) + 1.0)

    def call(self, ids: tf.SparseTensor) -> tf.Tensor:
        rows, batch = ids.indices[:, 0], ids.dense_shape[0]
        vectors = tf.gather(self.embeddings, ids.values)
        dtype = vectors.dtype
        # float32 sums under a mixed-precision policy, as safe_embedding_lookup_sparse does
        vectors = tf.cast(vectors, tf.float32)
        if self.weighting == "idf":
            weights = tf.cast(tf.gather(self.idf, ids.values), tf.float32)
            total = _row_sums(vectors * weights[:, None], rows, batch)
        else:
            weights = tf.ones_like(ids.values, dtype=tf.float32)
            total = _row_sums(vectors, rows, batch)
        if self.combiner == "mean":
            total = tf.math.divide_no_nan(total, _row_sums(weights, rows, batch)[:, None])
        elif self.combiner == "sqrtn":
            norm = tf.sqrt(_row_sums(tf.square(weights), rows, batch))
            total = tf.math.divide_no_nan(total, norm[:, None])
        return tf.cast(total, dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "combiner": self.combiner,
            "weighting": self.weighting,
        }


def _row_sums(values: tf.Tensor, rows: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """``values`` summed per row of the batch: ``rows`` are a SparseTensor's row indices, in its
    canonical (row-major, sorted) order, so the sorted ``segment_sum`` applies, padded with zero rows
    for empty rows at the end of the batch. Its gradient is one ``gather``; ``unsorted_segment_sum``'s
    also masks negative ids with a select over every occurrence × embedding width (~1 ms of a 7 ms
    train step at batch 256 on the 100k copy). TensorFlow's CPU kernel rejects unsorted ids."""
    total = tf.math.segment_sum(values, rows)
    missing = batch - tf.shape(total, out_type=tf.int64)[0]
    padding = [[0, missing]] + [[0, 0]] * (len(values.shape) - 1)
    return tf.pad(total, padding)


EMBEDDINGS_LAYER = "ngram_embeddings"


def build_bow_model(config: BowConfig) -> keras.Model:
    """Uncompiled-free Keras model: sparse n-gram ids -> class probabilities."""
    ids = keras.Input(shape=(None,), sparse=True, dtype=tf.int64, name=features.TOKENS_KEY)
    x = EmbeddingBag(config.vocab_size, config.embedding_dim, weighting=config.ngram_weighting, name=EMBEDDINGS_LAYER)(ids)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout)(x)
    # float32 output even under a mixed_float16 policy: a float16 softmax loses precision.
    probabilities = keras.layers.Dense(
        config.num_classes, activation="softmax", name="probabilities", dtype="float32"
    )(x)
    model = keras.Model(inputs={features.TOKENS_KEY: ids}, outputs=probabilities, name="bow")
    model.compile(
        optimizer=_OPTIMIZERS[config.optimizer](
            keras.optimizers.schedules.PolynomialDecay(config.learning_rate, config.decay_steps, 0.0)
            if config.decay_steps
            else config.learning_rate
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=training_metrics(),
    )
    return model


def training_metrics() -> list[keras.metrics.Metric]:
    """What every training step updates: accuracy (and the loss). The full set
    (``classification.epoch_metrics``) is computed per epoch on the evaluation data
    (``training.EpochMetrics``): confusion matrices and an AUC cost more per step than the bow
    model's own forward and backward pass."""
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def use_graph_train_function(model: keras.Model) -> None:
    """Keras' own train step, traced without AutoGraph.

    ``fit`` wraps its step in a ``tf.function`` with AutoGraph on, which converts the Python
    source of every Keras layer, loss, metric and optimizer method it reaches, once per process:
    measured here, that conversion was most of the first epoch (2.7 s to the first batch without
    it, 20-57 s with it, on a shared 2-core machine). The bow model has no data-dependent Python
    control flow, and neither has the transformer (its Python branches are on settings, not on
    tensors), so plain tracing builds the same graph. Single-step executions only.
    """
    model.make_train_function()
    if getattr(model, "_steps_per_execution", None) is not None and int(model._steps_per_execution.numpy()) != 1:
        return  # the multi-step loop is written as a Python ``for`` over a tensor: it needs AutoGraph
    function = model.train_function
    if hasattr(function, "python_function"):
        model.train_function = tf.function(function.python_function, reduce_retracing=True, autograph=False)
