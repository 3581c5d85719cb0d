"""`lora-sentiment train | predict | evaluate | serve | report | export | bench`: a thin shell over the Python API.

Heavy libraries are imported inside the commands so `--help` and bad flags answer at once."""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import (
    PRESETS,
    Precision,
    ServeSettings,
    TrainConfig,
    build_config,
    format_validation_error,
    read_yaml,
)
from .errors import UserError

# The file formats of `predict --input/--output` (batch.py owns them; repeated here so --help loads no pandas).
DEFAULT_LONG_TEXT = "truncate"
INPUT_FORMAT_NAMES = ["csv", "tsv", "jsonl", "parquet", "txt"]
OUTPUT_FORMAT_NAMES = ["csv", "tsv", "jsonl", "parquet"]
TUNE_DIR = "tune/lora-sentiment"


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
    for add in (
        _train_parser,
        _tune_parser,
        _predict_parser,
        _evaluate_parser,
        _serve_parser,
        _report_parser,
        _export_parser,
    ):
        add(commands)
    _bench_serve_parser(commands)
    _bench_parser(commands)
    _bench_engines_parser(commands)
    return parser


def _train_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="fine-tune a model with LoRA and save the run",
        description="Fine-tune with LoRA. Flags override --config, which overrides --preset.",
    )
    train.add_argument("--config", help="YAML file with any of the options below (flags win)")
    train.add_argument(
        "--preset", choices=sorted(PRESETS), help="a named recipe; imdb-truncated reproduces the tutorial"
    )
    _add_config_flags(train)


def _tune_parser(commands: Any) -> None:
    tune = commands.add_parser(
        "tune",
        help="search training settings with Optuna; each trial is a real train run",
        description="An Optuna study over the --search space around the train settings given (every train flag "
        "works). Bad trials are pruned after an epoch; the study lives in --output-dir/study.db (or --storage), so "
        "the same command again continues it, and several processes can share it. Writes best_config.yaml, "
        "leaderboard.csv, optimization_history.png and param_importances.png into --output-dir (default here: "
        f"{TUNE_DIR}).",
    )
    tune.add_argument("--config", help="YAML file with any train option, and a search: block of NAME: SPEC")
    tune.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe to start from")
    tune.add_argument(
        "--search",
        nargs="+",
        metavar="NAME=SPEC",
        help="settings to vary: NAME=LOW:HIGH[:log] (a range) or NAME=A,B,C (choices), e.g. "
        '"learning_rate=1e-4:3e-3:log" "lora_r=4,8,16" [default: learning_rate, lora_r, lora_alpha, lora_dropout]',
    )
    tune.add_argument("--trials", type=int, default=20, help="finished trials the study should hold [default: 20]")
    tune.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    tune.add_argument("--storage", help="Optuna storage URL shared by several tune processes [OUTPUT_DIR/study.db]")
    tune.add_argument("--study-name", default="lora-sentiment", help="the study's name in --storage")
    tune.add_argument(
        "--keep", choices=["best", "all"], default="best", help="trial runs kept at the end [default: best]"
    )
    _add_config_flags(tune)


def _predict_parser(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="classify texts, or a whole file, with a saved run",
        description="Classify the TEXTS given, or every row of --input (CSV/TSV/JSONL/Parquet, or .txt with one text "
        "per line) into --output (CSV/TSV/JSONL), in chunks, so files larger than memory work. '-' is stdin/stdout.",
    )
    predict.add_argument("run_dir", help="the --output-dir of a training run (or an export)")
    predict.add_argument(
        "texts", nargs="*", help="texts to classify; with --input, more runs instead (NAME=PATH names one): each adds "
        "its own set of prediction columns, NAME.predicted_label...",
    )  # fmt: skip
    predict.add_argument("--input", help="file to classify: .csv .tsv .jsonl .parquet .txt, or - for stdin")
    predict.add_argument("--output", help="where predictions go: .csv .tsv .jsonl, or - for stdout [-]")
    predict.add_argument("--text-column", default="text", help="column of --input holding the text [default: text]")
    predict.add_argument(
        "--input-format", choices=INPUT_FORMAT_NAMES, help="format of --input [from its extension; stdin: txt]"
    )
    predict.add_argument(
        "--output-format",
        choices=OUTPUT_FORMAT_NAMES,
        help="format of --output [from its extension; stdout: jsonl; --engine ray: parquet] (parquet: --engine ray)",
    )
    predict.add_argument(
        "--chunk-size", type=int, default=2048, help="rows read, predicted and written at a time [default: 2048]"
    )
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    predict.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")
    predict.add_argument(
        "--workers",
        type=int,
        help="with --input: processes (Ray actors with --engine ray) that predict chunks in parallel, each with its "
        "share of the CPU cores or one GPU each [default: 1; --engine ray: one per GPU, else one per node]",
    )
    predict.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="with --input: local (this machine's processes) or ray (Ray Data: --input may be a folder or glob, "
        "--output is a folder of files with input_file / input_row columns) [default: local]",
    )
    predict.add_argument(
        "--ray-address", help="with --engine ray: a running Ray cluster (e.g. auto, ray://head:10001) [a local Ray]"
    )
    _add_inference_flags(predict)


def _evaluate_parser(commands: Any) -> None:
    evaluate = commands.add_parser("evaluate", help="metrics of saved runs on a labelled file")
    evaluate.add_argument("run_dir", help="the --output-dir of a training run (or an export)")
    evaluate.add_argument(
        "more_runs", nargs="*", metavar="RUN", help="more runs scored on the same data, side by side (NAME=PATH names "
        "one; runs on one base model share its weights)",
    )  # fmt: skip
    evaluate.add_argument(
        "--data", required=True, help="labelled CSV/TSV/JSONL/Parquet file, aclImdb folder or hub dataset"
    )
    evaluate.add_argument("--split", help="split to evaluate [test, else validation, else train]")
    evaluate.add_argument("--text-column", default="text", help="column holding the text [default: text]")
    evaluate.add_argument("--label-column", default="label", help="column holding the label [default: label]")
    evaluate.add_argument("--label-columns", nargs="+", help="multi-label: 0/1 columns, one per tag [the run's]")
    evaluate.add_argument("--label-separator", help="multi-label: split string labels on this [the run's]")
    evaluate.add_argument("--max-samples", type=int, help="stratified, seeded subsample of this many rows")
    _add_inference_flags(evaluate)


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve saved runs over HTTP: POST /predict, a page at /, docs at /docs",
        description='Serve runs with FastAPI + uvicorn: POST /predict {"model": NAME, "texts": [...]} (model may be '
        "left out when one is served), GET /models, GET /info?model=NAME, GET /health, OpenAPI docs at /docs and a "
        "page at /. Concurrent requests share forward passes (micro-batching). Runs on one base model share its "
        "weights in memory; one run alone is served merged (fastest).",
    )
    serve.add_argument(
        "runs", nargs="*", metavar="RUN", help="run folders (or one export) to serve, each named after its folder; "
        "NAME=PATH names it"
    )  # fmt: skip
    serve.add_argument(
        "--runs-dir", help="also serve every finished run under this folder, as they appear, retrain or disappear"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network [default: 127.0.0.1]"
    )
    serve.add_argument("--port", type=int, default=8000, help="port [default: 8000]")
    for name, info in ServeSettings.model_fields.items():
        help_text = f"{info.description} [default: {info.get_default()}]".replace("%", "%%")
        serve.add_argument(_flag(name), dest=name, default=None, metavar=name.upper(), help=help_text)
    _add_loading_flags(serve)


def _report_parser(commands: Any) -> None:
    report = commands.add_parser("report", help="redraw a run's plots and print a one-screen summary")
    report.add_argument("run_dir", help="the --output-dir of a training run")
    report.add_argument("--no-plots", dest="plots", action="store_false", help="only print the summary")


def _export_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="merge the LoRA weights into the base model and save a standalone transformers model",
        description="Fold the adapter into the base model and save model + tokenizer to OUT_DIR, loadable with "
        "transformers.pipeline('text-classification', model=OUT_DIR) without peft.",
    )
    export.add_argument("run_dir", help="the --output-dir of a training run")
    export.add_argument("out_dir", help="folder for the merged model")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    export.add_argument(
        "--format",
        choices=["transformers", "onnx", "openvino"],
        default="transformers",
        help="transformers (safetensors, for pipeline()), onnx (ONNX Runtime) or openvino (OpenVINO IR, the "
        "fastest on Intel CPUs); predict/serve/evaluate take an onnx or openvino folder without loading torch "
        "[default: transformers]",
    )
    export.add_argument(
        "--quantize",
        choices=["none", "int8"],
        default="none",
        help="with --format onnx or openvino: int8 (onnx: dynamic, no calibration; openvino: static, calibrated "
        "on texts) [default: none]",
    )
    export.add_argument(
        "--calibration-data",
        help="with --format openvino --quantize int8: a file of texts (the run's --text-column) to calibrate on "
        "[default: the run's training data]",
    )
    export.add_argument(
        "--calibration-samples", type=int, default=256, help="texts to calibrate int8 on [default: 256]"
    )


def _bench_serve_parser(commands: Any) -> None:
    bench_serve = commands.add_parser(
        "bench-serve",
        help="measure the server under a bounded loopback load, without and with micro-batching",
        description="Start `serve RUN_DIR` twice on loopback (--batch-wait-ms 0, then the window given) and send the "
        "same load of real texts to each: a fixed number of requests from concurrent clients. Reports throughput, "
        "p50/p99 latency, server errors and forward passes.",
    )
    bench_serve.add_argument(
        "runs", nargs="+", metavar="RUN", help="a training run; with several, the first alone (merged) against all "
        "in one server (shared base), under each --mix, with mixed and with per-run batches",
    )  # fmt: skip
    bench_serve.add_argument(
        "--data", required=True, help="CSV/TSV/JSONL/Parquet/.txt file whose text column supplies the requests"
    )
    bench_serve.add_argument("--requests", type=int, default=2000, help="requests per mode [default: 2000]")
    bench_serve.add_argument("--concurrency", type=int, default=16, help="concurrent clients [default: 16]")
    bench_serve.add_argument(
        "--batch-wait-ms", type=float, default=5.0, help="micro-batching window to compare [default: 5]"
    )
    bench_serve.add_argument(
        "--mix", choices=["uniform", "skewed", "both"], default="both",
        help="with several runs: requests spread evenly, or 70%% to the first run [default: both]",
    )  # fmt: skip
    bench_serve.add_argument("--output", help="also write the results as JSON here")


def _bench_engines_parser(commands: Any) -> None:
    engines = commands.add_parser(
        "bench-engines",
        help="time one run's prediction through every engine: the tutorial's way, torch, ONNX, OpenVINO",
        description="Export RUN_DIR to every installed runtime (ONNX Runtime fp32/int8, OpenVINO bf16/int8) and "
        "predict the same labelled reviews with each and with the tutorial's way (fp32 PEFT, 4 at a time): the "
        "steady-state loop and the whole `predict --input` command, each in a fresh process; reports reviews/s, "
        "peak RSS, accuracy and the ratio to the tutorial's way.",
    )
    engines.add_argument("run_dir", help="the --output-dir of a 2-class training run")
    engines.add_argument("--data", required=True, help="CSV or Parquet file with text and label columns")
    engines.add_argument("--rows", type=int, default=1000, help="reviews to predict [default: 1000]")
    engines.add_argument("--output", help="also write the results as JSON here")


def _bench_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="time the tutorial's recipe against this project's defaults, side by side",
        description="Train and predict with the tutorial's recipe (fp32, batch 4) and with this project's defaults "
        "on the same model, data and max length, one after the other; report throughput, peak RSS, accuracy, "
        "ratios and MFU against the matmul peak measured in the same run.",
    )
    add = bench.add_argument
    add("--quick", action="store_true", help="a smaller workload that finishes in about 5 minutes")
    add(
        "--model", help="pre-trained encoder: a local directory or a hub name (needed unless --shaped-only --tokenizer)"
    )
    add("--data", required=True, help="folder with train.parquet and validation.parquet (text and label columns)")
    add("--max-length", type=int, default=256, help="tokens per review for both paths [default: 256]")
    add("--train-samples", type=int, help="training reviews [quick: 400, full: 2000]")
    add("--eval-samples", type=int, help="validation reviews, also the prediction workload [quick: 300, full: 1000]")
    add("--epochs", type=float, help="epochs for both paths [default: 1]")
    add(
        "--no-distilbert-shaped",
        dest="shaped",
        action="store_false",
        help="skip the random-weight DistilBERT-shaped throughput run",
    )
    add(
        "--shaped-only",
        action="store_true",
        help="only the DistilBERT-shaped throughput run (no trained weights needed)",
    )
    add("--tokenizer", help="uncased WordPiece tokenizer folder for the DistilBERT-shaped model [the --model's]")
    add(
        "--shaped-train-samples", type=int, help="training reviews for the DistilBERT-shaped run [quick: 64, full: 256]"
    )
    add(
        "--shaped-predict-samples",
        type=int,
        help="reviews predicted by the DistilBERT-shaped run [quick: 128, full: 512]",
    )
    add("--output", help="also write the full report as JSON here")


def _add_precision_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision", choices=typing.get_args(Precision), default="auto", help="compute precision [default: auto]"
    )


def _add_inference_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size",
        type=int,
        help="texts per forward pass [default: 32 on CPU; on a GPU, from its free memory, 64 to 1024]",
    )
    _add_loading_flags(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_loading_flags(parser: argparse.ArgumentParser) -> None:
    _add_precision_flag(parser)
    parser.add_argument(
        "--long-text",
        choices=["truncate", "chunks"],
        default=DEFAULT_LONG_TEXT,
        help="texts longer than the run's max length: truncate (the run's truncation) or chunks (every token, in "
        f"overlapping windows whose logits are averaged) [default: {DEFAULT_LONG_TEXT}]",
    )
    parser.add_argument(
        "--stride", type=int, help="with --long-text chunks: tokens shared by consecutive windows [a quarter of one]"
    )


def run_train(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name) is not None}
    config = build_config(overrides, preset=args.preset, config_file=args.config)
    from .measure import Stages, seconds_line

    stages = Stages()
    with stages.timing("imports"):  # torch, transformers, peft, datasets: a fixed cost of every training run
        from .training import train

    from .distributed import is_main_process

    result = train(config, log=lambda message: print(message, flush=True))
    if is_main_process():  # one run, one voice, as train's own lines
        print(seconds_line({"start-up": _STARTUP_SECONDS, **stages.seconds, **result.seconds}), file=sys.stderr)
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from .tuning import DEFAULT_SEARCH, parse_search, tune

    values = read_yaml(args.config) if args.config else {}
    search_block = values.pop("search", None)
    if search_block is not None and not isinstance(search_block, dict):
        raise UserError(f"the search: block of {args.config} must map settings to specs, e.g. lora_r: 4,8,16")
    preset = args.preset or values.pop("preset", None)
    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name) is not None}
    overrides.setdefault("output_dir", values.pop("output_dir", TUNE_DIR))  # not train's default run folder
    config = build_config({**values, **overrides}, preset=preset)
    if args.trials < 1:
        raise UserError("--trials must be at least 1")
    search = parse_search(args.search or search_block or DEFAULT_SEARCH)
    tune(
        config, search, trials=args.trials, timeout=args.timeout, storage=args.storage, study_name=args.study_name,
        keep=args.keep, log=lambda message: print(message, flush=True),
    )  # fmt: skip
    return 0


def run_predict(args: argparse.Namespace) -> int:
    if not args.texts and not args.input:
        raise UserError("give TEXTS to classify or --input FILE")
    if args.output and not args.input:
        raise UserError("--output needs --input; TEXTS are printed")
    if args.input:
        return _predict_file(args)
    from .exported import open_classifier
    from .outputs import format_table

    classifier = open_classifier(args.run_dir, **_loading(args))
    predictions = classifier.predict(args.texts, batch_size=args.batch_size)
    if args.json:
        for p in predictions:
            print(json.dumps({"text": p.text, **p.model_dump(exclude={"text"}, exclude_none=True)}))
    else:
        print(format_table(predictions))
    return 0


def _loading(args: argparse.Namespace) -> dict[str, Any]:
    """How a run is loaded for prediction: precision and the reading of long texts."""
    return {"precision": args.precision, "long_text": args.long_text, "stride": args.stride}


def _predict_file(args: argparse.Namespace) -> int:
    from .batch import predict_file
    from .exported import check_predictor
    from .measure import seconds_line

    if args.engine == "ray":
        return _predict_on_ray(args)
    if args.ray_address:
        raise UserError("--ray-address needs --engine ray")
    if args.output_format == "parquet":
        raise UserError("Parquet output is written by --engine ray; here use --output-format csv, tsv or jsonl")
    runs = _runs_of(args)
    for path in runs.values():
        check_predictor(path)  # a damaged run or export fails here, once, not in every worker
    summary = predict_file(
        next(iter(runs.values())) if len(runs) == 1 else runs, args.input, args.output or "-",
        text_column=args.text_column, input_format=args.input_format,
        output_format=args.output_format, chunk_size=args.chunk_size, batch_size=args.batch_size,
        overwrite=args.overwrite, progress=args.progress, workers=args.workers or 1, **_loading(args),
    )  # fmt: skip
    skipped = f"; {summary.skipped_empty} rows with no text left without a prediction" if summary.skipped_empty else ""
    print(f"Predicted {summary.predicted} of {summary.rows} rows{skipped}.", file=sys.stderr)
    print(seconds_line({"start-up": _STARTUP_SECONDS, **summary.stages.seconds}), file=sys.stderr)
    return 0


def _runs_of(args: argparse.Namespace) -> dict[str, Any]:
    """With --input, every positional is a run: one, or several that share their base models' weights."""
    from .run import parse_named_runs

    if len(args.texts) == 0:
        return {Path(args.run_dir).name: args.run_dir}
    runs = parse_named_runs([args.run_dir, *args.texts])
    missing = [str(p) for p in runs.values() if not Path(p).exists()]
    if missing:
        raise UserError(
            f"{missing[0]!r} is not a run folder: with --input, what follows RUN names more runs; "
            "give TEXTS or --input FILE, not both"
        )
    return runs


def _predict_on_ray(args: argparse.Namespace) -> int:
    from .exported import check_predictor
    from .raybatch import predict_on_ray

    if not args.output:
        raise UserError("--engine ray writes a folder of files: give --output FOLDER")
    if args.texts:
        raise UserError("--engine ray takes one run; predict several runs over one file with --engine local")
    check_predictor(args.run_dir)
    summary = predict_on_ray(
        str(Path(args.run_dir).absolute()), args.input, args.output, text_column=args.text_column,
        input_format=args.input_format, output_format=args.output_format, chunk_size=args.chunk_size,
        batch_size=args.batch_size, workers=args.workers, ray_address=args.ray_address, overwrite=args.overwrite,
        progress=args.progress, options=_loading(args),
    )  # fmt: skip
    print(
        f"Predicted {summary.rows} rows of {summary.files_in} files with {summary.workers} Ray workers into "
        f"{summary.output} ({summary.files_out} files; input order: sort by input_file, input_row).",
        file=sys.stderr,
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .exported import open_classifier
    from .plots import per_label_lines

    options = dict(
        split=args.split, text_column=args.text_column, label_column=args.label_column,
        label_columns=args.label_columns, label_separator=args.label_separator, max_samples=args.max_samples,
        batch_size=args.batch_size,
    )  # fmt: skip
    if args.more_runs:
        return _evaluate_several(args, options)
    classifier = open_classifier(args.run_dir, **_loading(args))
    metrics = classifier.evaluate(args.data, **options)
    if args.json:
        print(json.dumps(metrics))
        return 0
    for key, value in metrics.items():
        if key != "per_label":
            print(f"{key:>16}: {value:.4f}" if isinstance(value, float) else f"{key:>16}: {value}")
    print(per_label_lines(metrics, classifier.space))
    return 0


def _evaluate_several(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Several runs on one labelled file: one row of metrics per run (JSON: one object per run, by name)."""
    from .multi import load_classifiers
    from .run import parse_named_runs

    runs = parse_named_runs([args.run_dir, *args.more_runs])
    classifiers = load_classifiers(runs, **_loading(args))  # an export, a missing or damaged run: one line
    results = {name: classifiers[name].evaluate(args.data, **options) for name in runs}
    if args.json:
        print(json.dumps(results))
        return 0
    shown = [k for k, v in next(iter(results.values())).items() if isinstance(v, float)]
    width = max(8, *(len(name) for name in results))
    print(f"{'run':<{width}} " + " ".join(f"{k:>12}" for k in shown))
    for name, metrics in results.items():
        print(f"{name:<{width}} " + " ".join(f"{metrics.get(k, float('nan')):>12.4f}" for k in shown))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .serve import api_key_from_env, serve

    values = {name: getattr(args, name) for name in ServeSettings.model_fields if getattr(args, name) is not None}
    values["api_key"] = api_key_from_env(values.get("api_key"))
    try:
        settings = ServeSettings(**values)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc)) from None
    serve(args.runs, runs_dir=args.runs_dir, host=args.host, port=args.port, settings=settings, **_loading(args))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from .plots import summary
    from .run import Run

    run = Run.open(args.run_dir)
    print(summary(run.config, run.space, run.metrics))
    if args.plots:
        paths = run.draw_plots()
        print("Plots: " + ", ".join(str(p) for p in paths))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .export import export_merged, export_onnx, export_openvino
    from .exported import RUNTIME_MODULES, missing_modules

    log = lambda message: print(message, flush=True)  # noqa: E731
    if args.calibration_data and not (args.format == "openvino" and args.quantize == "int8"):
        raise UserError("--calibration-data is for --format openvino --quantize int8")
    if args.calibration_samples < 1:
        raise UserError("--calibration-samples must be at least 1")
    missing = missing_modules(args.format) if args.format in RUNTIME_MODULES else []
    if missing:
        raise UserError(
            f"--format {args.format} needs {', '.join(missing)}: pip install 'lora-sentiment[{args.format}]'"
        )
    if args.format == "onnx":
        export_onnx(args.run_dir, args.out_dir, quantize=args.quantize, overwrite=args.overwrite, log=log)
    elif args.format == "openvino":
        calibration = {"calibration_data": args.calibration_data, "calibration_samples": args.calibration_samples}
        export_openvino(
            args.run_dir, args.out_dir, quantize=args.quantize, overwrite=args.overwrite, log=log, **calibration
        )
    elif args.quantize != "none":
        raise UserError("--quantize needs --format onnx or openvino")
    else:
        export_merged(args.run_dir, args.out_dir, overwrite=args.overwrite, log=log)
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
        Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


def run_bench_engines(args: argparse.Namespace) -> int:
    from .enginebench import format_engine_report, run_engine_bench, save_report

    if args.rows < 1:
        raise UserError("--rows must be at least 1")
    report = run_engine_bench(args.run_dir, args.data, rows=args.rows, log=lambda m: print(m, flush=True))
    print(format_engine_report(report))
    if args.output:
        save_report(report, args.output)
    return 0


def run_bench_serve(args: argparse.Namespace) -> int:
    from .batch import INPUT_FORMATS, read_chunks, resolve_format
    from .loadtest import MIXES, compare_batching, compare_models, format_results
    from .run import Run

    for run in args.runs:
        Run.open(run)  # a clear error before any server starts
    fmt = resolve_format(args.data, None, INPUT_FORMATS, "--data", "txt")
    texts = [
        t
        for chunk in read_chunks(args.data, fmt, 4096)
        for t in chunk["text"].tolist()
        if isinstance(t, str) and t.strip()
    ]
    if not texts:
        raise UserError(f"no texts in {args.data} (it needs a text column)")
    load = dict(requests=args.requests, concurrency=args.concurrency, batch_wait_ms=args.batch_wait_ms)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if len(args.runs) == 1:
        results = compare_batching(args.runs[0], texts, **load, log=log)
    else:
        mixes = MIXES if args.mix == "both" else (args.mix,)
        results = compare_models(args.runs, texts, **load, mixes=mixes, log=log)
    print(format_results(results))
    if args.output:
        Path(args.output).write_text(json.dumps([r.as_dict() for r in results], indent=2), encoding="utf-8")
    return 0


COMMANDS = {
    "train": run_train,
    "tune": run_tune,
    "predict": run_predict,
    "evaluate": run_evaluate,
    "serve": run_serve,
    "report": run_report,
    "export": run_export,
    "bench-serve": run_bench_serve,
    "bench": run_benchmark,
    "bench-engines": run_bench_engines,
}


def _quiet_libraries() -> None:
    """Keep the terminal readable: progress bars and our own lines, not every library's load report."""
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)


_STARTUP_SECONDS: float | None = None


def main(argv: Sequence[str] | None = None) -> int:
    global _STARTUP_SECONDS
    from .measure import seconds_since_process_start

    _STARTUP_SECONDS = seconds_since_process_start()
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
