"""TextOps: a text classifier from raw data to a monitored, retrained production endpoint.

TFT 1.16 and TFMA 0.47 are built on Keras 2, while TensorFlow 2.16 maps ``tf.keras`` to Keras 3
unless ``TF_USE_LEGACY_KERAS=1`` is set *before TensorFlow is first imported*. Every module of
this project lives under the ``textops`` package, so setting it here covers the CLI, the module
files TFX imports inside its executors, the Beam workers and the tests.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
