"""outputs.py: the one constructor that turns probabilities into predictions, used by every consumer."""

import numpy as np

from lora_sentiment.problems.outputs import Prediction, PredictionOut, format_table, predictions
from lora_sentiment.problems.single_label import best_labels

NAMES = ["Negative", "Positive", "Mixed"]


def test_from_row_and_the_vectorised_form_agree():
    rows = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]], dtype=np.float32)
    made = predictions(["a", "b", "c"], rows, NAMES)
    ids, confidence = best_labels(rows)
    assert [p.label for p in made] == ids.tolist() == [0, 2, 1]
    assert np.allclose([p.probability for p in made], confidence)
    assert made[1] == Prediction(
        text="b",
        label=2,
        label_name="Mixed",
        probability=float(rows[1, 2]),
        probabilities=dict(zip(NAMES, map(float, rows[1]))),
    )
    # The server's answer is the same record without the text.
    assert PredictionOut.from_row(rows[1], NAMES).model_dump() == made[1].model_dump(exclude={"text"})


def test_table_pads_to_the_longest_label_name():
    made = predictions(["Loved it.", "Meh."], np.array([[0.1, 0.9, 0.0], [0.2, 0.2, 0.6]]), NAMES)
    assert format_table(made).splitlines() == ["Positive  0.900  Loved it.", "Mixed     0.600  Meh."]
    assert format_table(made, "Title:").splitlines()[1] == "  Positive  0.900  Loved it."
