"""Typed settings: loaded once at the entry point (YAML file + CLI overrides) and passed down.

Nothing here reads the environment. Unknown keys are errors, so a typo in a config file cannot
silently fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from textops import features


class SettingsError(ValueError):
    """A configuration file or override is invalid; the message says where and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
    format: Literal["auto", "csv", "tfrecord"] = "auto"
    # Used when the input has no separate train/eval files: examples are assigned to splits by
    # a hash of their content, so the split is stable across runs and machines.
    train_buckets: int = Field(9, ge=1)
    eval_buckets: int = Field(1, ge=1)
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
    max_tokens: int = Field(400, ge=1, description="tokens kept per text before n-grams")
    vocab_size: int = Field(1_000_000, ge=10, description="most frequent n-grams kept")
    min_count: int = Field(1, ge=1, description="n-grams seen fewer times are out of vocabulary")
    oov_buckets: int = Field(10_000, ge=1, description="hash buckets for out-of-vocabulary n-grams")
    boundaries: bool = Field(True, description='n-grams with start/end markers, e.g. "<s> what"')


class ModelSettings(_Section):
    kind: Literal["bow"] = "bow"
    embedding_dim: int = Field(64, ge=2)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class TrainingSettings(_Section):
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(0.01, gt=0.0)
    lr_decay: bool = Field(True, description="linear decay of the learning rate to 0 (as fastText)")
    strategy: Literal["auto", "one_device", "mirrored", "multi_worker"] = "mirrored"
    # float16 compute with float32 variables; "auto" switches it on when a GPU is present.
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    # Where training state is saved after each epoch so a killed job resumes (a path that
    # survives the restart, e.g. on object storage for a TFJob); default: inside the model run.
    checkpoint_dir: Optional[str] = None
    seed: int = 42
    shuffle_buffer: int = Field(100_000, ge=1)


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


class KubeflowSettings(_Section):
    image: str = "textops-pipeline:latest"  # built from deploy/kubeflow/Dockerfile; push it to your registry
    pipeline_root: Optional[str] = None  # gs://, s3:// or minio:// (MinIO in a KFP install)
    data_root: Optional[str] = None  # default of the data_root pipeline parameter
    model_repository: Optional[str] = None  # where the Pusher publishes and serving reads
    # Split patterns relative to data_root (remote data is not listed at compile time). Unset:
    # train.csv + test.csv when train_pattern/eval_pattern are both unset and the data is local
    # and discoverable; otherwise every *.csv under data_root, split by hash buckets.
    train_pattern: Optional[str] = None
    eval_pattern: Optional[str] = None
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
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    beam: BeamSettings = Field(default_factory=BeamSettings)
    kubeflow: KubeflowSettings = Field(default_factory=KubeflowSettings)

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @field_validator("schema_", mode="before")
    @classmethod
    def _none_is_default(cls, v: Any) -> Any:
        return {} if v is None else v

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def format_validation_error(
    err: ValidationError,
    source: str,
    title: str = "invalid settings",
    unknown_hint: str = "see `textops config` for every valid key",
) -> str:
    lines = [f"{title} ({source}):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = e.get("input")
        got_text = "" if isinstance(got, dict) or e["type"] == "extra_forbidden" else f" (got {got!r})"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = f"unknown setting; {unknown_hint}"
        lines.append(f"  - {where}: {msg}{got_text}")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.epochs=3`` -> (["training", "epochs"], 3). Values are parsed as YAML."""
    if "=" not in text:
        raise SettingsError(f"override {text!r} is not KEY=VALUE (e.g. training.epochs=3)")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise SettingsError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise SettingsError(f"override {text!r}: value is not valid YAML: {exc}") from None
    return path, value


def set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Sets ``data[a][b][c] = value`` for path [a, b, c], creating sections on the way."""
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise SettingsError(f"cannot set {'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def read_config(
    config_file: Optional[Path], overrides: Optional[list[str]], what: str = "config file"
) -> tuple[dict[str, Any], str]:
    """The raw mapping from an optional YAML file with ``KEY=VALUE`` overrides applied, and a
    description of where it came from (for error messages). Raises SettingsError."""
    data: dict[str, Any] = {}
    source = "defaults"
    if config_file is not None:
        path = Path(config_file)
        source = str(path)
        if not path.is_file():
            raise SettingsError(f"{what} {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{what} {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"{what} {path} must be a mapping of sections, not a {type(loaded).__name__}")
        data = loaded or {}
    for item in overrides or []:
        key_path, value = parse_override(item)
        set_path(data, key_path, value)
        source = f"{source} + overrides"
    return data, source


def load_settings(
    config_file: Optional[Path] = None, overrides: Optional[list[str]] = None
) -> Settings:
    """Settings from an optional YAML file, then ``KEY=VALUE`` overrides, then validation."""
    data, source = read_config(config_file, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise SettingsError(format_validation_error(err, source)) from None


def dump_yaml(settings: Settings) -> str:
    return yaml.safe_dump(settings.to_dict(), sort_keys=False)
