"""Many runs, one base model: `ClassifierSet` / `load_classifiers`, several runs ready to predict, runs whose base
model matches sharing one `SharedBase` (shared_model.py). A batch may mix runs ("mixed": one forward pass for all
their rows) or give each run's rows a pass of their own ("grouped"). Each run is a Predictor (`RunClassifier`);
the set is a PredictorSet, and follows a folder of runs with `sync`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..data.encoding import TextEncoder, answerable, mean_by_text, text_list
from ..errors import UserError, first_line
from ..modeling.device import (
    CPU_BATCH,
    TORCH_DTYPES,
    configure_attention_backends,
    default_device,
    gpu_inference_batch,
    resolve_precision,
)
from ..modeling.model import load_tokenizer
from ..problems.abstention import Abstention
from ..problems.outputs import Prediction, predictions
from ..runs.run import ADAPTER_WEIGHTS_FILE, Run, file_version, is_export, parse_named_runs, run_info
from .base import LoadOptions, PredictorBase
from .classifier import Reading
from .shared_model import Member, SharedBase, base_key

__all__ = ["ClassifierSet", "RunClassifier", "load_classifiers", "parse_named_runs"]

Mixing = Literal["mixed", "grouped"]


class ClassifierSet:
    """Several runs ready to predict, runs on one base model sharing its weights:
    `load_classifiers(["runs/a", "runs/b"]).predict(texts, model="a")`."""

    def __init__(self, options: LoadOptions | None = None, *, mixing: Mixing = "mixed", **given: Any):
        """`given`: LoadOptions' fields (precision, device, long_text, stride), as keywords."""
        options = LoadOptions.of(options, given)
        self.device = torch.device(options.device) if options.device else default_device()
        self.precision = resolve_precision(options.precision, self.device)
        self.long_text, self.stride, self.mixing = options.long_text, options.stride, mixing
        self.abstention = Abstention.of(options)
        self.members: dict[str, Member] = {}
        self.bases: dict[tuple, SharedBase] = {}
        self._tokenizers: dict[str, Any] = {}
        self._skipped: dict[str, tuple[Path, tuple[int, int]]] = {}  # runs that failed to load, and their version
        configure_attention_backends(self.device)

    # ------------------------------------------------------------------------------------------ the runs

    @property
    def names(self) -> list[str]:
        return list(self.members)

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, name: str) -> RunClassifier:
        return RunClassifier(self, self.member(name).name)

    def member(self, name: str | None) -> Member:
        if name is None:
            if len(self.members) != 1:
                raise UserError(f"{len(self.members)} models are loaded; name one of: {', '.join(self.members)}")
            return next(iter(self.members.values()))
        if name not in self.members:
            raise UserError(f"no model named {name!r}; models: {', '.join(self.members) or 'none'}")
        return self.members[name]

    def add(self, name: str, path: str | Path) -> None:
        """Load the run at `path` as model `name` (replacing a model of that name)."""
        if is_export(path):
            raise UserError(
                f"{path} is an export (LoRA merged into its own copy of the weights), which shares no base model: "
                "open it on its own (predict, evaluate and serve take it beside runs when named)"
            )
        run = Run.open(path)
        tokenizer = self._tokenizer(run.path)
        key = base_key(run, tokenizer)
        if key not in self.bases:
            self.bases[key] = SharedBase(run, tokenizer, self.device, TORCH_DTYPES[self.precision])
        base = self.bases[key]
        try:
            adapter = base.add(run)
        except Exception as exc:  # peft / safetensors / torch raise many types for a damaged adapter
            if not any(m.base is base for m in self.members.values()):
                del self.bases[key]  # its first run failed to load: nothing to keep
            if isinstance(exc, UserError):
                raise
            raise UserError(f"could not load the LoRA adapter in {run.path}: {first_line(exc)}") from exc
        encoder = TextEncoder.for_config(tokenizer, run.config)
        replaced = self.members.pop(name, None)
        self.members[name] = Member(name, run, encoder, base, adapter, adapter_signature(run.path), run_info(run))
        if replaced is not None:
            self._release(replaced)

    def remove(self, name: str) -> None:
        self._release(self.members.pop(name))

    def _release(self, member: Member) -> None:
        if any(m.base is member.base for m in self.members.values()):
            member.base.remove(member.adapter)
        else:  # its base serves no other run: free its weights
            self.bases = {k: b for k, b in self.bases.items() if b is not member.base}

    def _tokenizer(self, path: Path) -> Any:
        """Runs of one base save the same tokenizer files: load them once."""
        digest = hashlib.sha256()
        for name in sorted(p.name for p in path.glob("*token*") if p.is_file()):
            digest.update(name.encode() + (path / name).read_bytes())
        key = digest.hexdigest()
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer(str(path))
        return self._tokenizers[key]

    def sync(self, runs: dict[str, Path], log: Callable[[str], None] = print) -> None:
        """Serve exactly `runs` (name -> folder): load new or retrained ones, drop the rest. A run that fails
        to load is logged and skipped, once per version of its files."""
        for name in [n for n in self.members if n not in runs]:
            self.remove(name)
            log(f"dropped model {name!r}: its run is gone")
        for name, path in runs.items():
            member = self.members.get(name)
            signature = adapter_signature(path)
            if member is not None and member.signature == signature and member.run.path == Path(path):
                continue
            if self._skipped.get(name) == (Path(path), signature):
                continue
            try:
                self.add(name, path)
            except UserError as exc:
                self._skipped[name] = (Path(path), signature)
                log(f"skipped {path}: {exc}")
                continue
            self._skipped.pop(name, None)
            log(f"{'reloaded' if member else 'loaded'} model {name!r} from {path}")

    # --------------------------------------------------------------------------------------- predicting

    def predict_many(
        self, requests: Sequence[tuple[str | None, Sequence[str]]], batch_size: int | None = None
    ) -> list[np.ndarray]:
        """Scores for each (model, texts) request, in order: rows of runs on one base share forward passes
        ("mixed") or go run by run ("grouped")."""
        members = [self.member(name) for name, _ in requests]
        encoded = [m.encoder.encode(texts, self.long_text, self.stride) for m, (_, texts) in zip(members, requests)]
        logits: list[np.ndarray | None] = [None] * len(requests)
        for base in {id(m.base): m.base for m in members}.values():
            mine = [i for i, m in enumerate(members) if m.base is base]
            batches = [mine] if self.mixing == "mixed" else _by_member(mine, members)
            reading = Reading(self.long_text, self.stride, batch_size or self.default_batch_size, self.precision)
            for chosen in batches:
                parts = [(members[i], encoded[i][0]) for i in chosen]
                for i, out in zip(chosen, base.logits(parts, reading)):
                    logits[i] = out
        scores = []
        for member, (_, texts), (_, owners), out in zip(members, requests, encoded, logits):
            if self.long_text == "chunks":
                out = mean_by_text(out, owners, len(texts))
            scores.append(member.run.space.scores(out))
        return scores

    @property
    def default_batch_size(self) -> int:
        # As Classifier: CPU_BATCH on a CPU; a GPU gets as many rows as its free memory allows.
        if self.device.type != "cuda" or not self.members:
            return CPU_BATCH
        longest = max(m.encoder.max_length for m in self.members.values())
        return gpu_inference_batch(next(iter(self.bases.values())).hf_config, longest, self.device)

    def predict_scores(
        self, texts: Iterable[str], model: str | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        texts = text_list(texts)
        if len(texts) == 0:
            return np.zeros((0, self.member(model).width), dtype=np.float32)
        return self.predict_many([(model, texts)], batch_size)[0]

    def predict(
        self, texts: Iterable[str], model: str | None = None, batch_size: int | None = None
    ) -> list[Prediction]:
        texts = answerable(texts)
        space = self.member(model).run.space
        return predictions(texts, self.predict_scores(texts, model, batch_size), space, self.abstention)


def _by_member(indices: list[int], members: list[Member]) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i in indices:
        groups.setdefault(members[i].name, []).append(i)
    return list(groups.values())


class RunClassifier(PredictorBase):
    """One model of a ClassifierSet: a Predictor, as files, evaluation and the server use it."""

    def __init__(self, owner: ClassifierSet, name: str):
        self.owner, self.name = owner, name

    @property
    def _member(self) -> Member:
        return self.owner.member(self.name)

    @property
    def space(self) -> Any:
        return self._member.run.space

    @property
    def run_config(self) -> Any:
        return self._member.run.config

    @property  # type: ignore[override]
    def run_path(self) -> Path:
        return self._member.run.path

    @property
    def encoder(self) -> TextEncoder:
        return self._member.encoder

    precision = property(lambda self: self.owner.precision)
    long_text = property(lambda self: self.owner.long_text)
    device = property(lambda self: str(self.owner.device))
    default_batch_size = property(lambda self: self.owner.default_batch_size)
    abstention = property(lambda self: self.owner.abstention)  # type: ignore[assignment]

    def predict_scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self.owner.predict_scores(texts, self.name, batch_size)


def adapter_signature(path: str | Path) -> tuple[int, int]:
    return file_version(Path(path) / ADAPTER_WEIGHTS_FILE)


def load_classifiers(
    runs: Sequence[str | Path] | dict[str, str | Path], options: LoadOptions | None = None, **given: Any
) -> ClassifierSet:
    """Several finished runs, ready to predict, each named after its folder (or by the dict's keys); runs on one
    base model share its weights. `given`: LoadOptions' fields, and mixing (mixed or grouped)."""
    named = (
        {n: Path(p) for n, p in runs.items()} if isinstance(runs, dict) else parse_named_runs([str(r) for r in runs])
    )
    classifiers = ClassifierSet(options, **given)
    for name, path in named.items():
        classifiers.add(name, path)
    return classifiers
