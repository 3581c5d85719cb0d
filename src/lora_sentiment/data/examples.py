"""The unseen texts a run predicts before and after training (--examples): in its log, model card, report and page.

IMDB keeps the tutorial's five one-line reviews, which were written for it. Other data gets a few texts of its own
evaluation split, which the run never trains on: movie one-liners say little about a model of support tickets or
emotions, and a text of the user's own kind, with the label it was given, shows what training changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import DEFAULT_EXAMPLES

SHOWN = 5
# Texts up to this long fit a line of the log and a cell of the card's table; longer ones only where too few are
# (IMDB: 4 of the 1,000 shared validation reviews), and they are shown shortened (the run predicts them whole).
READABLE_CHARS = 200
_IMDB_NAMES = {"imdb", "stanfordnlp/imdb"}


def is_imdb(source: str) -> bool:
    """The hub's IMDB or an aclImdb folder: the data the tutorial's examples were written for. A folder of split
    files (train.csv beside validation.csv) is the user's own data, shown its own texts."""
    return source.strip().lower() in _IMDB_NAMES or (Path(source).expanduser() / "train" / "pos").is_dir()


def example_texts(config: Any, data: Any) -> tuple[list[str], list[str] | None]:
    """(the texts, the labels they were given, or None where they were not drawn from the data). `config`: the
    TrainConfig (--examples, --data, --seed); `data`: the LabeledData the run trains on."""
    if config.examples is not None:
        return list(config.examples), None
    if is_imdb(config.data):
        return list(DEFAULT_EXAMPLES), None
    import numpy as np

    texts, labels = data.eval["text"], data.eval["label"]
    rows = _drawn(texts, np.asarray(labels), data.space, config.seed)
    given = [data.space.problem.label_text(labels[i], data.space) or "(no label)" for i in rows]
    return [texts[i] for i in rows], given


def _drawn(texts: list[str], labels: Any, space: Any, seed: int) -> list[int]:
    """Up to SHOWN rows, seeded: one-line texts of up to READABLE_CHARS in random order first, then the shortest of
    the rest; for classes one class after another (the commonest first), so a skewed split shows its rare ones
    beside the common ones (up to five classes)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = np.array([len(t) + (10**6 if "\n" in t else 0) for t in texts])
    readable = lengths <= READABLE_CHARS
    order = np.lexsort((np.where(readable, rng.random(len(texts)), lengths), ~readable))
    if not space.problem.stratified:
        return order[:SHOWN].tolist()
    classes = np.asarray(labels).astype(int)[order]
    queues = sorted((order[classes == c].tolist() for c in range(len(space.names))), key=len, reverse=True)
    chosen: list[int] = []
    for rank in range(SHOWN):
        chosen += [queue[rank] for queue in queues if rank < len(queue)]
    return chosen[:SHOWN]


def shown(text: str, limit: int = READABLE_CHARS) -> str:
    """A text on one line, without HTML tags, cut at `limit` characters with an ellipsis: for the log's and the
    card's tables."""
    from .encoding import clean_text

    line = " ".join(clean_text(text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
