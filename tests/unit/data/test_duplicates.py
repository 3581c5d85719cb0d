"""Exact and near duplicates within a split and across two, on built texts."""

from lora_sentiment.data.duplicates import (
    duplicate_pairs,
    evaluation_overlap,
    groups_of,
    leak_pairs,
    normalised,
    overlap_text,
)

REVIEW = ("The acting was wooden and the plot made no sense at all, but the soundtrack carried the film further "
          "than it deserved to go, and I left the cinema humming every song of it.")  # fmt: skip


def test_normalising_ignores_case_html_punctuation_and_spacing():
    assert normalised("Great  film!<br /><br />Loved it.") == normalised("great film loved it")


def test_exact_and_near_pairs_within_a_split():
    texts = [
        REVIEW,
        "Something else entirely, about a dog.",
        REVIEW.upper().replace(",", " ,"),  # exact once normalised
        REVIEW.replace("humming", "whistling"),  # one word changed: near
        "A short comment.",
    ]
    pairs = duplicate_pairs(texts, threshold=0.8)
    found = {(p.first, p.second): p for p in pairs}
    assert found[(0, 2)].exact and found[(0, 2)].similarity == 1.0
    assert not found[(0, 3)].exact and 0.8 <= found[(0, 3)].similarity < 1
    assert (2, 3) in found  # the near text pairs with every member of the exact group
    assert all(1 not in key and 4 not in key for key in found)
    assert {(p.first, p.second) for p in duplicate_pairs(texts, threshold=1.0)} == {(0, 2)}
    assert groups_of(pairs, len(texts)) == [[0, 2, 3]]


def test_short_texts_compare_by_their_words():
    pairs = duplicate_pairs(["this made me so happy today thanks", "this made me so very happy today thanks"], 0.8)
    assert len(pairs) == 1 and pairs[0].similarity == 7 / 8


def test_leaks_between_splits():
    train = [REVIEW, "Nothing alike here.", REVIEW.replace("wooden", "stiff")]
    evaluation = ["Unrelated evaluation text.", REVIEW + " "]
    pairs = leak_pairs(train, evaluation, threshold=0.8)
    assert [(p.first, p.second, p.exact) for p in pairs] == [(0, 1, True), (2, 1, False)]
    assert leak_pairs(train, evaluation, threshold=1.0)[0].first == 0


def test_evaluation_texts_also_in_training_are_counted_for_every_run():
    train = [REVIEW, "Thank you!", "Nothing alike here."]
    evaluation = [REVIEW.lower() + "<br />", "thank you", REVIEW.replace("wooden", "stiff"), "Unrelated."]
    overlap = evaluation_overlap(train, evaluation)
    assert overlap == {"evaluation_texts": 4, "in_training": 2, "short": 1}  # the near text is the audit's to find
    line = overlap_text(overlap)
    assert line.startswith("Warning: 2 of the 4 evaluation texts are also training texts") and "1 of them" in line
    assert "lora-sentiment audit" in line
    assert overlap_text(evaluation_overlap(train, ["Unrelated."])) == ""
    one = overlap_text(evaluation_overlap(train, ["Thank you!", "Unrelated."]))
    assert one.startswith("Warning: 1 of the 2 evaluation texts is also a training text") and "1 of them is a" in one
