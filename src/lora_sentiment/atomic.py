"""Artifacts appear complete or not at all: each is built in a hidden sibling folder and renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import UserError


def check_writable(target: Path, flag: str, inside: bool = False) -> None:
    """`target`, a file or folder still to be made (`inside`: a folder written into, as tune's and audit's are), can
    be: its nearest existing folder takes a hidden folder (made and removed at once), as its staging copy will be
    made there. Checked with the settings, so a read-only, full or foreign place fails in one line before the work
    instead of in a traceback after it."""
    folder = target.expanduser().absolute()
    folder = folder if inside else folder.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        Path(tempfile.mkdtemp(prefix=".lora-sentiment-probe-", dir=folder)).rmdir()
    except OSError as exc:
        raise UserError(
            f"{flag} {target}: cannot write in {folder} ({exc.strerror or exc}); choose a folder you can write to"
        ) from None


def staging_path(final: Path) -> Path:
    """The hidden `.NAME.partial` beside `final` where it is built."""
    return final.with_name(f".{final.name}.partial")


def fresh_staging_dir(final: Path) -> Path:
    """An empty hidden `.NAME.partial` beside `final` (what a crashed earlier attempt left there goes)."""
    staging = staging_path(final)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def replace_dir(staging: Path, final: Path) -> None:
    """Swap the finished folder into place; an existing one is moved aside first and removed only after."""
    old = final.with_name(f".{final.name}.old")
    _remove(old)
    if final.exists():
        final.rename(old)  # a file too: a predictions file replaced by a folder of them (--overwrite)
    staging.rename(final)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """A fresh hidden folder to build `final` in: swapped into place when the block ends, removed if it fails."""
    staging = fresh_staging_dir(final)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, final)


@contextmanager
def staged_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """A hidden path beside `target` for a writer that takes a path (numpy, pyarrow), renamed over `target` only
    when the block ends; removed if it fails. `suffix`: what the writer insists the name ends with (".npy")."""
    temporary = staging_path(target).with_name(staging_path(target).name + suffix)
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)


@contextmanager
def staged_file(target: Path) -> Iterator[IO[str]]:
    """A text file written beside `target` under a hidden name and renamed over it only when the block ends."""
    with staged_path(target) as temporary, open(temporary, "w", encoding="utf-8", newline="") as handle:
        yield handle
