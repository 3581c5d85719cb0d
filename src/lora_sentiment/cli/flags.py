"""Flags from typed options: one generic builder turns a pydantic model's fields into argparse flags (name,
choices, nargs, help with the default rendered from the field), and the flags given back into the model, with
pydantic's errors as one line that names the flag. Every command's options go through here."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from ..atomic import check_writable
from ..errors import UserError, format_validation_error


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel], *, skip: Iterable[str] = ()) -> None:
    """One flag per field of `model`. Every flag defaults to None, so only the flags a user gave override the
    model's defaults (and a config file's values, for TrainConfig)."""
    skipped = set(skip)
    for name, info in model.model_fields.items():
        if name in skipped:
            continue
        annotation = _bare(info.annotation)
        kwargs: dict[str, Any] = {"default": None, "dest": name, "help": _help(info).replace("%", "%%")}
        if info.is_required():
            kwargs["required"] = True
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(annotation) is typing.Literal:
            kwargs["choices"] = typing.get_args(annotation)
        elif typing.get_origin(annotation) is list:
            kwargs["nargs"] = "+"
            kwargs["metavar"] = name.upper().removesuffix("S")
        else:
            kwargs["metavar"] = name.upper()  # parsed and checked by the pydantic model, like YAML values
        parser.add_argument(flag(name), **kwargs)


def given(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The values of `model`'s flags that the user gave."""
    return {name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None}


def build(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """`model(**values)`, or one line naming the flag that is wrong."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, model.model_fields)) from None


def from_args(args: argparse.Namespace, model: type[BaseModel]) -> Any:
    return build(model, given(args, model))


def check_report_file(output: str | None) -> None:
    """A benchmark's --output, checked before the minutes of measuring that it would record."""
    if output is None:
        return
    path = Path(output).expanduser()
    if path.is_dir():
        raise UserError(f"--output {output} is a folder; give a file path, e.g. {path / 'report.json'}")
    if not path.parent.is_dir():
        raise UserError(f"the folder of --output {output} does not exist; create it first")
    check_writable(path, "--output")


def _bare(annotation: Any) -> Any:
    """X from Optional[X] / X | None; a union of several kinds (auto or a number) as a plain value, which the
    model parses."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else str
    return annotation


def _help(info: Any) -> str:
    text = info.description or ""
    default = info.default
    if default is PydanticUndefined and info.default_factory is not None:
        default = info.default_factory()
    if default in (None, PydanticUndefined) or isinstance(default, bool) or default == []:
        return text
    if isinstance(default, list):
        if len(default) > 3:  # a list of examples: the help says what they are
            return text
        default = ",".join(map(str, default))
    return f"{text} [default: {default}]"
