"""The one pipeline factory. Runners decide only *where* it runs.

``create_pipeline`` builds the TFX pipeline from typed settings and explicit locations; it reads
no environment. The local runner (``pipelines/local_runner.py``) and the Kubeflow compiler run
the very same object, so a local run is the cluster run's dress rehearsal.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

# Not `from tfx import v1`: its extensions import google.cloud.aiplatform (several seconds of every
# run's start on 2 cores) for components this pipeline does not use.
from tfx import components as tfx_components
from tfx.proto import pusher_pb2, range_config_pb2, trainer_pb2
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2

from textops import model_repository
from textops.components import evaluator as evaluator_lib
from textops.serving import infra_validator as infra_validator_lib
from textops.components import preprocessing, pusher as pusher_lib, trainer as trainer_lib, validation
from textops.components import tuner as tuner_lib
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from textops import data as data_lib
from textops.components import example_gen as example_gen_lib
from textops.data import DataSource
from textops.settings import Settings

PREPROCESSING_FN = f"{preprocessing.__name__}.preprocessing_fn"
RUN_FN = f"{trainer_lib.__name__}.run_fn"

# Node ids, in execution order (also the order progress is reported in).
COMPONENT_ORDER = (
    "CsvExampleGen",
    "ImportExampleGen",
    "FileBasedExampleGen",  # JSON Lines, Parquet
    "StatisticsGen",
    "SchemaGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "Transform",
    "Tuner",
    "Trainer",
    "Evaluator",
    "InfraValidator",
    "Pusher",
)


def epochs_parameter(settings: Settings) -> int:
    """The Trainer's ``epochs`` parameter for ``training.epochs``: the number, or 0 for ``auto``
    (0 overrides nothing: the Trainer applies the rule of its config, ``training.auto_epochs``)."""
    epochs = settings.training.epochs
    return 0 if epochs == "auto" else int(epochs)


@dataclasses.dataclass(frozen=True)
class RunParameters:
    """What users change per run. Plain values locally; Kubeflow RuntimeParameters on a cluster
    (pipeline parameters of the compiled job, flowing into the components below)."""

    data_root: Any
    epochs: Any
    thresholds: dict[str, Any]

    @classmethod
    def from_settings(cls, settings: Settings, source: DataSource) -> "RunParameters":
        return cls(source.input_base, epochs_parameter(settings), settings.evaluation.thresholds.gated())


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where a run reads and writes; chosen by the runner, not by the settings."""

    pipeline_root: str
    model_repository: str
    metadata_connection_config: Optional[object] = None  # None: the orchestrator's own store
    beam_pipeline_args: tuple[str, ...] = ()
    # Identifies the model in service at launch (the Evaluator's cache key); see evaluator.py.
    baseline_hint: Optional[str] = None


def _example_gen(source: DataSource, settings: Settings, data_root: Any):
    # Splits: train and eval (the gate's); with a validation file or data.validation_buckets also
    # validation, which the Trainer and the Tuner evaluate on instead of eval.
    if source.has_given_split:
        patterns = [(data_lib.TRAIN_SPLIT, source.train_pattern)]
        if source.validation_pattern is not None:
            patterns.append((data_lib.VALIDATION_SPLIT, source.validation_pattern))
        patterns.append((data_lib.EVAL_SPLIT, source.eval_pattern))
        input_config = example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in patterns]
        )
        output_config = None
    else:
        input_config = example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="single_split", pattern=source.single_pattern)]
        )
        buckets = [(data_lib.TRAIN_SPLIT, settings.data.train_buckets)]
        if settings.data.validation_buckets > 0:
            buckets.append((data_lib.VALIDATION_SPLIT, settings.data.validation_buckets))
        buckets.append((data_lib.EVAL_SPLIT, settings.data.eval_buckets))
        output_config = example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=n) for name, n in buckets]
            )
        )
    names = data_lib.resolve_label_names(settings.data)
    if names is not None and source.format not in example_gen_lib.NAMING_EXECUTORS:
        raise data_lib.DataValidationError(
            [f"data.label_names works with CSV, JSON Lines and Parquet input, not {source.format}; write the class names "
             "into the TFRecords' label feature instead"], where="settings")
    if source.format in example_gen_lib.EXECUTORS or names is not None:
        return FileBasedExampleGen(
            input_base=data_root,
            input_config=input_config,
            output_config=output_config,
            range_config=_range_config(source),
            custom_config=example_gen_lib.label_names_config(settings.data.label_column, names) if names else None,
            custom_executor_spec=executor_spec.BeamExecutorSpec(example_gen_lib.NAMING_EXECUTORS[source.format]),
        )
    cls = tfx_components.CsvExampleGen if source.format == "csv" else tfx_components.ImportExampleGen
    # Span-numbered input: {SPAN} in the split patterns; pin the span this run was decided on
    # (else ExampleGen takes the newest it finds, which on a cluster is what a recurring run wants).
    return cls(input_base=data_root, input_config=input_config, output_config=output_config, range_config=_range_config(source))


def _range_config(source: DataSource):
    return (
        range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(start_span_number=source.span, end_span_number=source.span))
        if source.span is not None
        else None
    )


def create_pipeline(
    settings: Settings,
    source: DataSource,
    locations: Locations,
    parameters: Optional[RunParameters] = None,
) -> tfx_pipeline.Pipeline:
    data = settings.data
    parameters = parameters or RunParameters.from_settings(settings, source)
    example_gen = _example_gen(source, settings, parameters.data_root)
    # The Trainer and the Tuner never see the gate's split when a validation split exists.
    training_split = data_lib.training_eval_split(source, data)
    statistics_gen = tfx_components.StatisticsGen(examples=example_gen.outputs["examples"])
    if settings.schema_.schema_file is not None:
        schema_gen = tfx_components.ImportSchemaGen(schema_file=str(settings.schema_.schema_file))
    else:
        schema_gen = validation.SchemaGen(
            statistics=statistics_gen.outputs["statistics"],
            text_column=data.text_column,
            label_column=data.label_column,
        )
    example_validator = validation.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        text_column=data.text_column,
        label_column=data.label_column,
        fail_on_anomalies=settings.schema_.fail_on_anomalies,
        max_classes=data.max_classes,
    )
    transform = tfx_components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=preprocessing.TransformConfig.from_settings(settings).to_custom_config(),
        # TFDV statistics of the data before and after the transform (two more Beam passes, about a
        # quarter of Transform's time on the demo): nothing in the pipeline reads them; the gate
        # is the ExampleValidator's, on StatisticsGen's statistics.
        disable_statistics=not settings.transform.statistics,
    )
    # The gate must pass before anything is transformed or trained.
    transform.add_upstream_node(example_validator)

    # Optional: KerasTuner searches tuning.space and the Trainer trains with the best values.
    tuner = None
    if settings.tuning.enabled:
        tuner = tfx_components.Tuner(
            tuner_fn=tuner_lib.TUNER_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=trainer_pb2.TrainArgs(splits=[data_lib.TRAIN_SPLIT]),
            eval_args=trainer_pb2.EvalArgs(splits=[training_split]),
            custom_config=tuner_lib.TunerConfig.from_settings(settings).to_custom_config(),
        )
    trainer = trainer_lib.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        custom_config=trainer_lib.TrainerConfig.from_settings(settings).to_custom_config(),
        epochs=parameters.epochs,
        eval_split=training_split,
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner is not None else None,
    )
    model_base = model_repository.model_dir(locations.model_repository, settings.push.model_name)
    evaluator = evaluator_lib.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        eval_config=evaluator_lib.build_eval_config(
            label_column=data.label_column,
            thresholds=settings.evaluation.thresholds.gated(),
            change_tolerance=settings.evaluation.change_tolerance,
            positive_label=settings.evaluation.positive_label,
        ),
        baseline_model_dir=model_base,
        baseline_hint=locations.baseline_hint,
        thresholds=parameters.thresholds,
        example_splits=[data_lib.EVAL_SPLIT],
    )
    infra_validator = infra_validator_lib.InfraValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        text_column=data.text_column,
        model_name=settings.push.model_name,
    )
    # The Pusher publishes the InfraValidator's copy of the model (with TF Serving warmup
    # records) once both the Evaluator and the InfraValidator blessed it.
    pusher = pusher_lib.Pusher(
        infra_blessing=infra_validator.outputs["blessing"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=model_base)
        ),
    )
    return tfx_pipeline.Pipeline(
        pipeline_name=settings.pipeline.name,
        pipeline_root=locations.pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            transform,
            *([tuner] if tuner is not None else []),
            trainer,
            evaluator,
            infra_validator,
            pusher,
        ],
        enable_cache=settings.pipeline.enable_cache,
        metadata_connection_config=locations.metadata_connection_config,
        beam_pipeline_args=list(locations.beam_pipeline_args),
    )
