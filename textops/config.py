"""One way to load settings, for the pipeline, the server and the monitor.

A YAML file, then ``--set KEY=VALUE`` overrides (values parsed as YAML), then explicit values
(command-line flags; ``None`` means not given), validated once by a strict pydantic model; an
invalid key or value is a :class:`ConfigError` whose message names the source, every bad key,
what was wrong and where to look. ``textops.settings``, ``textops.serving.config`` and
``textops.monitoring.config`` define the models; this module is how all three are read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from textops.errors import ExitCode, TextOpsError

M = TypeVar("M", bound=BaseModel)


class ConfigError(TextOpsError, ValueError):
    """A configuration file, override or flag is invalid; the message says where and why."""

    exit_code = ExitCode.USAGE


class StrictModel(BaseModel):
    """A settings section: unknown keys are errors, so a typo cannot fall back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.epochs=3`` -> (["training", "epochs"], 3). Values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. training.epochs=3)")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from None
    return path, value


def set_path(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Sets ``data[a][b][c] = value`` for path [a, b, c], creating sections on the way."""
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def read_config(
    config_file: Optional[Path], overrides: Optional[Sequence[str]], what: str = "config file"
) -> tuple[dict[str, Any], str]:
    """The raw mapping from an optional YAML file with ``KEY=VALUE`` overrides applied, and a
    description of where it came from (for error messages). Raises ConfigError."""
    data: dict[str, Any] = {}
    source = "defaults"
    if config_file is not None:
        path = Path(config_file)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{what} {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{what} {path} must be a mapping of sections, not a {type(loaded).__name__}")
        data = loaded or {}
    for item in overrides or []:
        key_path, value = parse_override(item)
        set_path(data, key_path, value)
        source = f"{source} + overrides"
    return data, source


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


def load_model(
    model: type[M],
    config_file: Optional[Path] = None,
    overrides: Optional[Sequence[str]] = None,
    explicit: Optional[Mapping[str, Any]] = None,
    *,
    what: str = "config file",
    title: str = "invalid settings",
    unknown_hint: str = "see `textops config` for every valid key",
) -> M:
    """``model`` validated from ``config_file`` + ``overrides`` + ``explicit`` (dotted keys, as
    flags give them; ``None`` values are skipped). Raises ConfigError naming every bad key."""
    data, source = read_config(config_file, overrides, what=what)
    for key, value in (explicit or {}).items():
        if value is not None:
            set_path(data, key.split("."), value)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, title=title, unknown_hint=unknown_hint)) from None


def dataclass_from_config(cls, config: Optional[dict[str, Any]], what: str):  # noqa: ANN001, ANN201
    """``cls(**config)`` for a component's ``custom_config`` dataclass; an unknown key is an error
    naming it (a config written by another version of the pipeline must not be half-read)."""
    config = dict(config or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown {what} settings {unknown}; expected some of {sorted(known)}")
    return cls(**config)
