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


def test_tables_say_how_sure_for_tags_and_numbers():
    tags = Prediction(text="Thanks!", labels=["gratitude", "joy"], probabilities={"gratitude": 0.981, "joy": 0.55,
                                                                                   "anger": 0.01})  # fmt: skip
    none = Prediction(text="ok", labels=[], probabilities={"gratitude": 0.2, "joy": 0.1, "anger": 0.0})
    unsure = Prediction(text="hm", labels=["joy"], probabilities={"joy": 0.51}, abstained=True)
    assert format_table([tags, none, unsure]).splitlines() == [
        "gratitude 0.98, joy 0.55  Thanks!",
        "(no label)                ok",
        "abstained (joy 0.51)      hm",
    ]
    value = Prediction(text="Fine.", value=7.5943, interval=[3.09, 12.1])
    bare = Prediction(text="Great.", value=9.0)  # a run without a calibrated interval
    assert format_table([value, bare]).splitlines() == ["7.594 (3.09 to 12.10)  Fine.", "9.000                  Great."]
