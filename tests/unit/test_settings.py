from pathlib import Path

import pytest

from textops.settings import Settings, SettingsError, dump_yaml, load_settings, parse_override


def test_defaults_are_valid_and_gate_every_headline_metric():
    s = load_settings()
    assert s.training.strategy == "auto"
    assert set(s.evaluation.thresholds.gated()) == {"accuracy", "precision", "recall", "f1", "auc"}
    assert s.beam.pipeline_args()[:2] == ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def test_yaml_file_then_overrides_win(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("training:\n  epochs: 7\n  batch_size: 16\ndata:\n  text_column: message\n")
    s = load_settings(cfg, ["training.epochs=3", "evaluation.thresholds.auc=null", "schema.fail_on_anomalies=false"])
    assert s.training.epochs == 3 and s.training.batch_size == 16
    assert load_settings(None).training.epochs == "auto"  # by the split's size (training.auto_epochs)
    assert s.data.text_column == "message"
    assert "auc" not in s.evaluation.thresholds.gated()
    assert s.schema_.fail_on_anomalies is False


def test_round_trip_through_yaml(tmp_path: Path):
    s = load_settings(None, ["push.model_name=news", "transform.ngram_max=3"])
    cfg = tmp_path / "dump.yaml"
    cfg.write_text(dump_yaml(s))
    assert load_settings(cfg) == s


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("training.epoch=3", "training.epoch: unknown setting"),
        ("training.epochs=0", "training.epochs: Value error, should be auto or an integer greater than or equal to 1 (got 0)"),
        ("training.epochs=many", "training.epochs: Value error, should be auto or an integer"),
        ("training.strategy=tpu", "training.strategy"),
        ("evaluation.thresholds.f1=1.5", "evaluation.thresholds.f1"),
        ("data.label_column=text", "text_column and label_column must name different columns"),
        ("push.model_name=../escape", "push.model_name"),
    ],
)
def test_invalid_settings_name_the_key(override, fragment):
    with pytest.raises(SettingsError) as err:
        load_settings(None, [override])
    assert fragment in str(err.value)


def test_override_syntax_errors():
    with pytest.raises(SettingsError, match="is not KEY=VALUE"):
        parse_override("training.epochs")
    with pytest.raises(SettingsError, match="not a section"):
        load_settings(None, ["training=3", "training.epochs=2"])


def test_config_file_errors(tmp_path: Path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(SettingsError, match="must be a mapping"):
        load_settings(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(broken)


def test_settings_model_rejects_unknown_sections():
    with pytest.raises(Exception):
        Settings.model_validate({"trainer": {}})


def _diverging_defaults(config_cls, from_settings) -> dict:
    """Fields whose dataclass default differs from what the default Settings give it."""
    import dataclasses

    built = from_settings(Settings())
    required = {f.name: getattr(built, f.name) for f in dataclasses.fields(config_cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    defaults = config_cls(**required)
    return {
        f.name: (getattr(defaults, f.name), getattr(built, f.name))
        for f in dataclasses.fields(config_cls)
        if getattr(defaults, f.name) != getattr(built, f.name)
    }


def test_component_config_defaults_are_the_settings_defaults():
    """TrainerConfig and TransformConfig restate the settings' defaults (a component's
    custom_config must be readable on its own); they must never drift apart."""
    from textops.components.preprocessing import TransformConfig
    from textops.components.trainer import TrainerConfig

    assert _diverging_defaults(TrainerConfig, TrainerConfig.from_settings) == {}
    assert _diverging_defaults(TransformConfig, TransformConfig.from_settings) == {}
