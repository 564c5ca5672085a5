"""Typed settings: loaded once at the entry point (YAML file + CLI overrides) and passed down.

Nothing here reads the environment. Unknown keys are errors, so a typo in a config file cannot
silently fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import ConfigDict, Field, field_validator, model_validator

from textops import features
from textops.config import ConfigError, StrictModel, load_model, parse_override, read_config  # noqa: F401 - re-exported
from textops.tuning import (  # noqa: F401 - re-exported: the search space is part of the settings
    ENCODER_SIZES,
    TUNABLE_HYPERPARAMETERS,
    HyperparameterSpec,
    coerce_hyperparameter,
    default_search_space,
)


SettingsError = ConfigError  # the name the pipeline's callers know

_Section = StrictModel


class SpanSettings(_Section):
    """Span-numbered input: ``<data>/span-1/``, ``span-2/``, ... each with train.csv + test.csv.

    A new span is a new directory. Training reads the train files of the newest ``window``
    spans; evaluation (and the gate against the model in service) reads the newest span's test
    file only, so a candidate is always judged on the newest data.
    """

    window: int = Field(2, ge=1, description="train on the newest N spans (a rolling window)")
    prefix: str = Field("span-", pattern=r"^[A-Za-z0-9_.-]*$", description="span directories are <prefix><number>")


class DataSettings(_Section):
    text_column: str = Field(features.DEFAULT_TEXT_COLUMN, min_length=1)
    label_column: str = Field(features.DEFAULT_LABEL_COLUMN, min_length=1)
    format: Literal["auto", "csv", "tfrecord", "jsonl", "parquet"] = "auto"
    # Used when the input has no separate train/eval files: examples are assigned to splits by
    # a hash of their content, so the split is stable across runs and machines.
    train_buckets: int = Field(9, ge=1)
    eval_buckets: int = Field(1, ge=1)
    # Hash split into three (train / validation / eval) when > 0: the Trainer and the Tuner
    # evaluate on validation, the gate on eval. Given files: train + validation + test.
    validation_buckets: int = Field(0, ge=0)
    # More distinct training labels than this is refused before the run starts (a text or id
    # column named as the label would otherwise fail in the Trainer, minutes later).
    max_classes: int = Field(1000, ge=2, description="most distinct labels a run accepts")
    # Integer labels 0..N-1 become these class names at ExampleGen (schema, gate, reports and the
    # served label use names): a list, or the path of a file with one name a line.
    label_names: Optional[Union[list[str], str]] = None

    @field_validator("label_names")
    @classmethod
    def _names(cls, value):
        if isinstance(value, list):
            if not value or len(set(value)) != len(value) or any(not str(v).strip() for v in value):
                raise ValueError("label_names must be distinct, non-empty names (label 0 is the first)")
        return value
    spans: SpanSettings = Field(default_factory=SpanSettings)

    @model_validator(mode="after")
    def _distinct_columns(self) -> "DataSettings":
        if self.text_column == self.label_column:
            raise ValueError("text_column and label_column must name different columns")
        return self


class SchemaSettings(_Section):
    # A curated schema (schema.pbtxt) replaces inference by SchemaGen when set.
    schema_file: Optional[Path] = None
    # Stop the run before Transform/Trainer when the data violates the schema or the contract.
    fail_on_anomalies: bool = True


class TransformSettings(_Section):
    ngram_max: int = Field(2, ge=1, le=5, description="word n-grams of widths 1..ngram_max")
    # Scripts without spaces (Thai, Chinese, ...) are one token per character; their n-grams go
    # up to this width (a character is nearer a syllable than a word). README, "Accuracy".
    char_ngram_max: int = Field(3, ge=1, le=5, description="n-grams of no-space-script characters up to this width")
    max_tokens: int = Field(400, ge=1, description="tokens kept per text before n-grams")
    vocab_size: int = Field(1_000_000, ge=10, description="most frequent n-grams kept")
    min_count: int = Field(1, ge=1, description="n-grams seen fewer times are out of vocabulary")
    oov_buckets: int = Field(10_000, ge=1, description="hash buckets for out-of-vocabulary n-grams")
    boundaries: bool = Field(True, description='n-grams with start/end markers, e.g. "<s> what"')
    statistics: bool = Field(False, description="Transform also writes TFDV statistics of its input and output (2 more Beam passes)")


class TransformerSettings(_Section):
    """The ``transformer`` model: a BERT-style encoder over word and character pieces."""

    sequence_length: int = Field(64, ge=2, le=4096, description="pieces per text, [CLS] included; longer texts are cut")
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    ffn_size: int = Field(256, ge=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    pooling: Literal["mean", "cls"] = "mean"
    word_vocab_size: int = Field(20_000, ge=1, description="most frequent words kept as whole pieces")
    char_vocab_size: int = Field(1_000, ge=1, description="character pieces other words are spelled with")
    # A directory written by a transformer Trainer run (<model_run>/encoder) or by
    # components.transformer.save_encoder: encoder.json, vocab.txt, checkpoint. Its vocabulary
    # replaces the one Transform would build and its sizes must match the ones above.
    pretrained_encoder: Optional[str] = None

    @model_validator(mode="after")
    def _heads_divide(self) -> "TransformerSettings":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        return self


class PretrainingSettings(_Section):
    """Masked-language-model pre-training of the transformer on the training texts (labels unused)."""

    epochs: int = Field(0, ge=0, description="0: no pre-training")
    learning_rate: Optional[float] = Field(None, gt=0.0, description="null: 0.001 at batch 32, x sqrt(batch_size / 32)")
    mask_rate: float = Field(0.15, gt=0.0, lt=1.0)
    batch_size: int = Field(32, ge=1, description="texts per pre-training step, in batches of similar length")
    head_pieces: Optional[int] = Field(
        2048,
        ge=1,
        description="adaptive softmax: the masked-LM head's first softmax covers the training split's N most "
        "frequent pieces, a second one the rest, computed only where needed (the same exact loss, cheaper "
        "steps); null: one softmax over every piece",
    )


class ModelSettings(_Section):
    kind: Literal["bow", "transformer"] = "bow"
    # bow: a fastText-style bag of n-grams
    embedding_dim: int = Field(64, ge=2)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # bow: "idf" averages the n-gram embeddings weighted by each n-gram's inverse document
    # frequency in the training split (README, "Accuracy"); "none": the plain mean.
    ngram_weighting: Literal["idf", "none"] = "idf"
    transformer: TransformerSettings = Field(default_factory=TransformerSettings)
    pretraining: PretrainingSettings = Field(default_factory=PretrainingSettings)


class TrainingSettings(_Section):
    # With early stopping (the default) the most epochs trained; without, exactly this many.
    # auto: 20 on a split of up to 25,000 rows, fewer on a larger one (no run passes over more than
    # 500,000 examples), never fewer than 5 (fastText's); README, "Training speed".
    epochs: Union[Literal["auto"], int] = Field(
        "auto", description="the most epochs (with early stopping), or exactly this many (without); auto: by the split's size"
    )
    # Stop once the validation split's macro-F1 has not improved for this many epochs and keep
    # the best epoch's weights; the validation split is the data's own, else 10% of train held
    # out (never the test split). 0: train exactly `epochs` (README, "Accuracy").
    early_stopping_patience: int = Field(2, ge=0, description="epochs without a better validation F1 before stopping; 0: off")
    # Unset: the model's default, 256 for bow, 32 for transformer.
    batch_size: Optional[int] = Field(None, ge=1)
    # Unset: the model's default at batch 32, 0.01 for bow (sparse lazy Adam), 0.001 for
    # transformer (AdamW), times sqrt(batch_size / 32) (the square-root scaling rule).
    learning_rate: Optional[float] = Field(None, gt=0.0)
    lr_decay: bool = Field(True, description="linear decay of the learning rate to 0 (as fastText)")
    # auto: mirrored with 2+ GPUs, else one_device (mirroring over one CPU device costs ~4x here).
    strategy: Literal["auto", "one_device", "mirrored", "multi_worker"] = "auto"
    # float16 compute with float32 variables; "auto" switches it on when a GPU is present.
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    # Where training state is saved after each epoch so a killed job resumes (a path that
    # survives the restart, e.g. on object storage for a TFJob); default: inside the model run.
    checkpoint_dir: Optional[str] = None
    seed: int = 42
    shuffle_buffer: int = Field(100_000, ge=1)

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError("should be auto or an integer greater than or equal to 1")


class TuningSettings(_Section):
    """The optional TFX Tuner (KerasTuner) before the Trainer; the Trainer uses its best values."""

    enabled: bool = False
    max_trials: int = Field(6, ge=1, description="trials (models trained) at most; fewer if the space is smaller")
    epochs: int = Field(2, ge=1, description="epochs per trial (hyperband: the most a trial trains)")
    objective: Literal["val_accuracy", "val_f1", "val_loss"] = "val_accuracy"  # loss is minimized
    algorithm: Literal["random", "bayesian", "hyperband"] = "random"
    seed: int = 42
    # name -> spec; names are TrainerConfig fields (TUNABLE_HYPERPARAMETERS). Empty: a default
    # space for the model kind (default_search_space).
    space: dict[str, HyperparameterSpec] = Field(default_factory=dict)

    @field_validator("space", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("space")
    @classmethod
    def _known_names(cls, space: dict[str, HyperparameterSpec]) -> dict[str, HyperparameterSpec]:
        unknown = sorted(set(space) - set(TUNABLE_HYPERPARAMETERS))
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {', '.join(unknown)}; tunable ones: {', '.join(TUNABLE_HYPERPARAMETERS)}"
            )
        return {name: spec.typed(name) for name, spec in space.items()}

    @model_validator(mode="after")
    def _hyperband_epochs(self) -> "TuningSettings":
        if self.algorithm == "hyperband" and self.epochs < 2:
            raise ValueError("algorithm hyperband needs epochs >= 2 (it trains promising trials longer)")
        return self

    def search_space(self, model: "ModelSettings") -> dict[str, HyperparameterSpec]:
        return dict(self.space) or default_search_space(
            model.kind, model.transformer.num_heads, bool(model.transformer.pretrained_encoder)
        )


class Thresholds(_Section):
    """Lower bounds on the candidate's metrics. ``null`` leaves a metric ungated."""

    accuracy: Optional[float] = Field(0.5, ge=0.0, le=1.0)
    precision: Optional[float] = Field(0.5, ge=0.0, le=1.0)
    recall: Optional[float] = Field(0.5, ge=0.0, le=1.0)
    f1: Optional[float] = Field(0.5, ge=0.0, le=1.0)
    auc: Optional[float] = Field(0.7, ge=0.0, le=1.0)

    def gated(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class EvaluationSettings(_Section):
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # Binary tasks report precision/recall/F1/AUC of this class. Unset: the rarer class of the
    # evaluation labels (the usual positive class of an imbalanced task such as spam).
    positive_label: Optional[str] = None
    # The candidate may fall at most this far (absolute) below the model in service on each
    # gated metric. Skipped on the very first push, when there is no model in service.
    change_tolerance: Optional[float] = Field(0.01, ge=0.0, le=1.0)


class PushSettings(_Section):
    model_name: str = Field("text_classifier", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # Default: <output>/model_repository. Local paths and gs:// / s3:// URIs are accepted.
    model_repository: Optional[str] = None


class BeamSettings(_Section):
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: int = Field(1, ge=0, description="0: one per CPU")
    extra_args: list[str] = Field(default_factory=list)

    def pipeline_args(self) -> list[str]:
        return [
            f"--direct_running_mode={self.direct_running_mode}",
            f"--direct_num_workers={self.direct_num_workers}",
            *self.extra_args,
        ]


class Toleration(_Section):
    """A Kubernetes toleration (the GPU node pool's taint, typically)."""

    key: Optional[str] = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None
    toleration_seconds: Optional[int] = Field(None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> "Toleration":
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("a toleration with operator Exists must not set a value")
        if self.operator == "Equal" and self.key is None:
            raise ValueError("a toleration with operator Equal needs a key")
        return self


class ResourceSettings(_Section):
    cpu: Optional[str] = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?m?$", description='e.g. "4" or "500m"')
    memory: Optional[str] = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?(K|M|G|T|Ki|Mi|Gi|Ti)?$", description='e.g. "16G"')
    gpus: int = Field(0, ge=0)
    gpu_resource: str = "nvidia.com/gpu"  # the Kubernetes extended resource the device plugin exposes
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)


class TrainerResourceSettings(ResourceSettings):
    """The Trainer's pod: one GPU on a GPU node pool by default (tolerating the usual GPU taint)."""

    cpu: Optional[str] = Field("4", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: Optional[str] = Field("16G", pattern=r"^[0-9]+(\.[0-9]+)?(K|M|G|T|Ki|Mi|Gi|Ti)?$")
    gpus: int = Field(1, ge=0)
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    )


class DefaultResourceSettings(ResourceSettings):
    cpu: Optional[str] = Field("2", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: Optional[str] = Field("8G", pattern=r"^[0-9]+(\.[0-9]+)?(K|M|G|T|Ki|Mi|Gi|Ti)?$")


class KubeflowBeamSettings(_Section):
    """Where Beam-based components (ExampleGen, StatisticsGen, Transform, Evaluator) run on Kubeflow."""

    runner: Literal["direct", "dataflow", "flink", "spark"] = "direct"
    # Runner options without the leading "--", e.g. {project: p, region: europe-west4} for
    # Dataflow, {flink_master: "host:8081"} for Flink, {spark_master_url: "spark://host:7077"}.
    options: dict[str, str] = Field(default_factory=dict)

    _REQUIRED = {"dataflow": ("project", "region"), "flink": ("flink_master",), "spark": ("spark_master_url",)}

    @model_validator(mode="after")
    def _required_options(self) -> "KubeflowBeamSettings":
        missing = [o for o in self._REQUIRED.get(self.runner, ()) if o not in self.options]
        if missing:
            raise ValueError(f"beam runner {self.runner!r} needs options {missing} (kubeflow.beam.options)")
        return self


class VolumeMount(_Section):
    """A PersistentVolumeClaim mounted into every task of the Kubeflow job."""

    pvc: str = Field(..., pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", description="the claim's name")
    mount_path: str = Field(..., pattern=r"^/.*", description="absolute path in the pods")


class KubeflowSettings(_Section):
    image: str = "textops-pipeline:latest"  # built from deploy/kubeflow/Dockerfile; push it to your registry
    # Component artifacts: gs://, s3:// or minio:// (the launcher copies them in and out of each pod).
    pipeline_root: Optional[str] = None
    # Read by TensorFlow inside the pods: gs://, or a path under one of `volumes`' mount paths.
    data_root: Optional[str] = None  # default of the data_root pipeline parameter
    model_repository: Optional[str] = None  # where the Pusher publishes and serving reads
    volumes: list[VolumeMount] = Field(default_factory=list)
    # Split patterns relative to data_root (remote data is not listed at compile time). Unset:
    # train.csv + test.csv when train_pattern/eval_pattern are both unset and the data is local
    # and discoverable; otherwise every *.csv under data_root, split by hash buckets.
    train_pattern: Optional[str] = None
    eval_pattern: Optional[str] = None  # the test file: what the gate scores
    validation_pattern: Optional[str] = None  # optional third split: what the Trainer/Tuner evaluate on
    beam: KubeflowBeamSettings = Field(default_factory=KubeflowBeamSettings)
    trainer: TrainerResourceSettings = Field(default_factory=TrainerResourceSettings)
    default_resources: DefaultResourceSettings = Field(default_factory=DefaultResourceSettings)


class PipelineSettings(_Section):
    name: str = Field("textops", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    enable_cache: bool = True


class Settings(_Section):
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    schema_: SchemaSettings = Field(default_factory=SchemaSettings, alias="schema")
    transform: TransformSettings = Field(default_factory=TransformSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    tuning: TuningSettings = Field(default_factory=TuningSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    beam: BeamSettings = Field(default_factory=BeamSettings)
    kubeflow: KubeflowSettings = Field(default_factory=KubeflowSettings)

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @field_validator("schema_", mode="before")
    @classmethod
    def _none_is_default(cls, v: Any) -> Any:
        return {} if v is None else v

    @model_validator(mode="after")
    def _tuning_fits_the_model(self) -> "Settings":
        if not self.tuning.enabled:
            return self
        kind, t = self.model.kind, self.model.transformer
        space = self.tuning.search_space(self.model)
        for name in space:
            if kind not in TUNABLE_HYPERPARAMETERS[name].kinds:
                raise ValueError(
                    f"tuning.space.{name} tunes the {'/'.join(TUNABLE_HYPERPARAMETERS[name].kinds)} model but "
                    f"model.kind is {kind}; remove it or tune one of: "
                    + ", ".join(n for n, h in TUNABLE_HYPERPARAMETERS.items() if kind in h.kinds)
                )
            if t.pretrained_encoder and name in ENCODER_SIZES:
                raise ValueError(
                    f"tuning.space.{name}: the pre-trained encoder (model.transformer.pretrained_encoder) fixes "
                    f"{', '.join(ENCODER_SIZES)}; remove it from the space"
                )
        if kind == "transformer" and ("hidden_size" in space or "num_heads" in space):
            sizes = space["hidden_size"].values() if "hidden_size" in space else [t.hidden_size]
            heads = space["num_heads"].values() if "num_heads" in space else [t.num_heads]
            if sizes is None or heads is None:
                raise ValueError("tuning.space: give hidden_size and num_heads as choices or integer ranges")
            bad = next(((h, n) for h in sizes for n in heads if h % n), None)
            if bad:
                raise ValueError(
                    f"tuning.space: hidden_size {bad[0]} is not a multiple of num_heads {bad[1]}; every hidden_size "
                    "the space allows must divide by every num_heads (use choices, or a step that is a multiple)"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def load_settings(
    config_file: Optional[Path] = None, overrides: Optional[list[str]] = None
) -> Settings:
    """Settings from an optional YAML file, then ``KEY=VALUE`` overrides, then validation."""
    return load_model(Settings, config_file, overrides)


def dump_yaml(settings: Settings) -> str:
    return yaml.safe_dump(settings.to_dict(), sort_keys=False)
