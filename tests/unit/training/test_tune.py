"""`lora-sentiment tune`: a real Optuna study of real training runs — pruning, resuming, sharing one study
between processes, and a best_config.yaml that `train --config` reproduces."""

import csv
import subprocess
import sys

import pytest
import yaml

from lora_sentiment.cli import main
from lora_sentiment.config import TrainConfig
from lora_sentiment.errors import UserError

optuna = pytest.importorskip("optuna", reason="the tune extra")  # installed by .ci/run: these tests run in CI


@pytest.fixture
def base(tmp_path, tiny_distilbert, small_csv) -> TrainConfig:
    return TrainConfig(
        model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "study"), max_length=32, epochs=2,
        batch_size=16, precision="fp32", examples=["Good."], metric_for_best_model="loss",
    )  # fmt: skip


def _study(folder, name="lora-sentiment"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")


@pytest.mark.slow
def test_a_search_prunes_a_diverging_trial_and_writes_its_results(base, capsys):
    """Two sane learning rates first, then one that diverges: the median pruner stops it after one epoch."""
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import tune

    folder = tmp_path_of(base)
    folder.mkdir()
    seeded = optuna.create_study(study_name="lora-sentiment", storage=f"sqlite:///{folder / 'study.db'}")
    for rate in (1e-3, 2e-3, 80.0):
        seeded.enqueue_trial({"learning_rate": rate, "lora_r": 4})
    result = tune(base, parse_search(["learning_rate=1e-4:100:log", "lora_r=4,8"]), trials=4, keep="all")
    study = _study(folder)
    states = {t.number: t.state.name for t in study.trials}
    assert len(states) == 4 and states[2] == "PRUNED", states
    assert list(study.trials[2].intermediate_values) == [1]  # stopped after its first epoch
    assert states[0] == states[1] == "COMPLETE"
    rows = list(csv.DictReader(open(folder / "leaderboard.csv")))
    assert (
        len(rows) == 4 and rows[0]["state"] == "complete" and float(rows[0]["loss"]) == pytest.approx(result.best_value)
    )
    assert {"learning_rate", "lora_r", "epochs_run", "seconds"} <= set(rows[0])
    assert (folder / "optimization_history.png").stat().st_size > 1000
    assert (folder / "param_importances.png").stat().st_size > 1000
    assert result.baseline is not None  # the TF-IDF line to beat, from the best trial's run
    complete = [row for row in rows if row["state"] == "complete"]
    assert all(row["interval"].startswith("accuracy ") and "-" in row["interval"] for row in complete)
    out = capsys.readouterr().out
    assert "Leaderboard:" in out and "pruned" in out and "TF-IDF baseline" in out
    assert "{'loss'" not in out  # each trial summarises itself; the Trainer's dicts of four trials would bury it
    if study.best_trial.number == 0:  # the settings given won: nothing to compare them with
        assert result.against_first is None
    else:  # the search's best against the settings given, on the same texts
        comparison = result.against_first
        assert comparison["metric"] == "accuracy" and comparison["texts"] == 20
        assert "vs trial 0 (the settings given) on the same 20 texts" in out


def tmp_path_of(config: TrainConfig):
    from pathlib import Path

    return Path(config.output_dir)


def test_settings_drawn_again_take_the_finished_trials_result(base, capsys):
    """A search of few choices draws a finished trial's settings again (here queued: 8, 4, 8, 4): training is seeded,
    so its result is taken instead of training the same run twice, and --keep best removes no run it points to."""
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import tune

    folder = tmp_path_of(base)
    folder.mkdir()
    queued = optuna.create_study(study_name="lora-sentiment", storage=f"sqlite:///{folder / 'study.db'}")
    for rank in (8, 4, 8, 4):  # the first two are never pruned (the pruner waits for two finished trials)
        queued.enqueue_trial({"lora_r": rank})
    tune(base, parse_search(["lora_r=4,8"]), trials=4, keep="best")
    study = _study(folder)
    assert [t.user_attrs.get("same_as") for t in study.trials] == [None, None, 0, 1]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert [t.value for t in study.trials[2:]] == [t.value for t in study.trials[:2]]
    assert "run_dir" not in study.trials[2].user_attrs and "run_dir" not in study.trials[3].user_attrs
    out = capsys.readouterr().out
    assert out.count("not trained again") == 2
    assert "predictions:" not in out  # no example tables a trial (the base config gives one example)
    assert yaml.safe_load((folder / "best_config.yaml").read_text())["examples"] == ["Good."]
    rows = {int(r["trial"]): r["state"] for r in csv.DictReader(open(folder / "leaderboard.csv"))}
    assert rows == {0: "complete", 1: "complete", 2: "same as 0", 3: "same as 1"}
    best = min(study.trials[:2], key=lambda t: (t.value, t.number))
    assert [p.name for p in (folder / "trials").iterdir()] == [f"trial-{best.number:04d}"]  # the best run is kept


@pytest.mark.slow
def test_the_same_command_again_continues_the_study(base):
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import tune

    search = parse_search(["learning_rate=1e-4:3e-3:log"])
    tune(base, search, trials=2, keep="all")
    first = [(t.number, t.params, t.value) for t in _study(tmp_path_of(base)).trials]
    assert first[0][1] == {"learning_rate": 1e-3}  # the settings given (auto: 1e-3 on 96 texts) are tried first
    tune(base, search, trials=3, keep="all")
    trials = _study(tmp_path_of(base)).trials
    assert [(t.number, t.params, t.value) for t in trials[:2]] == first  # finished trials are not repeated
    assert len(trials) == 3
    assert sorted(p.name for p in (tmp_path_of(base) / "trials").iterdir()) == [f"trial-000{i}" for i in range(3)]
    with pytest.raises(UserError, match="started with other settings"):
        tune(base, parse_search(["lora_r=4,8"]), trials=4)


@pytest.mark.slow
def test_best_config_reproduces_the_best_trial(base, tmp_path, capsys):
    from lora_sentiment.runs.run import Run
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import tune

    result = tune(base, parse_search(["learning_rate=5e-4:3e-3:log", "lora_dropout=0:0.1"]), trials=2)
    assert len(list((tmp_path_of(base) / "trials").iterdir())) == 1  # --keep best
    settings = yaml.safe_load(result.best_config.read_text())
    assert settings["output_dir"] == str(tmp_path_of(base) / "best")
    assert main(["train", "--config", str(result.best_config)]) == 0
    again = Run.open(settings["output_dir"]).metrics.final["loss"]
    assert again == pytest.approx(result.best_value, abs=1e-6)


@pytest.mark.slow
def test_two_processes_share_one_study(base):
    """Optuna's own distributed mode: two tune processes on the output folder's SQLite study."""
    folder = tmp_path_of(base)
    command = [sys.executable, "-m", "lora_sentiment", "tune", "--model", base.model, "--data", base.data,
               "--output-dir", str(folder), "--max-length", "32", "--epochs", "1", "--precision", "fp32",
               "--search", "learning_rate=1e-4:3e-3:log", "--trials", "3", "--keep", "all"]  # fmt: skip
    folder.mkdir()
    optuna.create_study(study_name="lora-sentiment", storage=f"sqlite:///{folder / 'study.db'}")  # no create race
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [p.communicate(timeout=300) for p in processes]
    # a failure shows the thread and storage errors from anywhere in the output, not only its last traceback
    seen = [[line for line in err.splitlines() if "Error" in line or "Exception in thread" in line][-12:]
            for _, err in outputs]  # fmt: skip
    assert [p.returncode for p in processes] == [0, 0], seen
    trials = _study(folder).trials
    assert len({t.user_attrs["process"] for t in trials}) == 2  # both worked on it
    assert len([t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]) >= 3  # --trials counts finished ones


@pytest.mark.slow
def test_a_trial_failed_by_another_process_while_it_ran_is_run_again(base, monkeypatch, capsys):
    """Another process that saw no heartbeat for GRACE_SECONDS (a paused or overloaded machine) marks a live
    trial failed; the trial's own process cannot report it, and goes on instead of crashing."""
    import sqlite3

    from lora_sentiment.training import recipe
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import _storage, tune

    folder, real_train = tmp_path_of(base), recipe.train

    def train_then_go_stale(config, **kwargs):
        result = real_train(config, **kwargs)
        if config.output_dir.endswith("trial-0000"):  # the other process's view: this trial went silent
            with sqlite3.connect(folder / "study.db") as db:
                db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-10 minutes')")
            other = optuna.load_study(study_name="lora-sentiment", storage=_storage(optuna, None, folder))
            optuna.storages.fail_stale_trials(other)
        return result

    import logging

    class Records(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    seen = Records()
    logging.getLogger("optuna").addHandler(seen)  # where Optuna's own warnings go (it does not propagate to root)
    monkeypatch.setattr(recipe, "train", train_then_go_stale)
    one_epoch = TrainConfig(**{**base.model_dump(), "epochs": 1})
    try:
        result = tune(one_epoch, parse_search(["learning_rate=1e-4:3e-3:log"]), trials=2)
    finally:
        logging.getLogger("optuna").removeHandler(seen)
    # Optuna's warning and traceback about the lost trial are dropped: the line below says it
    assert not [m for m in seen.messages if m.startswith("Trial 0 failed")], seen.messages
    trials = _study(folder).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params == trials[0].params  # the lost settings, run again
    assert "Trial 0 was marked failed by another process" in capsys.readouterr().out
    assert result.best_value is not None and (folder / "best_config.yaml").exists()


_POP_WAITING = """
import json, sys, time
from pathlib import Path
import optuna
from lora_sentiment.training.tuning import _storage
study = optuna.load_study(study_name="race", storage=_storage(optuna, sys.argv[1], Path(".")))
Path(sys.argv[2] + "." + sys.argv[3]).touch()  # ready
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
taken = []
while (trial := study._pop_waiting_trial_id()) is not None:
    taken.append(trial)
print(json.dumps(taken))
"""


def _two_processes_pop(folder, attempt: int) -> tuple[list[int], list[int]]:
    import json
    import time

    url, go = f"sqlite:///{folder / f'study-{attempt}.db'}", folder / f"go-{attempt}"
    study = optuna.create_study(study_name="race", storage=url)
    for x in range(100):
        study.enqueue_trial({"x": x})
    processes = [subprocess.Popen([sys.executable, "-c", _POP_WAITING, url, str(go), name], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for name in "ab"]  # fmt: skip
    deadline = time.monotonic() + 120
    while not all((folder / f"go-{attempt}.{name}").exists() for name in "ab") and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both start taking trials at once, after their imports
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    a, b = (json.loads(out) for out, _ in outputs)
    return a, b


@pytest.mark.slow  # two processes
def test_two_processes_never_take_the_same_waiting_trial(tmp_path):
    """Two processes taking queued trials from one SQLite study each take a trial at most once between them.
    Without BEGIN IMMEDIATE, 9 and 18 of 100 were taken by both (the CI failure "Cannot tell a COMPLETE trial")."""
    for attempt in range(3):  # a loaded machine may let one process take all before the other runs: no race then
        a, b = _two_processes_pop(tmp_path, attempt)
        assert not set(a) & set(b) and len(a) + len(b) == 100
        if a and b:
            return
    pytest.fail("one process took every trial three times: the race was never run")


def test_only_the_lost_trials_warnings_are_dropped():
    import logging

    from lora_sentiment.training.tuning import _LostTrialWarnings

    class Objective:
        failed_elsewhere = None

    objective = Objective()
    quiet = _LostTrialWarnings(objective)  # type: ignore[arg-type]

    def record(message):
        return logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1, message, None, None)

    assert quiet.filter(record("Trial 3 failed with value None."))  # nothing lost: every warning shown
    objective.failed_elsewhere = 3
    assert not quiet.filter(record("Trial 3 failed with parameters: {} because of the following error: ..."))
    assert not quiet.filter(record("Trial 3 failed with value None."))
    assert quiet.filter(record("Trial 4 failed with value None."))  # another trial's failure is its own
    assert quiet.filter(record("Trial 31 failed with value None."))  # not trial 3's


@pytest.mark.slow
def test_a_trial_that_fails_by_itself_is_not_taken_for_a_stale_one(base, monkeypatch):
    """A trial's own failure (here a nan objective) stops the search as before; it is not mistaken for a trial
    that another process failed, which would be run again and again."""
    from lora_sentiment.training import recipe
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import tune

    real_train = recipe.train

    def train_to_nan(config, **kwargs):
        result = real_train(config, **kwargs)
        result.metrics.final.loss = float("nan")
        return result

    monkeypatch.setattr(recipe, "train", train_to_nan)
    one_epoch = TrainConfig(**{**base.model_dump(), "epochs": 1})
    with pytest.raises(ValueError, match="gave loss = nan"):
        tune(one_epoch, parse_search(["learning_rate=1e-4:3e-3:log"]), trials=2, log=lambda _: None)
    assert [t.state.name for t in _study(tmp_path_of(base)).trials] == ["FAIL"]


@pytest.mark.parametrize(
    "search, words",
    [
        (["lora_r"], ["NAME=LOW:HIGH[:log]"]),
        (["model=x,y"], ["cannot vary 'model'", "searchable settings"]),
        (["learning_rate=3e-3:1e-4"], ["LOW must be below HIGH"]),
        (["lora_dropout=0.1,1.5"], ["lora_dropout", "not a valid value"]),
        (["lora_r=4,8", "lora_r=16"], ["names a setting twice"]),
    ],
)
def test_bad_search_specs_fail_in_one_line(tmp_path, small_csv, capsys, search, words):
    code = main(["tune", "--data", str(small_csv), "--output-dir", str(tmp_path / "s"), "--search", *search])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and all(w in err for w in words), err
    assert not (tmp_path / "s").exists()


def test_a_search_block_in_the_config_file(tmp_path, small_csv, capsys):
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump({"data": str(small_csv), "search": {"lora_r": "4,8", "model": "a,b"}}))
    code = main(["tune", "--config", str(config), "--output-dir", str(tmp_path / "s")])
    assert code == 2 and "cannot vary 'model'" in capsys.readouterr().err


def test_a_training_run_folder_is_not_a_study_folder(trained_run, small_csv, capsys):
    code = main(["tune", "--data", str(small_csv), "--output-dir", str(trained_run), "--trials", "1"])
    assert code == 2 and "holds a training run" in capsys.readouterr().err


def test_the_best_trial_is_compared_with_trial_0_on_the_same_texts(trained_run, calibrated_run):
    """The search's best against the settings given: both runs predict the same evaluation texts and the paired
    bootstrap says whether the difference is beyond the noise (here two runs that answer alike: within it)."""
    from types import SimpleNamespace

    from lora_sentiment.training.tune_results import _best_against_first

    def trial(number, run):
        return SimpleNamespace(number=number, state=SimpleNamespace(name="COMPLETE"), user_attrs={"run_dir": str(run)})

    first, best = trial(0, trained_run), trial(1, calibrated_run)
    said = []
    comparison = _best_against_first(SimpleNamespace(trials=[first, best]), best, said.append)
    assert comparison["metric"] == "accuracy" and comparison["texts"] == 60 and comparison["difference"] == 0
    assert comparison["beyond_noise"] is False and "The best trial (1) vs trial 0 (the settings given)" in said[0]
    assert "chosen as the best of 2 finished trials on these same texts, so its lead here is optimistic" in said[1]
    assert _best_against_first(SimpleNamespace(trials=[first]), first, said.append) is None  # trial 0 won


def test_trial_0_starts_from_the_learning_rate_train_would_run(tmp_path, small_csv):
    """`--learning-rate auto` is not a number a search can start from: trial 0 takes what `train` would run on
    this data (half the rate on a small set), so it stays "the settings given"."""
    import pandas as pd

    from lora_sentiment.training.tuning import _with_sized_settings

    few = tmp_path / "few.csv"
    pd.read_csv(small_csv).groupby("label").head(20).to_csv(few, index=False)
    assert _with_sized_settings(TrainConfig(data=str(few))).learning_rate == 5e-4
    assert _with_sized_settings(TrainConfig(data=str(small_csv))).learning_rate == 1e-3
    assert _with_sized_settings(TrainConfig(data=str(few), learning_rate=2e-3)).learning_rate == 2e-3


_QUEUE_FIRST = """
import sys, time
from pathlib import Path
import optuna
from lora_sentiment.training.tuning import _queue_first, _storage
folder = Path(sys.argv[1])
study = optuna.create_study(study_name="fresh", storage=_storage(optuna, None, folder), load_if_exists=True)
add_trial = optuna.Study.add_trial
def slow_add_trial(self, trial):  # the window between reading "no trials" and queueing, made wide
    time.sleep(0.5)
    add_trial(self, trial)
optuna.Study.add_trial = slow_add_trial
Path(sys.argv[2] + "." + sys.argv[3]).touch()  # ready
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
_queue_first(study, {"x": 1}, None, folder)
"""


@pytest.mark.slow  # two processes
def test_two_processes_starting_a_fresh_study_queue_the_given_settings_once(tmp_path):
    """Both processes find the fresh study empty; only one queues trial 0's settings (both did, and the trial ran
    twice, before the file lock)."""
    import time

    optuna.create_study(study_name="fresh", storage=f"sqlite:///{tmp_path / 'study.db'}")
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", _QUEUE_FIRST, str(tmp_path), str(go), name],
                                  stderr=subprocess.PIPE, text=True) for name in "ab"]  # fmt: skip
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"go.{name}").exists() for name in "ab") and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [e[-2000:] for e in errors]
    trials = _study(tmp_path, "fresh").trials
    assert [t.state.name for t in trials] == ["WAITING"] and trials[0].system_attrs["fixed_params"] == {"x": 1}


def test_two_processes_starting_one_study_together_draw_different_settings(tmp_path):
    """Each process seeded its sampler alike and saw the same (no) trials, so both drew the same learning rate and
    trained the same run side by side; each trial now draws from its own number, which the storage hands out once."""
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import draw

    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=url)
    search = parse_search(["learning_rate=1e-4:3e-3:log", "lora_r=4,8,16,32"])
    processes = [optuna.load_study(study_name="s", storage=url) for _ in "ab"]
    for study in processes:
        study.sampler = optuna.samplers.TPESampler(seed=0)
    trials = [study.ask() for study in processes]
    drawn = [draw(trial, search, seed=0) for trial in trials]
    assert [t.number for t in trials] == [0, 1] and drawn[0] != drawn[1]
    again = optuna.create_study()  # alone, the same seed draws the same settings for the same trial number
    assert draw(again.ask(), search, seed=0) == drawn[0]


def test_a_folder_of_other_files_is_refused_before_any_trial(tmp_path, small_csv, capsys):
    """`tune --output-dir .` (or `/`) strewed the study's database, its trials' runs and plots among the files there;
    a study's own folder (its database, or its trials with the database elsewhere) is continued as before."""
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["tune", "--data", str(small_csv), "--output-dir", str(tmp_path), "--search", "lora_r=4,8"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("holds other files; give tune an empty folder, or a study's folder to continue it"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    from lora_sentiment.options import TuneOptions
    from lora_sentiment.training.checks import check_tune

    config = TrainConfig(data=str(small_csv), output_dir=str(tmp_path))
    (tmp_path / "trials").mkdir()
    check_tune(config, TuneOptions())  # a study's folder (its trials), its notes beside it: continued
    (tmp_path / "trials").rmdir()
    shared = TuneOptions(storage=f"sqlite:///{tmp_path / 'shared.db'}")
    with pytest.raises(UserError, match="holds other files"):
        check_tune(config, shared)
    (tmp_path / "shared.db").touch()  # the study's --storage database, in its folder: another process's study
    check_tune(config, shared)
