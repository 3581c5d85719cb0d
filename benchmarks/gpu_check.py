"""How close the GPU path comes to the device's limit: DistilBERT-shaped training and prediction as a share
of the bf16 matmul peak measured in the same run, and MiniLM's accuracy at the training batch sizes tried.

    python benchmarks/gpu_check.py --minilm DIR --data DIR --output gpu.json

Run by benchmarks/device_check.sh on a lent GPU machine. --data holds the IMDB sample's train.parquet and
validation.parquet; --minilm is all-MiniLM-L6-v2 (its tokenizer also serves the DistilBERT-shaped model).
Prediction is timed as users run it: raw texts in, probabilities out, tokenization included."""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lora_sentiment.bench.harness import machine_description, peak_matmul_flops, quiet
from lora_sentiment.bench.speed import forward_flops, make_shaped_model, phase_train
from lora_sentiment.inference.classifier import Reading, load_classifier, predict_logits
from lora_sentiment.modeling.device import synchronize


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def repeated_parquet(source: Path, rows: int, target: Path) -> Path:
    frame = pd.read_parquet(source)
    pd.concat([frame] * (rows // len(frame) + 1), ignore_index=True).head(rows).to_parquet(target)
    return target


def train_entry(values: dict, peak: float) -> dict:
    result = phase_train(values)
    result["mfu"] = result["train_flops_per_second"] / peak
    gc.collect()
    torch.cuda.empty_cache()
    return result


def time_predict(
    classifier, texts: list[str], lengths: list[int], batch_size: int | None, peak: float, block: int | None = None
) -> dict:
    """Raw texts to probabilities; `block`: texts tokenized at a time [the GPU default]."""
    options = {"tokenize_block": block} if block else {}
    reading = Reading(batch_size=batch_size or classifier.default_batch_size, precision=classifier.precision)
    predict = lambda some: classifier.space.scores(  # noqa: E731
        predict_logits(classifier.model, classifier.encoder, some, reading, **options)
    )
    predict(texts[:4096])  # warm-up: allocator, kernels, shapes
    synchronize()
    start = time.perf_counter()
    scores = predict(texts)
    synchronize()
    seconds = time.perf_counter() - start
    flops = forward_flops(classifier.model.config, lengths) / seconds
    used = batch_size or classifier.default_batch_size
    return {"batch_size": used, "tokenize_block": block, "samples_per_second": len(texts) / seconds,
            "mfu": flops / peak, "scores": scores}  # fmt: skip


def tokenizer_throughput(tokenizer, texts: list[str], encoder) -> dict:
    """Texts per second: one batch call, the same split among threads, the Rust batch call without offsets,
    and the whole TextEncoder (head+tail cut, special tokens)."""
    from concurrent.futures import ThreadPoolExecutor

    result = {"parallelism_env": os.environ.get("TOKENIZERS_PARALLELISM")}
    timed = lambda f: len(texts) / (lambda t0: (f(), time.perf_counter() - t0)[1])(time.perf_counter())  # noqa: E731
    result["one_call"] = timed(lambda: tokenizer(texts, add_special_tokens=False, verbose=False))
    n = os.cpu_count() or 1
    with ThreadPoolExecutor(n) as pool:
        call = lambda part: tokenizer(part, add_special_tokens=False, verbose=False)  # noqa: E731
        result[f"{n}_threads"] = timed(lambda: list(pool.map(call, [texts[i::n] for i in range(n)])))
    backend = tokenizer.backend_tokenizer
    if hasattr(backend, "encode_batch_fast"):
        result["encode_batch_fast"] = timed(lambda: backend.encode_batch_fast(texts, add_special_tokens=False))
    result["text_encoder"] = timed(lambda: encoder.encode(texts))
    return result


def forward_only(classifier, texts: list[str], peak: float) -> dict:
    """The same batches with tokenization done beforehand: what the device alone sustains."""
    from lora_sentiment.inference.classifier import Reading, forward_logits

    encoded, _ = classifier.encoder.encode(texts)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    reading = Reading(batch_size=classifier.default_batch_size, precision=classifier.precision)
    forward_logits(classifier.model, classifier.encoder.tokenizer, encoded, reading)
    synchronize()
    start = time.perf_counter()
    forward_logits(classifier.model, classifier.encoder.tokenizer, encoded, reading)
    synchronize()
    seconds = time.perf_counter() - start
    return {
        "samples_per_second": len(texts) / seconds,
        "mfu": forward_flops(classifier.model.config, lengths) / seconds / peak,
    }


def with_loader_workers(workers: int) -> None:
    """Training batches prepared by `workers` DataLoader processes instead of the training loop (an experiment:
    the product's default is 0)."""
    import lora_sentiment.training.trainer as training

    original = getattr(training, "_original_arguments", training.training_arguments)
    training._original_arguments = original

    def arguments(*args, **kwargs):
        result = original(*args, **kwargs)
        result.dataloader_num_workers = workers
        result.dataloader_persistent_workers = workers > 0
        return result

    training.training_arguments = arguments if workers else original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minilm", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--train-samples", type=int, default=8192)
    parser.add_argument("--train-batches", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--predict-texts", type=int, default=32768)
    parser.add_argument("--minilm-batches", type=int, nargs="*", default=[16, 64, 128])
    parser.add_argument("--minilm-train-samples", type=int, help="[all of train.parquet]")
    parser.add_argument(
        "--tokenize-blocks",
        type=int,
        nargs="+",
        default=[4096, 1024],
        help="prediction variants: texts tokenized at a time, the next block while one runs",
    )
    parser.add_argument(
        "--train-workers",
        type=int,
        nargs="+",
        default=[0],
        help="DataLoader worker processes to try for the largest training batch",
    )
    args = parser.parse_args()
    quiet()
    data = Path(args.data)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU only to try the script out
    report: dict = {"machine": machine_description(device), "max_length": args.max_length}
    log(f"{report['machine'].get('gpu') or 'CPU'}: measuring the bf16 matmul peak")
    peak = report["bf16_peak_flops"] = peak_matmul_flops(device, "bf16")
    log(f"bf16 peak {peak / 1e12:.0f} TFLOP/s")
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    shaped = make_shaped_model(scratch, args.minilm)
    big = repeated_parquet(data / "train.parquet", args.train_samples, scratch / "train-big.parquet")
    common = dict(eval_data=str(data / "validation.parquet"), max_length=args.max_length, examples=["It was good."])
    report["train_shaped"] = {}
    for batch in args.train_batches:
        values = dict(common, model=shaped, data=str(big), max_train_samples=args.train_samples, max_eval_samples=256,
                      epochs=1, batch_size=batch, output_dir=str(scratch / f"shaped-{batch}"))  # fmt: skip
        entry = report["train_shaped"][batch] = train_entry(values, peak)
        log(f"train shaped batch {batch}: {entry['samples_per_second']:.0f} samples/s, MFU {100 * entry['mfu']:.1f} %")
    run_dir = entry["run_dir"]
    for workers in (w for w in args.train_workers if w):
        values = dict(values, output_dir=str(scratch / f"shaped-workers-{workers}"))
        with_loader_workers(workers)
        key = f"{batch}_loader_workers_{workers}"
        entry = report["train_shaped"][key] = train_entry(values, peak)
        with_loader_workers(0)
        log(f"train shaped {key}: {entry['samples_per_second']:.0f} samples/s, MFU {100 * entry['mfu']:.1f} %")
    texts_all = pd.read_parquet(data / "validation.parquet")["text"].tolist()
    texts = (texts_all * (args.predict_texts // len(texts_all) + 1))[: args.predict_texts]
    classifier = load_classifier(run_dir)
    lengths = [len(ids) for ids in classifier.encoder(texts)["input_ids"]]
    report["predict_shaped"] = {"mean_tokens": float(np.mean(lengths)), "texts": len(texts)}
    report["tokenizer"] = tokenizer_throughput(classifier.encoder.tokenizer, texts, classifier.encoder)
    log(f"tokenizer texts/s: { {k: round(v) for k, v in report['tokenizer'].items() if k != 'parallelism_env'} }")
    results = {}
    variants = [("batch_128_previous_default", 128, len(texts))]
    variants += [(f"default_block{b}", None, b) for b in args.tokenize_blocks]
    for name, batch, block in variants:
        results[name] = time_predict(classifier, texts, lengths, batch, peak, block)
        log(f"predict shaped {name} (batch {results[name]['batch_size']}): "
            f"{results[name]['samples_per_second']:.0f} samples/s, MFU {100 * results[name]['mfu']:.1f} %")  # fmt: skip
    first = results[variants[0][0]]["scores"].argmax(1)
    same = min(float((r.pop("scores").argmax(1) == first).mean()) for r in results.values())
    report["predict_shaped"].update(results, labels_equal_across_variants=same)
    report["predict_shaped"]["forward_only"] = forward_only(classifier, texts, peak)
    mfu = report["predict_shaped"]["forward_only"]["mfu"]
    log(f"forward only: MFU {100 * mfu:.1f} %; labels equal across variants {same:.4f}")
    del classifier
    report["minilm"] = {}
    for batch in args.minilm_batches:
        values = dict(common, model=args.minilm, data=str(data / "train.parquet"), batch_size=batch,
                      max_train_samples=args.minilm_train_samples,
                      output_dir=str(scratch / f"minilm-{batch}"))  # fmt: skip
        entry = report["minilm"][batch] = train_entry(values, peak)
        log(f"MiniLM batch {batch}: accuracy {entry['accuracy']:.4f}, {entry['samples_per_second']:.0f} samples/s")
    Path(args.output).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    log(f"wrote {args.output}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
