"""The Tuner's search space: which hyperparameters may be tuned, how a range or a list of choices
is written in ``tuning.space``, and the default space per model kind.

It is part of the settings contract (``tuning.space`` is validated with the rest of the
settings, before anything runs), so it lives on the floor, TF-free; ``components/tuner.py``
turns it into a KerasTuner search space and ``components/trainer.py`` applies the values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, Optional, Union

from pydantic import Field, model_serializer, model_validator

from textops.config import StrictModel


@dataclasses.dataclass(frozen=True)
class Tunable:
    """A hyperparameter the Tuner may search: a ``TrainerConfig`` field of the same name."""

    type: type  # int or float
    check: Callable[[float], bool]
    rule: str  # what ``check`` accepts, for error messages
    kinds: tuple[str, ...] = ("bow", "transformer")  # the model kinds it applies to


# The names tuning.space accepts, each the TrainerConfig field it sets.
TUNABLE_HYPERPARAMETERS: dict[str, Tunable] = {
    "learning_rate": Tunable(float, lambda v: v > 0, "a number > 0"),
    "batch_size": Tunable(int, lambda v: v >= 1, "an integer >= 1"),
    "embedding_dim": Tunable(int, lambda v: v >= 2, "an integer >= 2", ("bow",)),
    "dropout": Tunable(float, lambda v: 0 <= v < 1, "a number in [0, 1)", ("bow",)),
    "hidden_size": Tunable(int, lambda v: v >= 8, "an integer >= 8", ("transformer",)),
    "num_layers": Tunable(int, lambda v: v >= 1, "an integer >= 1", ("transformer",)),
    "num_heads": Tunable(int, lambda v: v >= 1, "an integer >= 1", ("transformer",)),
    "ffn_size": Tunable(int, lambda v: v >= 8, "an integer >= 8", ("transformer",)),
    "transformer_dropout": Tunable(float, lambda v: 0 <= v < 1, "a number in [0, 1)", ("transformer",)),
    "pretrain_epochs": Tunable(int, lambda v: v >= 0, "an integer >= 0", ("transformer",)),
}
# Sizes a pre-trained encoder fixes (model.transformer.pretrained_encoder): not tunable then.
ENCODER_SIZES = ("hidden_size", "num_layers", "num_heads", "ffn_size")


def coerce_hyperparameter(name: str, value: Any) -> Union[int, float]:
    """``value`` as the type of tunable ``name`` (64.0 -> 64 for an integer); ValueError if it is not one."""
    tunable = TUNABLE_HYPERPARAMETERS.get(name)
    if tunable is None:
        raise ValueError(f"unknown hyperparameter {name!r}; tunable ones: {', '.join(TUNABLE_HYPERPARAMETERS)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {value!r} is not a number ({name} must be {tunable.rule})")
    if tunable.type is int:
        if not float(value).is_integer():
            raise ValueError(f"{name}: {value!r} is not an integer ({name} must be {tunable.rule})")
        value = int(value)
    else:
        value = float(value)
    if not math.isfinite(value) or not tunable.check(value):
        raise ValueError(f"{name}: {value!r} is out of range ({name} must be {tunable.rule})")
    return value


class HyperparameterSpec(StrictModel):
    """One dimension of ``tuning.space``: ``{choices: [...]}``, or ``{min, max}`` with an optional
    ``step`` and ``sampling`` (``log``: ``step`` is a factor > 1). The name's type decides integer
    or float (``batch_size: {min: 16, max: 64, step: 16}`` is an integer range)."""

    choices: Optional[list[Union[int, float]]] = Field(None, min_length=1)
    min: Optional[Union[int, float]] = None
    max: Optional[Union[int, float]] = None
    step: Optional[Union[int, float]] = Field(None, gt=0)
    sampling: Optional[Literal["linear", "log"]] = None

    @model_validator(mode="after")
    def _one_form(self) -> "HyperparameterSpec":
        ranged = [k for k in ("min", "max", "step", "sampling") if getattr(self, k) is not None]
        if self.choices is not None:
            if ranged:
                raise ValueError(f"give either choices or min/max, not both (remove {', '.join(ranged)})")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"choices {self.choices} repeat a value")
            return self
        if self.min is None or self.max is None:
            raise ValueError("needs choices: [a, b, ...] or a range: {min: a, max: b} (optional step, sampling)")
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        if self.sampling == "log":
            if self.min <= 0:
                raise ValueError(f"sampling: log needs min > 0 (got {self.min})")
            if self.step is not None and self.step <= 1:
                raise ValueError(f"with sampling: log, step is a factor and must be > 1 (got {self.step})")
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler):  # `textops config` shows {choices: [...]}, not five keys
        return {k: v for k, v in handler(self).items() if v is not None}

    def typed(self, name: str) -> "HyperparameterSpec":
        """This spec with its values checked and coerced for tunable ``name``; ValueError if not."""
        tunable = TUNABLE_HYPERPARAMETERS[name]
        if self.choices is not None:
            return self.model_copy(update={"choices": [coerce_hyperparameter(name, v) for v in self.choices]})
        step = self.step
        if step is not None and tunable.type is int:
            if not float(step).is_integer():
                raise ValueError(f"{name}: step {step!r} is not an integer ({name} is an integer)")
            step = int(step)
        return self.model_copy(
            update={"min": coerce_hyperparameter(name, self.min), "max": coerce_hyperparameter(name, self.max), "step": step}
        )

    def values(self, limit: int = 100_000) -> Optional[list[Union[int, float]]]:
        """Every value the spec allows when that is a finite set (choices, integer ranges), else None."""
        if self.choices is not None:
            return list(self.choices)
        if not (isinstance(self.min, int) and isinstance(self.max, int)):
            return None
        if self.sampling == "log" and self.step is not None:
            out, v = [], self.min
            while v <= self.max:
                out.append(int(v))
                v *= self.step
            return out
        step = int(self.step) if self.sampling != "log" and self.step is not None else 1
        return list(range(self.min, self.max + 1, step)) if (self.max - self.min) // step < limit else None


def default_search_space(kind: str, num_heads: int, pretrained_encoder: bool) -> dict[str, HyperparameterSpec]:
    """The space tuned when ``tuning.space`` is empty, per model kind (``model.kind``; for the
    transformer, ``model.transformer.num_heads`` and whether a pre-trained encoder is used)."""
    if kind == "bow":
        return {
            "learning_rate": HyperparameterSpec(choices=[0.003, 0.01, 0.03]),
            "embedding_dim": HyperparameterSpec(choices=[32, 64, 128]),
        }
    space = {"learning_rate": HyperparameterSpec(choices=[3e-4, 1e-3, 3e-3])}
    if pretrained_encoder:
        space["transformer_dropout"] = HyperparameterSpec(choices=[0.1, 0.2])
    else:  # head widths of 16 and 32, so every choice divides by num_heads
        space["hidden_size"] = HyperparameterSpec(choices=[16 * num_heads, 32 * num_heads])
    return space
