"""Duplicate texts within a split and shared between two (leaks): exact after normalising (HTML stripped, case
folded, punctuation and spacing ignored), and near by the Jaccard similarity of word shingles, found with MinHash
locality-sensitive hashing (datasketch, MIT) and then checked on the shingles themselves, so no reported pair rests
on the sketch's estimate alone."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .encoding import clean_text

_NOT_WORD = re.compile(r"[\W_]+")
# Word 3-grams keep two long reviews that share a few phrases apart; a text of fewer words than this is compared
# by its words (a one-word edit to a 12-word comment leaves 3-gram Jaccard under 0.5, words near 0.85).
SHINGLE_WORDS = 3
SHORT_TEXT_WORDS = 20
NUM_PERM = 128


@dataclass(frozen=True)
class Pair:
    first: int  # row in the first split
    second: int  # row in the same split (first < second) or in the other split
    similarity: float  # Jaccard of the shingles; 1.0 for texts equal once normalised
    exact: bool


def few_words(text: str, words: int = 5) -> bool:
    """Short enough that two people write it alike ("Thank you!"): such pairs are counted apart in the summary."""
    return len(normalised(text).split()) < words


def normalised(text: str) -> str:
    return _NOT_WORD.sub(" ", clean_text(text).lower()).strip()


def shingles(text: str) -> set[str]:
    words = normalised(text).split()
    if len(words) < SHORT_TEXT_WORDS:
        return set(words)
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def _jaccard(a: set[str], b: set[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def duplicate_pairs(texts: Sequence[str], threshold: float) -> list[Pair]:
    """Pairs within one split: every exact pair, and near pairs with Jaccard >= `threshold` (1: exact only)."""
    prints = text_hashes(texts).tolist()
    groups: dict[int, list[int]] = defaultdict(list)
    for i, key in enumerate(prints):
        groups[key].append(i)
    pairs = {
        (a, b): Pair(a, b, 1.0, True) for rows in groups.values() for k, a in enumerate(rows) for b in rows[k + 1 :]
    }
    if threshold < 1:
        firsts = [rows[0] for rows in groups.values()]  # one text per exact group is enough to find near ones
        sets = [shingles(texts[i]) for i in firsts]
        for x, y, similarity in _near(sets, sets, threshold, same=True):
            for a in groups[prints[firsts[x]]]:
                for b in groups[prints[firsts[y]]]:
                    key = (min(a, b), max(a, b))
                    pairs.setdefault(key, Pair(*key, similarity, False))
    return sorted(pairs.values(), key=lambda p: (p.first, p.second))


def leak_pairs(train: Sequence[str], evaluation: Sequence[str], threshold: float) -> list[Pair]:
    """Pairs (training row, evaluation row) whose texts are equal once normalised, or near with Jaccard >=
    `threshold`."""
    by_print: dict[int, list[int]] = defaultdict(list)
    for j, key in enumerate(text_hashes(evaluation).tolist()):
        by_print[key].append(j)
    pairs = {
        (i, j): Pair(i, j, 1.0, True)
        for i, key in enumerate(text_hashes(train).tolist())
        for j in by_print.get(key, [])
    }
    if threshold < 1:
        train_sets = [shingles(t) for t in train]
        eval_sets = [shingles(t) for t in evaluation]
        for i, j, similarity in _near(train_sets, eval_sets, threshold, same=False):
            pairs.setdefault((i, j), Pair(i, j, similarity, False))
    return sorted(pairs.values(), key=lambda p: (p.first, p.second))


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """8-byte hashes of the texts once normalised (int64): what a run keeps of the texts it saw (runs/seen.py)."""
    return np.array([int.from_bytes(hashlib.blake2b(normalised(t).encode("utf-8"), digest_size=8).digest(), "little",
                                    signed=True) for t in texts], dtype=np.int64)  # fmt: skip


def evaluation_overlap(
    train: Sequence[str], evaluation: Sequence[str], hashes: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, int]:
    """How many evaluation texts equal a training text once normalised (exact only: 0.2 s for GoEmotions' 43,410
    + 5,426 comments, cheap enough for every `train`), and how many of those are texts of under 5 words.
    `hashes`: both splits' text_hashes where the caller has them already."""
    train_hashes, evaluation_hashes = hashes if hashes is not None else (text_hashes(train), text_hashes(evaluation))
    shared = [text for text, inside in zip(evaluation, np.isin(evaluation_hashes, train_hashes)) if inside]
    return {"evaluation_texts": len(evaluation), "in_training": len(shared), "short": sum(map(few_words, shared))}


def overlap_text(overlap: dict[str, int]) -> str:
    """One line on the evaluation texts that are also training texts ("" when there are none)."""
    shared, short = overlap["in_training"], overlap["short"]
    if not shared:
        return ""
    stock = f"; {short} of them {'is a text' if short == 1 else 'are texts'} of under 5 words, which people write alike"
    are = "is also a training text" if shared == 1 else "are also training texts"
    return (
        f"Warning: {shared} of the {overlap['evaluation_texts']} evaluation texts {are} (equal once HTML, case and "
        f"punctuation are set aside{stock if short else ''}), so the scores overstate how the run does on unseen "
        "texts; `lora-sentiment audit` lists the pairs to remove."
    )


def _near(
    indexed: list[set[str]], queries: list[set[str]], threshold: float, *, same: bool
) -> list[tuple[int, int, float]]:
    """(indexed row, query row, Jaccard) for every pair the LSH index proposes whose true Jaccard reaches the
    threshold; `same`: both lists are one split, each pair once."""
    from datasketch import MinHash, MinHashLSH

    # The index proposes from a lower similarity than asked: LSH misses about half the pairs right at its threshold,
    # and every proposal is checked on the shingles anyway.
    lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=NUM_PERM)
    sketches = MinHash.bulk([[s.encode("utf-8") for s in shingle_set] for shingle_set in indexed], num_perm=NUM_PERM)
    for i, (sketch, shingle_set) in enumerate(zip(sketches, indexed)):
        if shingle_set:
            lsh.insert(i, sketch, check_duplication=False)
    if not same:
        sketches = MinHash.bulk([[s.encode("utf-8") for s in q] for q in queries], num_perm=NUM_PERM)
    found = []
    for j, (sketch, shingle_set) in enumerate(zip(sketches, queries)):
        if not shingle_set:
            continue
        for i in lsh.query(sketch):
            if same and i >= j:
                continue
            similarity = _jaccard(indexed[i], shingle_set)
            if similarity >= threshold:
                found.append((i, j, similarity))
    return found


def groups_of(pairs: Sequence[Pair], n: int) -> list[list[int]]:
    """Rows joined by any pair (union-find), each group of two or more rows in row order."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        a, b = root(pair.first), root(pair.second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members[root(i)].append(i)
    return [rows for rows in members.values() if len(rows) > 1]
