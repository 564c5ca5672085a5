"""The feature contract: one place for every name that crosses a component boundary.

Transform, Trainer, Evaluator, the exported SavedModel, serving and monitoring all import these
names instead of repeating string literals.
"""

# Raw columns (defaults; both are configurable in settings.data).
DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"

# Transformed features written by Transform and read by the Trainer.
TOKENS_KEY = "tokens"  # int64 ids of word n-grams, variable length per example (model "bow")
PIECES_KEY = "pieces"  # int64 [sequence_length] piece ids, [CLS] first, 0-padded (model "transformer")
MODEL_INPUT_KEYS = (TOKENS_KEY, PIECES_KEY)  # whichever of these Transform writes feeds the model
LABEL_ID_KEY = "label_id"  # int64 index into the label vocabulary

# Vocabularies computed by Transform (stored as SavedModel assets).
TOKEN_VOCAB_NAME = "token_vocab"
LABEL_VOCAB_NAME = "label_vocab"
WORD_VOCAB_NAME = "piece_words"  # the transformer's word pieces
CHAR_VOCAB_NAME = "piece_chars"  # the transformer's character pieces

# The exported SavedModel.
SERVING_SIGNATURE = "serving_default"  # raw strings in
EXAMPLE_SIGNATURE = "serving_tf_example"  # serialized tf.Example in (used by the Evaluator)
SERVING_INPUT = "text"
OUTPUT_PROBABILITIES = "probabilities"  # float32 [batch, num_classes]
OUTPUT_LABEL = "label"  # string [batch]: the argmax class name
OUTPUT_CLASSES = "classes"  # string [batch, num_classes]: class names, column order of probabilities
TRANSFORMED_FEATURES_SIGNATURE = "transformed_features"  # slicing features for TFMA
TEXT_LENGTH_BUCKET = "text_length_bucket"  # output of that signature: '0-9', '10-29', ... tokens
OUTPUT_SCORES = "scores"  # alias of probabilities in the tf.Example signature (TF classify convention)


def transformed_name(key: str) -> str:
    """Name of a transformed feature derived from a raw column (kept for custom features)."""
    return f"{key}_xf"
