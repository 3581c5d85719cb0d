"""Many runs, one base model: the LoRA adapters and heads of several runs on one copy of their base weights.

Runs whose base model matches share a `SharedBase`: peft holds each run's LoRA layers as a named adapter of one
PeftModel, and each head module (pooler, classifier...) becomes a `HeadSwitch` that sends every row to its own
run's copy. A batch may mix runs ("mixed"): peft's `adapter_names=` forward takes each row through its run's
LoRA weights and the switches do the same for the heads; or each run's rows go as a batch of their own
("grouped"). Nothing is merged: merging would change the weights the other runs share."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from peft import LoraConfig, PeftModel, load_peft_weights, set_peft_model_state_dict
from transformers import AutoModelForSequenceClassification

from .data import TextEncoder, mean_by_text
from .device import (
    TORCH_DTYPES,
    configure_attention_backends,
    default_device,
    gpu_inference_batch,
    resolve_precision,
)
from .errors import UserError, first_line
from .exported import is_export
from .model import load_classifier_model, load_tokenizer
from .outputs import Prediction, predictions
from .prediction import LongText, forward_logits
from .run import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, Run, parse_named_runs, run_info

__all__ = ["ClassifierSet", "RunClassifier", "load_classifiers", "parse_named_runs"]

Mixing = Literal["mixed", "grouped"]
_PREFIX = "base_model.model."  # how peft names the base model's modules in a saved adapter


class Routing:
    """Which run each row of the batch in flight belongs to; shared by every HeadSwitch of one base."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, torch.Tensor]] = []  # (head key, row index) per run in the batch

    def set(self, keys: Sequence[str], device: torch.device) -> None:
        order: dict[str, list[int]] = {}
        for row, key in enumerate(keys):
            order.setdefault(key, []).append(row)
        self.groups = [(key, torch.tensor(rows, device=device)) for key, rows in order.items()]


class HeadSwitch(torch.nn.Module):
    """In place of one head module: each run's own copy, applied to that run's rows. Outputs of different
    widths (2 labels here, 4 there) are zero-padded to the widest; each run later reads its own columns."""

    def __init__(self, routing: Routing):
        super().__init__()
        self.heads = torch.nn.ModuleDict()
        self.routing = routing

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        groups = self.routing.groups
        if len(groups) == 1:
            return self.heads[groups[0][0]](x, *args, **kwargs)
        outputs = [(rows, self.heads[key](x[rows], *args, **kwargs)) for key, rows in groups]
        first = outputs[0][1]
        width = max(out.shape[-1] for _, out in outputs)
        merged = first.new_zeros((x.shape[0], *first.shape[1:-1], width))
        for rows, out in outputs:
            merged[rows, ..., : out.shape[-1]] = out
        return merged


@dataclass
class Member:
    """One run of a set: where it is, what it reads texts with, and its ids inside its SharedBase."""

    name: str
    run: Run
    encoder: TextEncoder
    base: SharedBase
    adapter: str  # peft adapter name and head key: a safe identifier (run names may hold dots)
    signature: tuple[int, int]  # the adapter weights' (mtime, size): a run retrained in place is reloaded
    info: dict[str, Any]

    @property
    def width(self) -> int:
        return self.run.space.num_outputs


def base_key(run: Run, tokenizer: Any) -> tuple:
    """Runs share base weights only when these match (an added pad token resizes the embeddings)."""
    return (run.config.model, run.config.trust_remote_code, len(tokenizer), tokenizer.pad_token_id)


class SharedBase:
    """One base model in memory, with the LoRA adapters and heads of every run on it."""

    def __init__(self, run: Run, tokenizer: Any, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.tokenizer = tokenizer
        self.lock = threading.Lock()  # one forward at a time: the routing and active adapter are shared state
        self.routing = Routing()
        config = run.config
        base = load_classifier_model(
            config.model, run.space, tokenizer=tokenizer, trust_remote_code=config.trust_remote_code
        )
        self.hf_config = base.config
        self.switches: dict[str, HeadSwitch] = {}
        self.originals: dict[str, torch.nn.Module] = {}
        self.model: PeftModel | None = None
        self.adapters: list[str] = []
        self._base = base
        self._count = 0

    def _switch(self, path: str) -> HeadSwitch:
        """The switch at `path`, put in place of the base model's module the first time a run trained it; runs
        loaded before (which did not) keep using that module."""
        if path not in self.switches:
            self.originals[path] = self._base.get_submodule(path)
            switch = HeadSwitch(self.routing)
            for adapter in self.adapters:
                switch.heads[adapter] = self.originals[path]
            parent, _, child = path.rpartition(".")
            setattr(self._base.get_submodule(parent) if parent else self._base, child, switch)
            self.switches[path] = switch
        return self.switches[path]

    def add(self, run: Run) -> str:
        """Load `run`'s LoRA weights as a new adapter and its heads into the switches; its adapter name."""
        adapter = f"run{self._count}"
        self._count += 1
        try:
            self._load(run, adapter)
        except BaseException:
            self.remove(adapter)
            raise
        return adapter

    def _load(self, run: Run, adapter: str) -> None:
        weights = load_peft_weights(str(run.path), device="cpu")
        lora = {k: v for k, v in weights.items() if ".lora_" in k}
        config = LoraConfig.from_pretrained(str(run.path))
        # The adapter's own LoRA layers, by full path: "all-linear" must not reach into the head copies.
        config.target_modules = sorted({k[len(_PREFIX) :].rsplit(".lora_", 1)[0] for k in lora})
        config.task_type, config.modules_to_save, config.inference_mode = None, None, True
        if self.model is None:
            self.model = PeftModel(self._base, config, adapter_name=adapter)
        else:
            self.model.add_adapter(adapter, config)
        loaded = set_peft_model_state_dict(self.model, lora, adapter_name=adapter)
        if loaded.unexpected_keys:
            raise UserError(
                f"{run.path} holds LoRA weights for layers its base model lacks: {loaded.unexpected_keys[0]}"
            )
        heads = _head_paths(self._base, _saved_heads(run))
        for path in heads:
            self._switch(path)
        self.adapters.append(adapter)
        for path, switch in self.switches.items():
            switch.heads[adapter] = self._head(run, path, weights)
        owned = tuple(f"{_PREFIX}{path}." for path in heads)
        self._check_shared(run, {k: v for k, v in weights.items() if ".lora_" not in k and not k.startswith(owned)})
        self.model.to(device=self.device, dtype=self.dtype).eval()

    def _check_shared(self, run: Run, saved: dict[str, torch.Tensor]) -> None:
        """Other base weights a run saved (peft saves the embeddings of a run that added a pad token) must be
        the shared base's own: a run that changed them cannot share it."""
        for key, value in saved.items():
            try:
                shared = self._base.get_parameter(key[len(_PREFIX) :])
            except AttributeError:
                shared = None
            if shared is None or shared.shape != value.shape or not torch.equal(shared, value.to(shared)):
                raise UserError(
                    f"{run.path} has its own {key[len(_PREFIX) :]}, so it cannot share its base model's weights; "
                    "serve or load it on its own"
                )

    def _head(self, run: Run, path: str, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
        """The run's trained copy of the head module at `path`, shaped for its labels; the base model's own
        module (shared) where the run trained none."""
        prefix = f"{_PREFIX}{path}."
        state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if not state:
            return self.originals[path]
        config = copy.deepcopy(self.hf_config)
        config.num_labels = run.space.num_outputs
        with torch.device("meta"):  # only the shapes: the head gets real memory below, the encoder never does
            shell = AutoModelForSequenceClassification.from_config(
                config, trust_remote_code=run.config.trust_remote_code
            )
        head = shell.get_submodule(path).to_empty(device="cpu")
        head.load_state_dict(state, strict=True)
        return head.to(device=self.device, dtype=self.dtype)

    def remove(self, adapter: str) -> None:
        if adapter in self.adapters:
            self.adapters.remove(adapter)
        for switch in self.switches.values():
            if adapter in switch.heads:
                del switch.heads[adapter]
        if self.model is not None and adapter in self.model.peft_config and len(self.model.peft_config) > 1:
            if adapter in self.model.active_adapters:  # peft warns when the active adapter goes
                self.model.set_adapter(next(a for a in self.model.peft_config if a != adapter))
            self.model.delete_adapter(adapter)

    def logits(
        self, parts: Sequence[tuple[Member, dict[str, list]]], batch_size: int, precision: str
    ) -> list[np.ndarray]:
        """Logits of each part's rows (one part: one run's encoded inputs), in one length-sorted pass over all
        the parts' rows: peft's mixed-adapter forward when the rows of one batch belong to several runs."""
        encoded = {key: [row for _, part in parts for row in part[key]] for key in parts[0][1]}
        adapters = np.array([member.adapter for member, part in parts for _ in part["input_ids"]])

        def call(batch: dict[str, torch.Tensor], index: np.ndarray) -> torch.Tensor:
            keys = adapters[index]
            self.routing.set(keys, self.device)
            if len(self.routing.groups) == 1:
                self.model.set_adapter(str(keys[0]))
                return self.model(**batch).logits
            return self.model(**batch, adapter_names=keys.tolist()).logits

        width = max(member.width for member, _ in parts)
        with self.lock:
            out = forward_logits(self.model, self.tokenizer, encoded, batch_size, precision, width=width, call=call)
        results, start = [], 0
        for member, part in parts:
            count = len(part["input_ids"])
            results.append(out[start : start + count, : member.width])
            start += count
        return results


def _saved_heads(run: Run) -> list[str]:
    config = json.loads((run.path / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    return list(dict.fromkeys(config.get("modules_to_save") or []))


def _head_paths(model: torch.nn.Module, names: Sequence[str]) -> list[str]:
    """Full paths of the outermost modules named like the run's trained heads (as peft matches them)."""
    paths: list[str] = []
    for path, _ in model.named_modules():
        if path and path.rsplit(".", 1)[-1] in names and not any(path.startswith(p + ".") for p in paths):
            paths.append(path)
    return paths


class ClassifierSet:
    """Several runs ready to predict, runs on one base model sharing its weights:
    `load_classifiers(["runs/a", "runs/b"]).predict(texts, model="a")`."""

    def __init__(
        self,
        *,
        precision: str = "auto",
        device: str | None = None,
        long_text: LongText = "truncate",
        stride: int | None = None,
        mixing: Mixing = "mixed",
    ):
        self.device = torch.device(device) if device else default_device()
        self.precision = resolve_precision(precision, self.device)
        self.long_text, self.stride, self.mixing = long_text, stride, mixing
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
                "serve or predict with it on its own"
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
            for chosen in batches:
                parts = [(members[i], encoded[i][0]) for i in chosen]
                for i, out in zip(chosen, base.logits(parts, batch_size or self.default_batch_size, self.precision)):
                    logits[i] = out
        scores = []
        for member, (_, texts), (_, owners), out in zip(members, requests, encoded, logits):
            if self.long_text == "chunks":
                out = mean_by_text(out, owners, len(texts))
            scores.append(member.run.space.scores(out))
        return scores

    @property
    def default_batch_size(self) -> int:
        # As Classifier: 32 fills a CPU's matmul units; a GPU gets as many rows as its free memory allows.
        if self.device.type != "cuda" or not self.members:
            return 32
        longest = max(m.encoder.max_length for m in self.members.values())
        return gpu_inference_batch(next(iter(self.bases.values())).hf_config, longest, self.device)

    def predict_scores(
        self, texts: Sequence[str], model: str | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.member(model).width), dtype=np.float32)
        return self.predict_many([(model, texts)], batch_size)[0]

    def predict(
        self, texts: Sequence[str], model: str | None = None, batch_size: int | None = None
    ) -> list[Prediction]:
        return predictions(texts, self.predict_scores(texts, model, batch_size), self.member(model).run.space)


def _by_member(indices: list[int], members: list[Member]) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i in indices:
        groups.setdefault(members[i].name, []).append(i)
    return list(groups.values())


class RunClassifier:
    """One model of a ClassifierSet, with the Classifier interface that files, evaluation and the server use."""

    def __init__(self, owner: ClassifierSet, name: str):
        self.owner, self.name = owner, name

    @property
    def _member(self) -> Member:
        return self.owner.member(self.name)

    @property
    def space(self) -> Any:
        return self._member.run.space

    @property
    def label_names(self) -> list[str]:
        return self.space.names

    @property
    def run_config(self) -> Any:
        return self._member.run.config

    @property
    def encoder(self) -> TextEncoder:
        return self._member.encoder

    precision = property(lambda self: self.owner.precision)
    long_text = property(lambda self: self.owner.long_text)
    device = property(lambda self: str(self.owner.device))
    default_batch_size = property(lambda self: self.owner.default_batch_size)

    def predict_scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self.owner.predict_scores(texts, self.name, batch_size)

    predict_proba = predict_scores

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        return self.owner.predict(texts, self.name, batch_size)

    def evaluate(self, data: str, **options: Any) -> dict[str, Any]:
        from .evaluation import evaluate_on

        return evaluate_on(self, data, **options)


def adapter_signature(path: str | Path) -> tuple[int, int]:
    try:
        stat = (Path(path) / ADAPTER_WEIGHTS_FILE).stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def load_classifiers(runs: Sequence[str | Path] | dict[str, str | Path], **options: Any) -> ClassifierSet:
    """Several finished runs, ready to predict, each named after its folder (or by the dict's keys); runs on one
    base model share its weights. `options`: precision, device, long_text, stride, mixing."""
    named = (
        {n: Path(p) for n, p in runs.items()} if isinstance(runs, dict) else parse_named_runs([str(r) for r in runs])
    )
    classifiers = ClassifierSet(**options)
    for name, path in named.items():
        classifiers.add(name, path)
    return classifiers
