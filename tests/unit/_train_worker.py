"""A training process for tests/unit/test_distributed.py (not a test module).

argv: out.npy  mode  [extra]
  mode "single"            : one process, default strategy
  mode "worker" INDEX      : one of two MultiWorkerMirroredStrategy workers (TF_CONFIG in env)
  mode "resume" BACKUP_DIR : one process with BackupAndRestore; exits hard after epoch
                             KILL_AFTER_EPOCH (env) to simulate a killed job
"""

import os
import sys

import textops  # noqa: F401  (before TensorFlow)
import numpy as np
import tensorflow as tf
import tf_keras as keras

from textops.components import distribution, model as model_lib, training

GLOBAL_BATCH, STEPS, VOCAB, CLASSES = 16, 12, 50, 3


def data():
    rng = np.random.default_rng(7)
    n = GLOBAL_BATCH * STEPS
    rows = [rng.choice(VOCAB, size=rng.integers(1, 6), replace=False) for _ in range(n)]
    labels = np.array([int(r[0]) % CLASSES for r in rows])
    indices = [[i, j] for i, r in enumerate(rows) for j in range(len(r))]
    values = np.concatenate(rows).astype(np.int64)
    ids = tf.SparseTensor(indices, values, [n, 5])
    ds = tf.data.Dataset.from_tensor_slices(({"tokens": ids}, labels)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


class DieAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            os._exit(17)  # like SIGKILL: no cleanup, no final save


def main():
    out, mode = sys.argv[1], sys.argv[2]
    config = model_lib.BowConfig(vocab_size=VOCAB, num_classes=CLASSES, embedding_dim=8, learning_rate=0.05)
    train_config = training.TrainConfig(epochs=int(os.environ.get("EPOCHS", "1")), batch_size=GLOBAL_BATCH, lr_decay=False)
    strategy = distribution.make_strategy("multi_worker") if mode == "worker" else None
    backup = sys.argv[3] if mode == "resume" else None
    if mode == "resume" and os.environ.get("KILL_AFTER_EPOCH"):
        original = keras.callbacks.BackupAndRestore

        class Dying(original):  # BackupAndRestore first (it saves at epoch end), then die
            def on_epoch_end(self, epoch, logs=None):
                super().on_epoch_end(epoch, logs)
                DieAfterEpoch(int(os.environ["KILL_AFTER_EPOCH"])).on_epoch_end(epoch, logs)

        keras.callbacks.BackupAndRestore = Dying
    model, _ = training.train(config, data(), None, train_config, strategy=strategy, verbose=0, backup_dir=backup)
    weights = np.concatenate([w.numpy().ravel() for w in model.weights])
    np.save(out, np.concatenate([weights, [float(model.optimizer.iterations.numpy())]]))


if __name__ == "__main__":
    main()
