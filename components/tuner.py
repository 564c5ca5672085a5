"""TFX Tuner adapter: KerasTuner searches ``tuning.space``; every trial trains the project's model.

The Tuner component (``tfx.components.Tuner``) calls ``tuner_fn``. KerasTuner's own ``Tuner``
cannot run these trials: KerasTuner 1.4 is built on Keras 3 and rejects a tf_keras model
("hypermodel.build() must return a valid Keras Model instance"). So the search runs on
KerasTuner's oracle API only: ``TrialTuner`` subclasses ``BaseTuner`` and trains each trial with
the Trainer's own code (``training.train`` on the same datasets as ``run_fn``), then reports the
objective. Trials run one after the other and keep no models: the Trainer retrains with the best
hyperparameters, which the Tuner writes out as its ``best_hyperparameters`` artifact.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Mapping

import keras_tuner as kt
import tf_keras as keras
from keras_tuner.engine import base_tuner, trial as trial_lib
from tfx.components.tuner.component import TunerFnResult

from textops.config import dataclass_from_config
from textops.settings import Settings
from textops.tuning import TUNABLE_HYPERPARAMETERS
from textops.components import distribution, training
from textops.components import trainer as trainer_lib

log = logging.getLogger(__name__)

TUNER_FN = f"{__name__}.tuner_fn"
# Objective -> direction: accuracy and F1 are maximized, loss minimized.
OBJECTIVES = {"val_accuracy": "max", "val_f1": "max", "val_loss": "min"}
ALGORITHMS = ("random", "bayesian", "hyperband")


@dataclasses.dataclass(frozen=True)
class TunerConfig:
    """What ``create_pipeline`` passes to the Tuner as ``custom_config``."""

    trainer: dict  # TrainerConfig.to_custom_config(): the base every trial changes
    space: dict  # name -> {choices: [...]} | {min, max, step?, sampling?}
    max_trials: int = 6
    epochs: int = 2
    objective: str = "val_accuracy"
    algorithm: str = "random"
    seed: int = 42

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {self.objective!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {self.algorithm!r}")
        if not self.space:
            raise ValueError("the search space is empty")

    @classmethod
    def from_settings(cls, settings: Settings) -> "TunerConfig":
        t = settings.tuning
        return cls(
            trainer=trainer_lib.TrainerConfig.from_settings(settings).to_custom_config(),
            space={name: spec.model_dump(mode="json") for name, spec in t.search_space(settings.model).items()},
            max_trials=t.max_trials,
            epochs=t.epochs,
            objective=t.objective,
            algorithm=t.algorithm,
            seed=t.seed,
        )

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any]) -> "TunerConfig":
        return dataclass_from_config(cls, config, "tuner")


def build_hyperparameters(space: Mapping[str, Mapping[str, Any]]) -> kt.HyperParameters:
    """KerasTuner's search space: ``Choice`` for choices, ``Int``/``Float`` (by the name's type) for ranges."""
    hp = kt.HyperParameters()
    for name, spec in space.items():
        tunable = TUNABLE_HYPERPARAMETERS.get(name)
        if tunable is None:
            raise ValueError(f"unknown hyperparameter {name!r}; tunable ones: {', '.join(TUNABLE_HYPERPARAMETERS)}")
        unknown = sorted(set(spec) - {"choices", "min", "max", "step", "sampling"})
        if unknown:
            raise ValueError(f"{name}: unknown keys {unknown} (choices, or min/max/step/sampling)")
        if spec.get("choices") is not None:
            hp.Choice(name, [tunable.type(v) for v in spec["choices"]])
        elif tunable.type is int:
            step = spec.get("step")
            hp.Int(name, int(spec["min"]), int(spec["max"]), step=None if step is None else int(step),
                   sampling=spec.get("sampling") or "linear")
        else:
            hp.Float(name, float(spec["min"]), float(spec["max"]), step=spec.get("step"),
                     sampling=spec.get("sampling") or "linear")
    return hp


def build_oracle(config: TunerConfig) -> kt.Oracle:
    objective = kt.Objective(config.objective, direction=OBJECTIVES[config.objective])
    common = dict(
        objective=objective,
        hyperparameters=build_hyperparameters(config.space),
        seed=config.seed,
        allow_new_entries=False,
        tune_new_entries=False,
    )
    if config.algorithm == "random":
        return kt.oracles.RandomSearchOracle(max_trials=config.max_trials, **common)
    if config.algorithm == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=config.max_trials, **common)
    oracle = kt.oracles.HyperbandOracle(max_epochs=config.epochs, **common)
    oracle.max_trials = config.max_trials  # Hyperband has no cap of its own; the Oracle base honours it
    return oracle


class TrialTuner(base_tuner.BaseTuner):
    """Runs each trial with the Trainer's code; reports the last epoch's validation metrics."""

    def __init__(self, oracle: kt.Oracle, base: trainer_lib.TrainerConfig, epochs: int, **kwargs):
        super().__init__(oracle, hypermodel=None, **kwargs)
        self.base = base
        self.epochs = epochs

    def trial_config(self, values: Mapping[str, Any]) -> trainer_lib.TrainerConfig:
        # Hyperband says how long this trial trains (tuner/epochs); the others train `epochs`.
        epochs = int(values.get("tuner/epochs", self.epochs))
        return dataclasses.replace(self.base.with_hyperparameters(values), epochs=epochs, checkpoint_dir=None)

    def run_trial(self, trial, data: trainer_lib.TrainingData) -> dict[str, float]:
        values = trial.hyperparameters.values
        config = self.trial_config(values)
        log.info("trial %s: %s, %d epoch(s)", trial.trial_id, trainer_lib.tuned_values(values), config.epochs)
        try:
            keras.backend.clear_session()  # the previous trial's graph and layers
            train_ds, eval_ds = data.datasets(config)
            _, history = training.train(
                data.model_config(config),
                train_ds,
                eval_ds,
                config.train_config(),  # epochs, seed, decay: the batch size is the datasets'
                strategy=distribution.make_strategy("auto"),
                verbose=2,
                pretrain=config.pretrain_config(),
                pretrained_encoder=config.pretrained_encoder,
            )
        except Exception:
            log.exception("trial %s (%s) failed", trial.trial_id, values)
            raise
        name = self.oracle.objective.name
        if name not in history:
            raise kt.errors.FatalError(
                f"objective {name!r} is not among the training metrics {sorted(history)}; set tuning.objective"
            )
        metrics = {k: float(v[-1]) for k, v in history.items() if k.startswith("val_") or k in ("loss", "accuracy")}
        if not math.isfinite(metrics[name]):  # diverged: the worst score, not a NaN that sorts anywhere
            log.warning("trial %s diverged (%s = %s)", trial.trial_id, name, metrics[name])
            metrics[name] = math.inf if OBJECTIVES.get(name) == "min" else -math.inf
        log.info("trial %s: %s = %.4f", trial.trial_id, name, metrics[name])
        return metrics

    def on_search_end(self) -> None:
        super().on_search_end()
        trials = list(self.oracle.trials.values())
        if not any(t.status == trial_lib.TrialStatus.COMPLETED for t in trials):
            messages = "\n".join(f"trial {t.trial_id}: {t.status} {t.message or ''}" for t in trials)
            raise RuntimeError(f"no tuning trial completed, so there are no best hyperparameters:\n{messages}")

    def save_model(self, trial_id, model, step=0) -> None:
        """Trials keep no models (the Trainer retrains with the best hyperparameters)."""

    def load_model(self, trial):
        raise NotImplementedError("tuning trials keep no models; the Trainer trains with the best hyperparameters")


def tuner_fn(fn_args) -> TunerFnResult:
    """Entry point named in the Tuner component (``tuner_fn``)."""
    config = TunerConfig.from_custom_config(fn_args.custom_config or {})
    base = trainer_lib.TrainerConfig.from_custom_config(config.trainer)
    trainer_lib.configure_precision(base.mixed_precision)
    tuner = TrialTuner(
        build_oracle(config),
        base,
        config.epochs,
        directory=fn_args.working_dir,
        project_name="textops_tuning",
        overwrite=True,
    )
    return TunerFnResult(tuner=tuner, fit_kwargs={"data": trainer_lib.load_training_data(fn_args, base)})
