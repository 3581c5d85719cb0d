"""Artifacts appear complete or not at all: each is built in a hidden sibling folder and renamed into place."""

from __future__ import annotations

import shutil
from pathlib import Path


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
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)
