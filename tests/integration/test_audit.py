"""`lora-sentiment audit` through the command and the Python API: label issues, duplicates and leaks on built files
of real IMDB and GoEmotions texts, the three problem types, --write-clean / --relabel, resume after a crash, and bad
input answered in one line with nothing written."""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lora_sentiment import AuditOptions, TrainConfig, audit
from lora_sentiment.cli import main
from lora_sentiment.errors import UserError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def noisy_imdb(tmp_path_factory, imdb_frames) -> tuple[Path, Path, set[int], dict[str, int]]:
    """600 training reviews with 10 % of the labels flipped, one conflicting duplicate and one review copied from
    the evaluation file; the evaluation file itself."""
    folder = tmp_path_factory.mktemp("audit-data")
    train = imdb_frames[0].groupby("label").head(300).reset_index(drop=True)[["id", "text", "label"]].copy()
    train["label"] = train["label"].map({0: "negative", 1: "positive"})
    flipped = set(np.random.default_rng(0).choice(len(train), 60, replace=False).tolist())
    for i in flipped:
        train.loc[i, "label"] = "positive" if train.loc[i, "label"] == "negative" else "negative"
    evaluation = imdb_frames[1].head(200)[["text", "label"]]
    leaked = {"id": "leak", "text": evaluation.text.iloc[5], "label": "positive"}
    copy_of = 1 if 1 not in flipped else 2
    conflict = {"id": "dup", "text": train.text.iloc[copy_of].replace(".", " ."), "label": "other"}
    conflict["label"] = "positive" if train.loc[copy_of, "label"] == "negative" else "negative"
    train = pd.concat([train, pd.DataFrame([leaked, conflict])], ignore_index=True)
    train.to_csv(folder / "train.csv", index=False)
    evaluation.to_csv(folder / "eval.csv", index=False)
    return folder / "train.csv", folder / "eval.csv", flipped, {"leak": 600, "duplicate": 601, "copy_of": copy_of}


def _read_issues(folder: Path) -> list[dict[str, str]]:
    with (folder / "issues.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _flipped_rank_higher(result, flipped) -> None:
    is_flipped = np.isin(result.rows, list(flipped))
    assert result.label_scores[is_flipped].mean() > result.label_scores[~is_flipped].mean() + 0.1


@pytest.mark.slow  # 5 LoRA folds
def test_single_label_audit_finds_flips_duplicates_and_leaks(tmp_path, noisy_imdb, capsys):
    train, evaluation, flipped, built = noisy_imdb
    out, clean = tmp_path / "audit", tmp_path / "clean.csv"
    code = main(["audit", "--data", str(train), "--eval-data", str(evaluation), "--scorer", "tfidf",
                 "--output-dir", str(out), "--write-clean", str(clean)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "scored out of sample by the TF-IDF baseline over 5 folds" in printed
    assert "Top 10 label issues" in printed
    rows = _read_issues(out)
    assert list(rows[0]) == ["row", "kind", "score", "given", "suggested", "detail", "text"]
    labels = [r for r in rows if r["kind"] == "label"]
    assert all(r["given"] != r["suggested"] and r["suggested"] in ("negative", "positive") for r in labels)
    flagged = {int(r["row"]) for r in labels}
    assert len(flagged & flipped) / len(flagged) > 0.4  # 10 % of the rows were flipped: 4x that rate at least
    leak = [r for r in rows if r["kind"] == "leak"]
    assert [int(r["row"]) for r in leak] == [built["leak"]] and "evaluation row 5" in leak[0]["detail"]
    duplicate = {int(r["row"]) for r in rows if r["kind"] == "duplicate"}
    assert duplicate & {built["duplicate"], built["copy_of"]}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["leak"] == 1 and summary["leaks"]["exact_pairs"] == 1
    assert summary["duplicates"]["conflicting_groups"] == 1
    assert summary["labels"]["confident_joint"]["given"] == ["negative", "positive"]
    assert 0.05 < summary["labels"]["estimated_noise_rate"] < 0.4
    assert summary["scorer_quality"]["better_than_guess"]
    assert (out / "noise_matrix.png").stat().st_size > 1000
    cleaned = pd.read_csv(clean)
    assert list(cleaned.columns) == ["id", "text", "label"]  # the file's own columns
    assert len(cleaned) == 602 - len({int(r["row"]) for r in rows})
    assert "leak" not in set(cleaned.id)


def test_skewed_scores_that_rank_are_not_called_a_guess(tmp_path, imdb_frames, capsys):
    """600 reviews, 5 % of them `flag`: TF-IDF's folds answer `keep` to every text, so each decision ties the guess
    (macro-F1 and accuracy alike), yet their scores rank the reviews, and confident learning reads the scores."""
    rows = imdb_frames[0]
    skewed = pd.concat([rows[rows.label == 0].head(570), rows[rows.label == 1].head(30)]).sample(frac=1, random_state=0)
    skewed.assign(label=skewed.label.map({0: "keep", 1: "flag"}))[["text", "label"]].to_csv(tmp_path / "skewed.csv")
    out = tmp_path / "audit"
    assert main(["audit", "--data", str(tmp_path / "skewed.csv"), "--scorer", "tfidf", "--output-dir", str(out)]) == 0
    quality = json.loads((out / "summary.json").read_text())["scorer_quality"]
    assert quality["metric"] == "calibrated_loss" and quality["better_than_guess"], quality
    assert quality["value"] < quality["constant_guess"] and "Warning" not in capsys.readouterr().out


@pytest.mark.slow  # 5 LoRA folds
def test_relabel_keeps_label_issues_under_the_suggested_label(tmp_path, noisy_imdb):
    """Also the noise-injection property on real reviews: the flipped rows rank higher than the others."""
    train, evaluation, _, _ = noisy_imdb
    out, clean = tmp_path / "audit", tmp_path / "clean.jsonl"
    result = audit(TrainConfig(data=str(train), eval_data=str(evaluation), output_dir=str(out)),
                   AuditOptions(scorer="tfidf", write_clean=str(clean), relabel=True), log=lambda _: None)  # fmt: skip
    cleaned = pd.read_json(clean, lines=True).set_index("id")
    original = pd.read_csv(train)
    for issue in (r for r in result.issues if r["kind"] == "label"):
        row_id = original.id.iloc[issue["row"]]
        if row_id in cleaned.index:
            assert cleaned.loc[row_id, "label"] == issue["suggested"]
    assert "leak" not in cleaned.index  # leaks are dropped, never relabelled
    assert result.summary["clean_file"]["relabelled"] > 0
    _flipped_rank_higher(result, noisy_imdb[2])


@pytest.mark.parametrize("form", ["one-item lists", "booleans", "whole ratings"])
def test_relabelled_rows_are_written_in_the_files_own_form(tmp_path, noisy_imdb, imdb_frames, form):
    """A suggested class or value written back into a column that could not hold it failed in a traceback: a bare
    name into a list column (classes kept as one-item lists), the id 0 into a column of booleans, a rating of 6.4
    into whole ratings (IMDB's own); it is written as the column holds its labels, the ratings column made decimal."""
    frame = pd.read_csv(noisy_imdb[0])
    problem, column = "single-label", "label"
    if form == "one-item lists":
        frame["label"] = [[label] for label in frame.label]
    elif form == "booleans":
        frame["label"] = frame.label == "positive"
    else:
        problem, column = "regression", "rating"
        frame = imdb_frames[0].head(400)[["id", "text", "rating"]].reset_index(drop=True)
    frame.to_parquet(tmp_path / "labels.parquet")
    clean = tmp_path / "clean.parquet"
    result = audit(TrainConfig(data=str(tmp_path / "labels.parquet"), problem_type=problem, label_column=column,
                               output_dir=str(tmp_path / "audit")),
                   AuditOptions(scorer="tfidf", write_clean=str(clean), relabel=True), log=lambda _: None)  # fmt: skip
    assert result.summary["clean_file"]["relabelled"] > 0
    cleaned = pd.read_parquet(clean).set_index("id")
    written = {r["row"]: cleaned.loc[frame.id.iloc[r["row"]], column] for r in result.issues
               if r["kind"] == "label" and frame.id.iloc[r["row"]] in cleaned.index}  # fmt: skip
    suggested = {r["row"]: r["suggested"] for r in result.issues if r["row"] in written}
    assert written
    if form == "one-item lists":
        assert all(list(written[row]) == [suggested[row]] for row in written)
        assert all(len(labels) == 1 for labels in cleaned.label)
    elif form == "booleans":
        assert cleaned.label.dtype == bool
        assert all(written[row] == (suggested[row] == "Positive") for row in written), (written, suggested)
    else:
        assert cleaned.rating.dtype == "float64"
        assert all(written[row] == pytest.approx(float(suggested[row]), abs=1e-3) for row in written)


@pytest.mark.slow  # LoRA folds for two problem types
def test_multi_label_and_regression_through_the_command(tmp_path, imdb_frames):
    emotions = pd.read_parquet(SHARED / "goemotions" / "train.parquet").head(800)[["text", "labels"]]
    emotions.to_parquet(tmp_path / "emotions.parquet")
    out = tmp_path / "emotions"
    assert main(["audit", "--data", str(tmp_path / "emotions.parquet"), "--label-column", "labels", "--scorer",
                 "tfidf", "--folds", "3", "--output-dir", str(out), "--write-clean", str(tmp_path / "e.parquet"),
                 "--relabel"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problem_type"] == "multi-label" and "neutral" in summary["labels"]["per_tag"]
    assert summary["leaks"] is None  # no evaluation split to compare with
    cleaned = pd.read_parquet(tmp_path / "e.parquet")
    assert all(isinstance(v, str) for tags in cleaned["labels"] for v in tags)

    ratings = imdb_frames[0].head(400)[["text", "rating"]].astype({"rating": float}).reset_index(drop=True)
    ratings.loc[[3, 30], "rating"] = [1.0 if ratings.rating[3] > 5 else 10.0, 1.0 if ratings.rating[30] > 5 else 10.0]
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    out = tmp_path / "ratings"
    assert main(["audit", "--data", str(tmp_path / "ratings.csv"), "--label-column", "rating", "--problem-type",
                 "regression", "--scorer", "tfidf", "--output-dir", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"]["residuals"]["cutoff_z"] == 3.5
    assert (out / "residuals.png").exists()
    rows = _read_issues(out)
    assert all(r["kind"] == "label" and "robust SDs" in r["detail"] for r in rows)


@pytest.mark.slow  # LoRA folds, twice
def test_resume_after_a_crash_trains_only_the_unfinished_folds(tmp_path, tiny_distilbert, small_csv):
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "audit"),
                         max_length=32, epochs=1, batch_size=16, precision="fp32", max_train_samples=60)  # fmt: skip
    lines: list[str] = []

    def crash_in_fold_two(message: str) -> None:
        lines.append(message)
        if message.startswith("Fold 2 of 2"):
            raise KeyboardInterrupt  # as a kill after fold 1 was saved

    with pytest.raises(KeyboardInterrupt):
        audit(config, folds=2, log=crash_in_fold_two)
    assert (tmp_path / "audit" / "folds" / "fold-1" / "scores.npy").exists()
    assert not (tmp_path / "audit" / "issues.csv").exists()  # nothing of the report until every fold is scored
    lines.clear()
    result = audit(config, folds=2, log=lines.append)
    assert any(line.startswith("Fold 1 of 2: finished earlier") for line in lines)
    assert any(line.startswith("Fold 2 of 2: lora") for line in lines)
    assert result.summary["texts"] == 60 and (tmp_path / "audit" / "issues.csv").exists()
    assert not list((tmp_path / "audit").rglob(".*partial*"))
    # Other settings on the same folder: refused in one line; --overwrite starts over.
    with pytest.raises(Exception, match="holds an audit of other settings"):
        audit(config.model_copy(update={"lora_r": 4}), folds=2, log=lambda _: None)
    lines.clear()
    audit(config.model_copy(update={"lora_r": 4, "overwrite": True}), folds=2, log=lines.append)
    assert not any("finished earlier" in line for line in lines)


@pytest.mark.parametrize("kind, chosen", [("single-label", "lora+tfidf"), ("multi-label", "lora"),
                                           ("regression", "lora")])  # fmt: skip
def test_scorer_auto_is_chosen_per_problem_type_and_stored_resolved(tmp_path, kind, chosen):
    """lora+tfidf where it was measured to find wrong labels best (single-label), lora elsewhere; audit.json holds
    the scorer that ran, so a later rule cannot resume folds scored another way."""
    from lora_sentiment.auditing.recipe import AuditRecipe

    labels = {"single-label": ["a", "b"] * 10, "multi-label": [["a"], ["a", "b"]] * 10,
              "regression": [1.0, 2.5] * 10}[kind]  # fmt: skip
    pd.DataFrame({"text": [f"text number {i}" for i in range(20)], "label": labels}).to_parquet(tmp_path / "d.parquet")
    config = TrainConfig(data=str(tmp_path / "d.parquet"), output_dir=str(tmp_path / "a"), problem_type=kind)
    recipe = AuditRecipe(config, AuditOptions(folds=2), log=lambda _: None)
    recipe.load()
    recipe.open_folder()
    assert recipe.scorer == chosen
    assert json.loads((tmp_path / "a" / "audit.json").read_text())["settings"]["scorer"] == chosen


def test_scorer_auto_leaves_tfidf_out_where_it_finds_no_words(tmp_path):
    from lora_sentiment.auditing.recipe import AuditRecipe

    texts = ["🙂 🙂", "😡 !!", "👍", "👎 ..."] * 30
    pd.DataFrame({"text": texts, "label": ["a", "b", "a", "b"] * 30}).to_csv(tmp_path / "d.csv", index=False)
    lines: list[str] = []
    recipe = AuditRecipe(TrainConfig(data=str(tmp_path / "d.csv"), output_dir=str(tmp_path / "a")), AuditOptions(),
                         log=lines.append)  # fmt: skip
    recipe.load()
    assert recipe.scorer == "lora"
    assert any("TF-IDF has nothing to learn from" in line and "LoRA scores alone" in line for line in lines)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--relabel"], "--relabel says how --write-clean"),
        (["--write-clean", "clean.xlsx"], "--write-clean clean.xlsx: name a"),
        (["--folds", "1"], "--folds"),
        (["--scorer", "bert"], "--scorer"),
        (["--folds", "20"], "--folds 20: classes with fewer training texts than folds"),
        (["--ray-address", "auto"], "--ray-address is where --runner ray trains the folds"),
        (["--runner", "ray", "--ray-address", "head"], "is not a Ray address"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"text": [f"text number {i}" for i in range(30)], "label": ["a"] * 25 + ["b"] * 5}).to_csv(
        "data.csv", index=False
    )
    try:
        code = main(["audit", "--data", "data.csv", "--scorer", "tfidf", "--output-dir", "out", *flags])
    except SystemExit as exc:  # argparse's own refusals (choices, types) exit from the parser
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not Path("clean.xlsx").exists()
    assert not Path("out").exists()


@pytest.mark.slow  # LoRA folds
def test_overwrite_replaces_the_audit_and_keeps_other_files(tmp_path, noisy_imdb, capsys):
    train, evaluation, _, _ = noisy_imdb
    out = tmp_path / "audit"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["audit", "--data", str(train), "--scorer", "tfidf", "--folds", "2", "--output-dir", str(out)]
    assert main(argv) == 2 and "holds other files" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0 and (out / "issues.csv").exists()
    assert main([*argv, "--folds", "3"]) == 2 and "other settings" in capsys.readouterr().err
    assert main([*argv, "--folds", "3", "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "folds" / "fold-3").exists()


def test_repeats_average_cross_fittings_of_their_own_seeds_and_extend_a_finished_audit(tmp_path, noisy_imdb, capsys):
    train, _, flipped, _ = noisy_imdb
    config = TrainConfig(data=str(train), output_dir=str(tmp_path / "audit"), seed=7)
    alone = [audit(config.model_copy(update={"seed": seed, "output_dir": str(tmp_path / f"seed-{seed}")}), folds=3,
                   scorer="tfidf", log=lambda _: None) for seed in (7, 8)]  # fmt: skip
    assert not np.allclose(alone[0].scores, alone[1].scores)  # other folds, other scores
    first = audit(config, folds=3, scorer="tfidf", log=lambda _: None)
    assert np.array_equal(first.scores, alone[0].scores) and first.summary["repeats"] == 1
    lines: list[str] = []
    both = audit(config, folds=3, scorer="tfidf", repeats=2, log=lines.append)
    assert np.allclose(both.scores, (alone[0].scores + alone[1].scores) / 2)
    assert [line for line in lines if line.startswith("Cross-fitting")] == [
        "Cross-fitting 1 of 2 (seed 7)",
        "Cross-fitting 2 of 2 (seed 8)",
    ]
    assert sum(line.startswith("Fold") and "finished earlier" in line for line in lines) == 3  # the first's folds
    assert both.summary["repeats"] == 2 and "repeat-2-fold-3" in both.summary["seconds"]
    assert "over 3 folds, 2 cross-fittings averaged" in lines[-2]
    assert (tmp_path / "audit" / "repeats" / "2" / "folds" / "fold-3" / "scores.npy").exists()
    _flipped_rank_higher(both, flipped)
    # Back to one: the first cross-fitting's scores, read; --overwrite clears the repeats too.
    assert np.array_equal(audit(config, folds=3, scorer="tfidf", log=lambda _: None).scores, first.scores)
    assert main(["audit", "--data", str(train), "--scorer", "tfidf", "--folds", "3", "--seed", "7", "--output-dir",
                 str(tmp_path / "audit"), "--overwrite"]) == 0  # fmt: skip
    assert not (tmp_path / "audit" / "repeats").exists()
    assert main(["audit", "--data", str(train), "--repeats", "0", "--output-dir", str(tmp_path / "bad")]) == 2
    assert "--repeats" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.slow  # four tiny LoRA runs
def test_each_cross_fitting_trains_its_lora_folds_with_its_own_seed(tmp_path, tiny_distilbert, small_csv):
    import yaml

    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "audit"), seed=3,
                         max_length=32, epochs=1, batch_size=16, precision="fp32", max_train_samples=60)  # fmt: skip
    result = audit(config, folds=2, scorer="lora", repeats=2, log=lambda _: None)
    for folder, seed in ((tmp_path / "audit", 3), (tmp_path / "audit" / "repeats" / "2", 4)):
        for fold in (1, 2):
            run = folder / "folds" / f"fold-{fold}" / "run"
            assert yaml.safe_load((run / "training_config.yaml").read_text())["seed"] == seed
    assert result.scores.shape == (60, 2) and np.allclose(result.scores.sum(axis=1), 1, atol=1e-4)


@pytest.mark.slow  # trains the run it refuses
def test_a_run_folder_is_not_an_audit_folder(trained_run, capsys, small_csv):
    assert main(["audit", "--data", str(small_csv), "--scorer", "tfidf", "--output-dir", str(trained_run)]) == 2
    assert "holds a training run" in capsys.readouterr().err


@pytest.mark.slow  # starts two worker processes
def test_folds_in_worker_processes(tmp_path, tiny_distilbert, small_csv):
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "audit"),
                         max_length=32, epochs=1, batch_size=16, precision="fp32", max_train_samples=60)  # fmt: skip
    lines: list[str] = []
    result = audit(config, folds=2, workers=2, log=lines.append)
    assert any("in 2 worker processes" in line for line in lines)
    assert result.summary["scorer"] == "lora+tfidf"  # --scorer auto, on single-label data
    assert result.scores.shape == (60, 2) and np.allclose(result.scores.sum(axis=1), 1, atol=1e-4)
    for fold in (1, 2):
        assert (tmp_path / "audit" / "folds" / f"fold-{fold}" / "run" / "adapter_config.json").exists()


@pytest.mark.slow  # starts a local Ray
def test_folds_as_ray_tasks_score_as_here(tmp_path, tiny_distilbert, small_csv):
    """Each fold a Ray task in its own scratch folder (a node need not share this disk): the scores come back and
    are saved here, the same as the folds trained one after another here."""
    pytest.importorskip("ray", reason="the ray extra")
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "here"),
                         max_length=32, epochs=1, batch_size=16, precision="fp32", max_train_samples=60)  # fmt: skip
    here = audit(config, folds=2, log=lambda _: None)
    lines: list[str] = []
    on_ray = audit(config.model_copy(update={"output_dir": str(tmp_path / "ray")}), folds=2, runner="ray",
                   log=lines.append)  # fmt: skip
    assert any("as Ray tasks" in line for line in lines)
    np.testing.assert_allclose(on_ray.scores, here.scores, atol=1e-5)
    assert [(r["row"], r["kind"]) for r in on_ray.issues] == [(r["row"], r["kind"]) for r in here.issues]
    for fold in (1, 2):
        kept = tmp_path / "ray" / "folds" / f"fold-{fold}"
        assert (kept / "scores.npy").exists() and not (kept / "run").exists()  # the run stayed in the task


@pytest.mark.parametrize("kind", ["multi-label", "regression"])
@pytest.mark.slow  # LoRA folds
def test_lora_folds_for_tags_and_numbers(tmp_path, tiny_distilbert, imdb_frames, kind):
    """Each fold's train run reads its fold file as the audit's problem type: tag lists and numbers."""
    frame = imdb_frames[0].head(40)[["text", "rating"]].reset_index(drop=True)
    if kind == "multi-label":
        tags = [["good"] if r >= 7 else ["bad", "long"] if i % 2 else ["bad"] for i, r in enumerate(frame.rating)]
        frame["labels"] = tags
        frame = frame.drop(columns="rating")
    else:
        frame["rating"] = frame.rating.astype(float)
    frame.to_parquet(tmp_path / "data.parquet")
    config = TrainConfig(model=tiny_distilbert, data=str(tmp_path / "data.parquet"), output_dir=str(tmp_path / "a"),
                         label_column="labels" if kind == "multi-label" else "rating", problem_type=kind,
                         max_length=16, epochs=1, batch_size=8, precision="fp32", eval_fraction=0.25)  # fmt: skip
    result = audit(config, folds=2, scorer="lora+tfidf", log=lambda _: None)
    assert result.summary["problem_type"] == kind and result.summary["scorer"] == "lora+tfidf"
    assert result.scores.shape == ((40, 3) if kind == "multi-label" else (40, 1))
    for fold in (1, 2):  # the fold's scores are the mean of its members', kept beside them
        kept = tmp_path / "a" / "folds" / f"fold-{fold}"
        lora, tfidf = (np.load(kept / f"scores-{name}.npy") for name in ("lora", "tfidf"))
        np.testing.assert_allclose(np.load(kept / "scores.npy"), (lora + tfidf) / 2)
        assert not np.allclose(lora, tfidf)
    assert (tmp_path / "a" / ("noise_matrix.png" if kind == "multi-label" else "residuals.png")).exists()


@pytest.mark.parametrize("weights, folds_train_with", [("auto", "none"), ("balanced", "balanced")])
def test_skewed_classes_train_the_folds_unweighted_unless_asked(tmp_path, tiny_distilbert, imdb_frames, weights,
                                                                 folds_train_with):  # fmt: skip
    """Confident learning reads the folds' probabilities, which class weights pull towards the rare class (measured:
    lower precision at the same recall), so `auto` means none in an audit; `balanced` is honoured."""
    import yaml

    rows = imdb_frames[0]
    skewed = pd.concat([rows[rows.label == 0].head(54), rows[rows.label == 1].head(6)]).sample(frac=1, random_state=0)
    skewed[["text", "label"]].to_csv(tmp_path / "skewed.csv", index=False)
    config = TrainConfig(model=tiny_distilbert, data=str(tmp_path / "skewed.csv"), output_dir=str(tmp_path / "audit"),
                         max_length=32, epochs=1, batch_size=16, precision="fp32", class_weights=weights)  # fmt: skip
    lines: list[str] = []
    audit(config, folds=2, scorer="lora", log=lines.append)
    for fold in (1, 2):
        kept = tmp_path / "audit" / "folds" / f"fold-{fold}" / "run" / "training_config.yaml"
        assert yaml.safe_load(kept.read_text())["class_weights"] == folds_train_with
    assert any(line.startswith("Skewed classes: the folds train unweighted") for line in lines) == (weights == "auto")
    stored = json.loads((tmp_path / "audit" / "audit.json").read_text())["settings"]["train"]
    assert stored["class_weights"] == folds_train_with  # a resumed audit is refused rather than mixed
    # The TF-IDF scorer (and lora+tfidf's member) reads the same setting: weighted only when asked.
    tfidf = [audit(config.model_copy(update={"class_weights": w, "output_dir": str(tmp_path / f"tfidf-{w}")}),
                   folds=2, scorer="tfidf", log=lambda _: None).scores[:, 1] for w in (weights, "none")]  # fmt: skip
    if folds_train_with == "none":
        np.testing.assert_array_equal(tfidf[0], tfidf[1])
        return
    assert tfidf[0].mean() > 1.3 * tfidf[1].mean(), (tfidf[0].mean(), tfidf[1].mean())
    # a folder from before TF-IDF followed the weights holds unweighted folds: refused on resume, not mixed
    weighted = config.model_copy(update={"output_dir": str(tmp_path / f"tfidf-{weights}")})
    audit(weighted, folds=2, scorer="tfidf", log=lambda _: None)  # the same audit again: resumed
    state_file = tmp_path / f"tfidf-{weights}" / "audit.json"
    state = json.loads(state_file.read_text())
    del state["settings"]["tfidf_weighted"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(UserError, match="holds an audit of other settings"):
        audit(weighted, folds=2, scorer="tfidf", log=lambda _: None)


def test_the_printed_issues_show_texts_as_typed(tmp_path, capsys):
    """Curly quotes, accents and emoji in the one-screen summary, not JSON's \\u escapes."""
    good = [f"great wonderful lovely film number {i}" for i in range(30)]
    bad = [f"awful terrible boring film number {i}" for i in range(30)]
    odd = "great wonderful lovely film — it’s café-level ☕"
    rows = [(t, "positive") for t in good] + [(t, "negative") for t in bad] + [(odd, "negative")]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(tmp_path / "data.csv", index=False)
    code = main(["audit", "--data", str(tmp_path / "data.csv"), "--scorer", "tfidf", "--output-dir",
                 str(tmp_path / "audit")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and f'"{odd}"' in printed and "\\u" not in printed
