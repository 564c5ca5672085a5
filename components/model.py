"""The default model: a fastText-style bag of word n-grams.

Mean of learned n-gram embeddings -> (dropout) -> linear softmax layer, as in Joulin et al.,
"Bag of Tricks for Efficient Text Classification" (2016). It reads the sparse n-gram ids that
Transform writes and runs without TFX (tests build it on in-memory tensors).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from textops import features


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

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
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
        # An embedding lookup yields one slice per occurrence: sum duplicates per row first.
        rows, positions = tf.unique(gradient.indices)
        grads = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
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


@keras.utils.register_keras_serializable(package="textops")
class EmbeddingBag(keras.layers.Layer):
    """Combines the embeddings of a variable number of ids per row (sparse input) by their mean.

    Rows without ids (an empty text) embed to zeros. Built from core ops
    (``safe_embedding_lookup_sparse``), so any TensorFlow Serving build can run it.
    """

    def __init__(self, input_dim: int, output_dim: int, combiner: str = "mean", **kwargs):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.combiner = combiner

    def build(self, input_shape):
        bound = 0.05
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=keras.initializers.RandomUniform(-bound, bound),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, ids: tf.SparseTensor) -> tf.Tensor:
        return tf.nn.safe_embedding_lookup_sparse(self.embeddings, ids, combiner=self.combiner)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "combiner": self.combiner,
        }


def build_bow_model(config: BowConfig) -> keras.Model:
    """Uncompiled-free Keras model: sparse n-gram ids -> class probabilities."""
    ids = keras.Input(shape=(None,), sparse=True, dtype=tf.int64, name=features.TOKENS_KEY)
    x = EmbeddingBag(config.vocab_size, config.embedding_dim, name="ngram_embeddings")(ids)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout)(x)
    probabilities = keras.layers.Dense(
        config.num_classes, activation="softmax", name="probabilities"
    )(x)
    model = keras.Model(inputs={features.TOKENS_KEY: ids}, outputs=probabilities, name="bow")
    model.compile(
        optimizer=_OPTIMIZERS[config.optimizer](config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
