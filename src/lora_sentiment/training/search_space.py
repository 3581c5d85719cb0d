"""tune's search space: `--search "NAME=LOW:HIGH[:log]" "NAME=A,B,C"` (or a `search:` block) parsed and checked
against the train settings it varies."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import yaml

from ..config import TrainConfig
from ..errors import UserError

# The space searched when none is given: the settings a LoRA fine-tune is most sensitive to.
DEFAULT_SEARCH = {
    "learning_rate": "1e-4:3e-3:log",
    "lora_r": "4,8,16,32",
    "lora_alpha": "8,16,32,64",
    "lora_dropout": "0:0.2",
}


SEARCHABLE = (
    "learning_rate", "lora_r", "lora_alpha", "lora_dropout", "epochs", "batch_size", "weight_decay",
    "warmup_ratio", "class_weights", "max_length", "head_tokens", "base_dropout", "gradient_accumulation_steps",
)  # fmt: skip


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a range (low, high, log scale or not) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if _is_integer_setting(self.name):
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def parse_search(specs: dict[str, str] | list[str]) -> list[Dimension]:
    """`NAME=LOW:HIGH[:log]` (a range) or `NAME=A,B,C` (choices), from --search or a config's `search:` block."""
    items = specs.items() if isinstance(specs, dict) else (_split_spec(s) for s in specs)
    dimensions = [_dimension(name.strip().replace("-", "_"), _spec_text(value)) for name, value in items]
    names = [d.name for d in dimensions]
    if len(set(names)) != len(names):
        raise UserError(f"--search names a setting twice: {', '.join(sorted(n for n in names if names.count(n) > 1))}")
    return dimensions


def _spec_text(value: Any) -> str:
    # A YAML search: block may list choices ([4, 8, 16]) where a flag writes 4,8,16.
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value).strip()


def _split_spec(spec: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not value.strip():
        raise UserError(f'--search {spec!r}: write NAME=LOW:HIGH[:log] or NAME=A,B,C, e.g. "lora_r=4,8,16"')
    return name, value


def _dimension(name: str, value: str) -> Dimension:
    if name not in SEARCHABLE:
        raise UserError(f"--search cannot vary {name!r}; searchable settings: {', '.join(SEARCHABLE)}")
    if "," in value or ":" not in value:
        choices = tuple(_parse_value(name, part.strip()) for part in value.split(",") if part.strip())
        for choice in choices:
            _check(name, choice)
        return Dimension(name, choices=choices)
    parts = value.split(":")
    log = len(parts) == 3 and parts[2].strip().lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise UserError(f"--search {name}={value}: a range is LOW:HIGH or LOW:HIGH:log")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise UserError(f"--search {name}={value}: LOW and HIGH must be numbers") from None
    if not low < high or (log and low <= 0):
        raise UserError(f"--search {name}={value}: LOW must be below HIGH (and above 0 on a log scale)")
    for bound in (low, high):
        _check(name, int(bound) if _is_integer_setting(name) else bound)
    return Dimension(name, low, high, log)


def _parse_value(name: str, text: str) -> Any:
    loaded = yaml.safe_load(text)
    return int(loaded) if _is_integer_setting(name) and isinstance(loaded, float) and loaded.is_integer() else loaded


def _is_integer_setting(name: str) -> bool:
    annotation = TrainConfig.model_fields[name].annotation
    return annotation is int or int in typing.get_args(annotation)


def _check(name: str, value: Any) -> None:
    """A value the setting takes, checked now rather than in the trial that draws it."""
    try:
        TrainConfig(**{name: value})
    except Exception as exc:  # noqa: BLE001 - pydantic's message, first line
        raise UserError(
            f"--search {name}: {value!r} is not a valid value ({str(exc).splitlines()[-1].strip()})"
        ) from None
