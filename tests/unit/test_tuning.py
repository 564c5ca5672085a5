"""The optional Tuner: the search space in settings, its KerasTuner form, the mapping of tuned
values onto the Trainer's config, the trial loop on a tiny task, and the pipeline wiring."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from textops.components import trainer as trainer_lib
from textops.components import tuner as tuner_lib
from textops.settings import SettingsError, dump_yaml, load_settings

TINY_SPACE = "tuning.space={learning_rate: {choices: [1e-7, 0.1]}}"


# -- settings ---------------------------------------------------------------------------------


def test_space_forms_are_typed_by_the_hyperparameter():
    s = load_settings(
        None,
        [
            "tuning.space={learning_rate: {choices: [1e-3, 1]}, batch_size: {min: 16, max: 64.0, step: 16},"
            " dropout: {min: 0, max: 0.5}, embedding_dim: {choices: [32.0, 64]}}"
        ],
    )
    space = s.tuning.space
    assert space["learning_rate"].choices == [0.001, 1.0] and all(type(v) is float for v in space["learning_rate"].choices)
    assert (space["batch_size"].min, space["batch_size"].max, space["batch_size"].step) == (16, 64, 16)
    assert type(space["batch_size"].max) is int and type(space["batch_size"].step) is int
    assert type(space["dropout"].min) is float and space["dropout"].max == 0.5
    assert space["embedding_dim"].choices == [32, 64] and all(type(v) is int for v in space["embedding_dim"].choices)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("tuning.space={hidden_units: {choices: [1]}}", "unknown hyperparameter(s) hidden_units; tunable ones: learning_rate, batch_size"),
        ("tuning.space={batch_size: {choices: [1.5]}}", "batch_size: 1.5 is not an integer"),
        ("tuning.space={batch_size: {min: 8, max: 64, step: 2.5}}", "batch_size: step 2.5 is not an integer"),
        ("tuning.space={dropout: {choices: [0.1, 1.0]}}", "dropout: 1.0 is out of range (dropout must be a number in [0, 1))"),
        ("tuning.space={learning_rate: {choices: [0]}}", "learning_rate: 0.0 is out of range"),
        ("tuning.space={learning_rate: {choices: [fast]}}", "tuning.space.learning_rate.choices.0"),
        ("tuning.space={learning_rate: {choices: []}}", "tuning.space.learning_rate.choices"),
        ("tuning.space={learning_rate: {choices: [0.1, 0.1]}}", "repeat a value"),
        ("tuning.space={learning_rate: {min: 0.1}}", "tuning.space.learning_rate: Value error, needs choices"),
        ("tuning.space={learning_rate: {choices: [0.1], min: 0.01}}", "give either choices or min/max, not both (remove min)"),
        ("tuning.space={learning_rate: {min: 0.1, max: 0.01}}", "min (0.1) must be below max (0.01)"),
        ("tuning.space={learning_rate: {min: 0, max: 0.1, sampling: log}}", "sampling: log needs min > 0"),
        ("tuning.space={learning_rate: {min: 0.001, max: 0.1, sampling: log, step: 0.5}}", "step is a factor and must be > 1"),
        ("tuning.space={learning_rate: {min: 0.001, max: 0.1, sampling: exp}}", "tuning.space.learning_rate.sampling"),
        ("tuning.space={learning_rate: {values: [0.1]}}", "tuning.space.learning_rate.values: unknown setting"),
        ("tuning.space=[learning_rate]", "tuning.space"),
        ("tuning.objective=val_auc", "tuning.objective: Input should be 'val_accuracy', 'val_f1' or 'val_loss'"),
        ("tuning.algorithm=grid", "tuning.algorithm"),
        ("tuning.max_trials=0", "tuning.max_trials: Input should be greater than or equal to 1"),
        ("tuning.epochs=0", "tuning.epochs: Input should be greater than or equal to 1"),
    ],
)
def test_bad_space_is_an_error_naming_the_key(override, fragment):
    with pytest.raises(SettingsError) as err:
        load_settings(None, [override])
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["tuning.space={hidden_size: {choices: [64]}}"], "tuning.space.hidden_size tunes the transformer model but model.kind is bow"),
        (["model.kind=transformer", "tuning.space={embedding_dim: {choices: [64]}}"], "tuning.space.embedding_dim tunes the bow model"),
        (["model.kind=transformer", "tuning.space={hidden_size: {choices: [64, 66]}}"], "hidden_size 66 is not a multiple of num_heads 4"),
        (["model.kind=transformer", "tuning.space={num_heads: {min: 2, max: 5}}"], "hidden_size 128 is not a multiple of num_heads 3"),
        (
            ["model.kind=transformer", "model.transformer.pretrained_encoder=/enc", "tuning.space={num_layers: {choices: [1, 2]}}"],
            "tuning.space.num_layers: the pre-trained encoder",
        ),
        (["tuning.algorithm=hyperband", "tuning.epochs=1"], "algorithm hyperband needs epochs >= 2"),
    ],
)
def test_space_must_fit_the_model_when_enabled(overrides, fragment):
    with pytest.raises(SettingsError) as err:
        load_settings(None, ["tuning.enabled=true", *overrides])
    assert fragment in str(err.value)
    if "hyperband" not in fragment:  # the model checks wait until tuning is switched on
        load_settings(None, overrides)


def test_default_space_per_model_kind():
    bow = load_settings(None, ["tuning.enabled=true"])
    assert bow.tuning.space == {}
    space = bow.tuning.search_space(bow.model)
    assert space["learning_rate"].choices == [0.003, 0.01, 0.03] and space["embedding_dim"].choices == [32, 64, 128]
    tr = load_settings(None, ["tuning.enabled=true", "model.kind=transformer", "model.transformer.num_heads=8"])
    space = tr.tuning.search_space(tr.model)
    assert set(space) == {"learning_rate", "hidden_size"} and space["hidden_size"].choices == [128, 256]
    pre = load_settings(None, ["tuning.enabled=true", "model.kind=transformer", "model.transformer.pretrained_encoder=/enc"])
    assert set(pre.tuning.search_space(pre.model)) == {"learning_rate", "transformer_dropout"}
    # A given space replaces the default.
    given = load_settings(None, ["tuning.enabled=true", TINY_SPACE])
    assert set(given.tuning.search_space(given.model)) == {"learning_rate"}


def test_tuning_section_round_trips_through_textops_config(tmp_path: Path):
    s = load_settings(None, ["tuning.enabled=true", "tuning.space={batch_size: {min: 16, max: 64, step: 16}, dropout: {choices: [0, 0.2]}}"])
    text = dump_yaml(s)
    assert "tuning:\n  enabled: true\n" in text and "sampling" not in text  # unset keys are not shown
    cfg = tmp_path / "dump.yaml"
    cfg.write_text(text)
    assert load_settings(cfg) == s


# -- tuned values onto the Trainer's config ---------------------------------------------------


def test_tuned_values_map_onto_the_trainer_config_with_their_types():
    base = trainer_lib.TrainerConfig(text_column="text", oov_buckets=10)
    values = {"learning_rate": 1, "embedding_dim": 32.0, "batch_size": 16, "dropout": 0, "tuner/epochs": 2, "tuner/round": 0}
    tuned = trainer_lib.tuned_values(values)
    assert tuned == {"learning_rate": 1.0, "embedding_dim": 32, "batch_size": 16, "dropout": 0.0}
    assert type(tuned["embedding_dim"]) is int and type(tuned["learning_rate"]) is float
    config = base.with_hyperparameters(values)
    assert (config.learning_rate, config.embedding_dim, config.batch_size) == (1.0, 32, 16)
    assert type(config.embedding_dim) is int and config.epochs == base.epochs and config.text_column == "text"
    assert trainer_lib.hyperparameters_config_values({"space": [], "values": {"learning_rate": 0.5}}) == {"learning_rate": 0.5}


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"hidden_units": 3}, "unknown hyperparameter 'hidden_units'; tunable ones: learning_rate"),
        ({"embedding_dim": 2.5}, "embedding_dim: 2.5 is not an integer"),
        ({"learning_rate": "fast"}, "learning_rate: 'fast' is not a number"),
        ({"learning_rate": -1.0}, "learning_rate: -1.0 is out of range"),
    ],
)
def test_bad_tuned_values_are_errors(values, fragment):
    with pytest.raises(ValueError) as err:
        trainer_lib.TrainerConfig(text_column="text", oov_buckets=10).with_hyperparameters(values)
    assert fragment in str(err.value)


def test_transformer_checks_apply_to_tuned_values():
    base = trainer_lib.TrainerConfig(text_column="text", oov_buckets=10, model_kind="transformer")
    assert base.with_hyperparameters({"hidden_size": 64, "num_heads": 8}).hidden_size == 64
    with pytest.raises(ValueError, match="hidden_size \\(66\\) must be a multiple of num_heads \\(4\\)"):
        base.with_hyperparameters({"hidden_size": 66})
    with pytest.raises(ValueError, match="pre-trained encoder fixes \\['num_layers'\\]"):
        trainer_lib.TrainerConfig(
            text_column="text", oov_buckets=10, model_kind="transformer", pretrained_encoder="/enc"
        ).with_hyperparameters({"num_layers": 1})
    with pytest.raises(ValueError, match="not a KerasTuner HyperParameters config"):
        trainer_lib.hyperparameters_config_values({"learning_rate": 0.1})


# -- the KerasTuner search space --------------------------------------------------------------


def test_kerastuner_hyperparameters_from_the_space():
    s = load_settings(
        None,
        [
            "tuning.enabled=true",
            "tuning.space={learning_rate: {min: 1e-4, max: 1e-1, sampling: log}, batch_size: {min: 16, max: 64, step: 16},"
            " embedding_dim: {choices: [32, 64]}, dropout: {min: 0, max: 0.4, step: 0.2}}",
        ],
    )
    config = tuner_lib.TunerConfig.from_settings(s)
    assert config.space["embedding_dim"] == {"choices": [32, 64]}
    hp = tuner_lib.build_hyperparameters(config.space)
    by_name = {p.name: p for p in hp.space}
    assert type(by_name["embedding_dim"]).__name__ == "Choice" and by_name["embedding_dim"].values == [32, 64]
    lr = by_name["learning_rate"]
    assert type(lr).__name__ == "Float" and (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-1, "log")
    bs = by_name["batch_size"]
    assert type(bs).__name__ == "Int" and (bs.min_value, bs.max_value, bs.step) == (16, 64, 16)
    assert type(by_name["dropout"]).__name__ == "Float" and by_name["dropout"].step == 0.2
    # Every value KerasTuner may pick maps onto the Trainer's config with the right types.
    picked = tuner_lib.build_hyperparameters(config.space).values
    trained = trainer_lib.TrainerConfig.from_custom_config(config.trainer).with_hyperparameters(picked)
    assert type(trained.batch_size) is int and type(trained.embedding_dim) is int
    with pytest.raises(ValueError, match="unknown hyperparameter 'units'"):
        tuner_lib.build_hyperparameters({"units": {"choices": [1]}})


def test_default_space_reaches_the_tuner_and_oracles_build():
    s = load_settings(None, ["tuning.enabled=true"])
    config = tuner_lib.TunerConfig.from_settings(s)
    assert set(config.space) == {"learning_rate", "embedding_dim"}
    assert trainer_lib.TrainerConfig.from_custom_config(config.trainer) == trainer_lib.TrainerConfig.from_settings(s)
    for algorithm in ("random", "bayesian", "hyperband"):
        oracle = tuner_lib.build_oracle(tuner_lib.TunerConfig(**{**config.to_custom_config(), "algorithm": algorithm}))
        assert oracle.max_trials == s.tuning.max_trials and oracle.objective.name == "val_accuracy"
    loss = tuner_lib.build_oracle(tuner_lib.TunerConfig(**{**config.to_custom_config(), "objective": "val_loss"}))
    assert loss.objective.direction == "min"


# -- the trial loop on a tiny separable task --------------------------------------------------


def _sparse(rows):
    indices = [[i, j] for i, r in enumerate(rows) for j in range(len(r))]
    values = [v for r in rows for v in r]
    return tf.SparseTensor(tf.constant(indices, tf.int64), tf.constant(values, tf.int64), [len(rows), max(map(len, rows))])


class _TinyData:
    """Stands in for trainer.TrainingData: two classes told apart by their token ids."""

    def __init__(self):
        self.batch_sizes = []

    def datasets(self, config):
        self.batch_sizes.append(config.batch_size)
        rows = [[0, 1], [0, 2], [1, 2], [3, 4], [4, 5], [3, 5]] * 20
        labels = np.array([0, 0, 0, 1, 1, 1] * 20)
        ds = tf.data.Dataset.from_tensor_slices(({"tokens": _sparse(rows)}, labels)).shuffle(120, seed=1)
        return ds.batch(config.batch_size), ds.batch(60)

    def model_config(self, config):
        return config.model_config(num_classes=2, vocab_size=6)


def test_trials_train_the_real_model_and_the_best_value_wins():
    s = load_settings(
        None,
        [
            "tuning.enabled=true", "tuning.max_trials=2", "tuning.epochs=1", TINY_SPACE,
            "training.batch_size=12", "training.strategy=one_device",
        ],
    )
    config = tuner_lib.TunerConfig.from_settings(s)
    base = trainer_lib.TrainerConfig.from_custom_config(config.trainer)
    tuner = tuner_lib.TrialTuner(
        tuner_lib.build_oracle(config), base, config.epochs, directory=tempfile.mkdtemp(), project_name="t", overwrite=True
    )
    data = _TinyData()
    tuner.search(data=data)
    trials = {t.hyperparameters.values["learning_rate"]: t for t in tuner.oracle.trials.values()}
    assert set(trials) == {1e-7, 0.1} and all(t.status == "COMPLETED" for t in trials.values())
    assert trials[0.1].score > 0.9 and trials[1e-7].score < 0.7
    assert tuner.get_best_hyperparameters()[0].values == {"learning_rate": 0.1}
    assert data.batch_sizes == [12, 12]
    # Hyperband tells a trial how long to train.
    assert tuner.trial_config({"learning_rate": 0.1, "tuner/epochs": 5}).epochs == 5
    assert tuner.trial_config({"learning_rate": 0.1}).checkpoint_dir is None


def test_a_search_without_a_completed_trial_fails_loudly():
    s = load_settings(None, ["tuning.enabled=true", "tuning.max_trials=1", TINY_SPACE])
    config = tuner_lib.TunerConfig.from_settings(s)

    class Broken(_TinyData):
        def datasets(self, config):
            raise OSError("no such file: train split")

    tuner = tuner_lib.TrialTuner(
        tuner_lib.build_oracle(config),
        trainer_lib.TrainerConfig.from_custom_config(config.trainer),
        1,
        directory=tempfile.mkdtemp(),
        project_name="t",
        overwrite=True,
    )
    with pytest.raises(RuntimeError, match="no tuning trial completed(.|\n)*no such file: train split"):
        tuner.search(data=Broken())


# -- the pipeline ----------------------------------------------------------------------------


def _pipeline(overrides):
    from textops.data import DataSource
    from textops.pipelines.pipeline import Locations, create_pipeline

    settings = load_settings(None, overrides)
    source = DataSource("/data", "csv", train_pattern="train.csv", eval_pattern="test.csv")
    return create_pipeline(settings, source, Locations(pipeline_root="/tmp/root", model_repository="/tmp/repo"))


def test_pipeline_without_tuning_has_no_tuner():
    pipeline = _pipeline([])
    ids = [c.id for c in pipeline.components]
    assert "Tuner" not in ids and len(ids) == 9
    trainer = next(c for c in pipeline.components if c.id == "Trainer")
    assert "hyperparameters" not in trainer.inputs


def test_pipeline_with_tuning_feeds_the_best_hyperparameters_to_the_trainer():
    pipeline = _pipeline(["tuning.enabled=true", TINY_SPACE])
    ids = [c.id for c in pipeline.components]
    assert ids.index("Transform") < ids.index("Tuner") < ids.index("Trainer")
    tuner = next(c for c in pipeline.components if c.id == "Tuner")
    trainer = next(c for c in pipeline.components if c.id == "Trainer")
    assert trainer.inputs["hyperparameters"].producer_component_id == "Tuner"
    assert trainer.inputs["hyperparameters"].output_key == "best_hyperparameters"
    assert tuner.inputs["examples"].producer_component_id == "Transform"
    assert tuner.exec_properties["tuner_fn"] == tuner_lib.TUNER_FN
