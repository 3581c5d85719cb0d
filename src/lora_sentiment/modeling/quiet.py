"""Loading a model quietly. transformers reports a fresh classification head as MISSING ("newly initialized ...
train it") with a progress bar, and peft adds a FutureWarning, although a run's head is restored from its
adapter a moment later: a user reading that after training would think the run lost. Hidden around this
package's own loading only; the user's logging settings are put back after."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
