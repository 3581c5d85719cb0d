"""Which texts a run saw: kept as hashes in the run, counted by `evaluate` (API and command, every engine), which
says when it is given the run's training or evaluation texts."""

import shutil

from lora_sentiment import load_classifier
from lora_sentiment.cli import main
from lora_sentiment.runs.seen import SEEN_FILE, seen_counts, seen_lines, text_hashes, write_seen


def test_hashes_set_aside_html_case_and_punctuation(tmp_path):
    assert (text_hashes(["Great  film!<br />Loved it."]) == text_hashes(["great film loved it"])).all()
    assert text_hashes(["great film"])[0] != text_hashes(["great films"])[0]
    write_seen(tmp_path, text_hashes(["A film.", "Another film."]), text_hashes(["A third one."]))
    assert seen_counts(tmp_path, ["a film", "A third one!", "Unseen."]) == {"texts": 3, "training": 1, "evaluation": 1}
    assert seen_counts(tmp_path / "nowhere", ["a film"]) is None and seen_counts(None, ["a film"]) is None
    assert seen_lines({"texts": 3, "training": 0, "evaluation": 0}) == [] and seen_lines(None) == []
    (tmp_path / SEEN_FILE).write_bytes(b"damaged")  # no record rather than a failed evaluation
    assert seen_counts(tmp_path, ["a film"]) is None


def test_evaluate_says_when_it_is_given_texts_the_run_saw(trained_run, small_csv, imdb_frames, tmp_path, capsys):
    assert (trained_run / SEEN_FILE).is_file()
    assert load_classifier(trained_run).evaluate(str(small_csv))["seen"] == {"texts": 96, "training": 96,
                                                                             "evaluation": 0}  # fmt: skip
    assert main(["evaluate", str(trained_run), "--data", str(small_csv)]) == 0
    out = capsys.readouterr().out
    assert "Warning: 96 of these 96 texts are the run's training texts" in out and "evaluation texts" not in out
    held_out = trained_run.parent / "eval.csv"  # the run's own evaluation split
    compiled = tmp_path / "compiled-run"  # compiled for ONNX Runtime in its own folder: the shared run stays as it is
    shutil.copytree(trained_run, compiled)
    assert main(["evaluate", str(compiled), "--data", str(held_out), "--engine", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "Note: 60 of these 60 texts are the run's evaluation texts" in out and "training texts" not in out
    unseen = tmp_path / "unseen.csv"
    imdb_frames[1].tail(40)[["text", "label"]].to_csv(unseen, index=False)
    assert main(["evaluate", str(trained_run), "--data", str(unseen)]) == 0
    out = capsys.readouterr().out
    assert "Warning" not in out and "Note: " not in out
    exported = tmp_path / "export"  # an export carries the record along
    assert main(["export", str(compiled), str(exported), "--format", "onnx"]) == 0
    assert main(["evaluate", str(exported), "--data", str(small_csv)]) == 0
    assert "Warning: 96 of these 96 texts are the run's training texts" in capsys.readouterr().out
    older = tmp_path / "older-run"  # a run from before the record: no counts, no error
    shutil.copytree(trained_run, older, ignore=shutil.ignore_patterns(SEEN_FILE, ".compiled"))
    assert "seen" not in load_classifier(older).evaluate(str(unseen))
