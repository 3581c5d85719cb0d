"""Explanations: which words pushed a run's answer up or down, for a person to see.

Two methods, both Captum's (the `explain` extra), both over the words of the text as the run reads it (its HTML
stripping and truncation), word pieces merged back into the words they came from (and words the tokenizer cut at
an apostrophe or hyphen, such as can't, joined again):

- integrated-gradients (Sundararajan et al. 2017): gradients of the target's logit along a straight path from a
  baseline (every word replaced by the pad token, the special tokens kept) to the text, through the input
  embeddings (`LayerIntegratedGradients`), summed over the embedding and over a word's pieces;
- occlusion: the target's logit with the text as it is minus with one word replaced by pad tokens
  (`FeatureAblation`, a word's pieces masked together): one forward pass per word.

A word's score is signed (positive: towards the target) and scaled so the largest magnitude in a text is 1. The
target is the predicted class (single-label), the likeliest tag (multi-label) or the value (regression), unless
a label or tag is named. Explanations need the run's torch model: exports and several runs on one base say so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.encoding import clean_text
from ..errors import UserError

if TYPE_CHECKING:
    from .classifier import Classifier

METHODS = ("integrated-gradients", "occlusion")
STEPS = 32  # integrated gradients' path steps; docs/benchmarks/explanations.md has what more or fewer change


@dataclass
class Explanation:
    target: str  # the label, tag or value name explained
    method: str
    words: list[tuple[str, float]] = field(default_factory=list)  # the words read, in text order, with scores
    truncated: bool = False  # the text was cut to the run's max length: later (or middle) words were not read

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "method": self.method, "truncated": self.truncated,
                "words": [{"word": w, "score": round(s, 4)} for w, s in self.words]}  # fmt: skip


def strongest_words(record: dict[str, Any], k: int = 5) -> str:
    """An explanation's k words that pushed most towards its target and the k most against it, as one line."""
    ranked = sorted(((w["word"], w["score"]) for w in record["words"]), key=lambda ws: -ws[1])
    up = ", ".join(f"{w} {s:+.2f}" for w, s in ranked[:k] if s > 0)
    down = ", ".join(f"{w} {s:+.2f}" for w, s in reversed(ranked[-k:]) if s < 0)
    return f"for {record['target']}: {up or '-'} | against: {down or '-'}"


def captum() -> Any:
    try:
        import captum.attr
    except ImportError:
        raise UserError("explanations need Captum: pip install 'lora-sentiment[explain]'") from None
    return captum.attr


def check_explainable(predictor: Any, method: str, target: str | None) -> None:
    """Before any work: a run's torch model, a known method, a label or tag the run has."""
    if method not in METHODS:
        raise UserError(f"--explain-method {method!r} is not one of {', '.join(METHODS)}")
    if not hasattr(predictor, "model") or not hasattr(predictor, "encoder"):
        raise UserError("explanations need a run's torch model: give the run folder (not an export, nor several "
                        "runs at once) with --engine torch")  # fmt: skip
    if not getattr(predictor.encoder.tokenizer, "is_fast", False):  # words come from a fast tokenizer's offsets
        raise UserError("explanations need the run's fast tokenizer (tokenizer.json); save one into the run folder "
                        "with AutoTokenizer.from_pretrained(BASE).save_pretrained(RUN)")  # fmt: skip
    check_explain_label(predictor.space, target)
    captum()


def check_explain_label(space: Any, target: str | None) -> None:
    """--explain-label names one of the run's labels (a run predicting a number has one output to explain)."""
    if target is not None and not space.problem.named_after_column and target not in space.names:
        raise UserError(f"--explain-label {target!r} is not a label of this run: {', '.join(space.names)}")


def explain(
    classifier: Classifier, texts: Sequence[str], *, method: str = METHODS[0], target: str | None = None,
    steps: int = STEPS, scores: np.ndarray | None = None,
) -> list[Explanation]:  # fmt: skip
    """One explanation per text (`scores`: the texts' scores if already predicted, to pick each target)."""
    check_explainable(classifier, method, target)
    space = classifier.space
    if scores is None:
        scores = classifier.predict_scores(list(texts))
    out = []
    for text, row in zip(texts, scores):
        index = _target_index(space, row, target)
        name = space.names[index]
        pieces = _pieces(classifier.encoder, text)
        attributions = _attribute(classifier.model, pieces, index, method, steps)
        out.append(Explanation(name, method, _by_word(pieces, attributions), pieces.truncated))
    return out


def _target_index(space: Any, row: np.ndarray, target: str | None) -> int:
    if space.problem.named_after_column:  # one output: the number
        return 0
    return space.names.index(target) if target is not None else int(np.argmax(row))


@dataclass
class _Pieces:
    """A text as the run reads it: token ids with the special tokens, each read token's word in `words`."""

    ids: list[int]
    word_of: list[int | None]  # per id: the index in `words`, None for special tokens
    words: list[str]
    truncated: bool


def _pieces(encoder: Any, text: str) -> _Pieces:
    """The run's own cut (its TextEncoder: HTML stripping, head+tail / head / tail truncation) with each token's
    word kept, from the fast tokenizer's offsets."""
    cleaned = clean_text(text) if encoder.strip_html else text
    encoded = encoder.tokenizer(cleaned, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    word_ids = encoded.word_ids() if hasattr(encoded, "word_ids") else list(range(len(ids)))
    prefix, suffix = encoder._special_tokens()
    budget = encoder.max_length - len(prefix) - len(suffix)
    keep = list(range(len(ids)))
    if len(ids) > budget:
        if encoder.truncation == "head+tail":
            head = min(encoder.head_tokens, budget)
            keep = keep[:head] + keep[len(ids) - (budget - head) :]
        else:
            keep = keep[len(ids) - budget :] if encoder.truncation == "tail" else keep[:budget]
    spans: dict[int, list[int]] = {}
    for i in keep:
        word = word_ids[i] if word_ids[i] is not None else i
        start, end = offsets[i]
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    order, groups = _read_words(cleaned, [spans[w] + [w] for w in sorted(spans, key=lambda w: spans[w][0])])
    words = [cleaned[start:end] for start, end in groups]
    word_of = [None] * len(prefix) + [order[word_ids[i] if word_ids[i] is not None else i] for i in keep]
    return _Pieces(prefix + [ids[i] for i in keep] + suffix, word_of + [None] * len(suffix), words,
                   len(keep) < len(ids))  # fmt: skip


JOINERS = "'\u2019\u2018-"  # inside a word a person reads: can't, it’s, well-made


def _read_words(text: str, spans: list[list[int]]) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """The tokenizer's words (`[start, end, word id]`, in text order) joined into the words a person reads: BERT's
    pre-tokenizer splits every punctuation mark off ("can't" is can / ' / t, and an explanation said "t +0.48"),
    so words that touch are joined across an apostrophe or hyphen, and touching punctuation marks ("!!") are one.
    Returns each tokenizer word's index among the joined words, and their spans."""
    order: dict[int, int] = {}
    groups: list[tuple[int, int]] = []
    last = ""
    for start, end, word in spans:
        piece = text[start:end]
        touching = bool(groups) and groups[-1][1] == start and bool(piece) and bool(last)
        marks = not any(c.isalnum() for c in last + piece)
        if touching and (last[-1] in JOINERS or piece[0] in JOINERS or marks):
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
        order[word], last = len(groups) - 1, piece
    return order, groups


def _attribute(model: Any, pieces: _Pieces, index: int, method: str, steps: int) -> np.ndarray:
    """Per token: the target logit's attribution (integrated gradients, or occlusion by word)."""
    import torch

    attr = captum()
    device = next(model.parameters()).device
    ids = torch.tensor([pieces.ids], device=device)
    mask = torch.ones_like(ids)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    readable = torch.tensor([[w is not None for w in pieces.word_of]], device=device)
    baseline = torch.where(readable, torch.full_like(ids, pad), ids)  # the special tokens stay

    def logits(input_ids: Any, attention_mask: Any) -> Any:
        return model(input_ids=input_ids, attention_mask=attention_mask.expand_as(input_ids)).logits.float()

    was_training = model.training
    model.eval()
    try:
        if method == "occlusion":
            groups = torch.tensor([[w + 1 if w is not None else 0 for w in pieces.word_of]], device=device)
            with torch.no_grad():
                scores = attr.FeatureAblation(logits).attribute(
                    ids, baselines=baseline, target=index, additional_forward_args=(mask,), feature_mask=groups,
                    perturbations_per_eval=16,
                )  # fmt: skip
            per_token = scores[0].float()
            # FeatureAblation gives every piece its word's whole score: one piece per word counts it
            first = [k == 0 or pieces.word_of[k] != pieces.word_of[k - 1] for k in range(len(pieces.word_of))]
            per_token = per_token * torch.tensor(first, device=device)
        else:
            with torch.enable_grad():
                scores = attr.LayerIntegratedGradients(logits, model.get_input_embeddings()).attribute(
                    ids, baselines=baseline, target=index, additional_forward_args=(mask,), n_steps=steps,
                    internal_batch_size=steps,
                )  # fmt: skip
            per_token = scores[0].float().sum(dim=-1)
    finally:
        model.train(was_training)
    return per_token.detach().cpu().numpy()


def _by_word(pieces: _Pieces, per_token: np.ndarray) -> list[tuple[str, float]]:
    totals = np.zeros(len(pieces.words))
    for word, value in zip(pieces.word_of, per_token):
        if word is not None:
            totals[word] += value
    scale = np.abs(totals).max() if len(totals) else 0.0
    scaled = totals / scale if scale > 0 else totals
    return [(word, float(score)) for word, score in zip(pieces.words, scaled)]
