"""`datasets` without its progress bars, around steps of ours a user did not ask for by name: "Map" and "Casting
the dataset" bars for a label column's encoding told a `train` or `audit` user nothing (the tokenizing and file
reading keep theirs where someone watches: those take long on big files)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


def bars_shown() -> bool:
    """Progress bars where someone watches them: a terminal, or a notebook (tqdm.auto draws widgets there). In a
    piped log each update of a bar is one more carriage-return line (a 6-epoch training's log: about 200 of them),
    and the lines of our own and the Trainer's loss lines already say how far a command is."""
    import sys

    return sys.stderr.isatty() or "ipykernel" in sys.modules


@contextmanager
def bars_where_watched() -> Iterator[None]:
    """`datasets`' bars (tokenizing) only where bars_shown."""
    if bars_shown():
        yield
    else:
        with quiet_datasets():
            yield


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Also around the int8 check, which reads the run's evaluation split in the middle of a `predict`, whose
    stderr carries one line about it."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    with warnings.catch_warnings():  # HF_DATASETS_DISABLE_PROGRESS_BARS=0 keeps them, with a warning of no use here
        warnings.simplefilter("ignore")
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if bars:
            datasets.enable_progress_bars()
