"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class UserError(Exception):
    """Bad input or an environment problem the user can fix; the message names the fix."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(text: str) -> str:
    """A message as one printable line: line breaks and other control characters in it (from a column name or a
    label of the user's data, say) written as escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def format_validation_error(error: Any, fields: Iterable[str] = ()) -> str:
    """A pydantic ValidationError in one line, a part per problem, naming the flag rather than the field; a name
    that is no option (from a --config file or a Python keyword) gets the nearest of `fields`, the model's."""
    parts = []
    for item in error.errors():
        field = ".".join(str(loc) for loc in item["loc"]) or "config"
        flag = "--" + field.replace("_", "-") if item["loc"] else "config"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, list(fields), n=1)
            message = "no such option" + (f"; did you mean --{close[0].replace('_', '-')}?" if close else "")
            if not close and (owner := _OWNERS.get(field)):  # tune's search: block given to train, say
                message = f"no such option here; it is a flag of {owner} (lora-sentiment {owner} {flag} ...)"
        parts.append(f"{flag}: {message}" if item["loc"] else message)
    return "; ".join(parts)


# An option's name -> the command whose own option (not train's) it is: tune's `search` / `trials`, audit's
# `scorer` (options.py fills it).
_OWNERS: dict[str, str] = {}


def note_options_of(command: str, fields: Iterable[str]) -> None:
    """`fields` are `command`'s own options, for the message when one is given to another command."""
    for field in fields:
        _OWNERS.setdefault(field, command)
