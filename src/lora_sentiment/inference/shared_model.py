"""The shared model under a ClassifierSet: one base model's weights, each run's LoRA layers a named peft adapter
on it, and each trained head module (pooler, classifier...) a `HeadSwitch` that sends every row to its own run's
copy. A batch may mix runs: peft's `adapter_names=` forward takes each row through its run's LoRA weights and the
switches do the same for the heads. Nothing is merged: merging would change the weights the other runs share."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, PeftModel, load_peft_weights, set_peft_model_state_dict
from transformers import AutoModelForSequenceClassification

from ..data.encoding import TextEncoder
from ..errors import UserError
from ..modeling.model import load_classifier_model
from ..modeling.quiet import quiet_loading
from ..runs.run import ADAPTER_CONFIG_FILE, Run
from .classifier import Reading, forward_logits

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
    """In place of one module the runs train in full (a head, or with --pooling mean the last query layer): each
    run's own copy, applied to that run's rows; `original` (the base model's module, with the LoRA of runs
    that adapt it) for the runs that trained none. Outputs of different widths (2 labels here, 4 there) are
    zero-padded to the widest; each run later reads its own columns."""

    def __init__(self, routing: Routing, original: torch.nn.Module):
        super().__init__()
        self.heads = torch.nn.ModuleDict()
        self.original = original
        self.routing = routing

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        groups = self.routing.groups
        if len(groups) == 1:
            key = groups[0][0]
            return (self.heads[key] if key in self.heads else self.original)(x, *args, **kwargs)
        shared = None
        outputs = []
        for key, rows in groups:
            if key in self.heads:
                outputs.append((rows, self.heads[key](x[rows], *args, **kwargs)))
                continue
            if shared is None:  # the whole batch: peft's LoRA layers in `original` pick each row's adapter
                shared = self.original(x, *args, **kwargs)
            outputs.append((rows, shared[rows]))
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
        run.check_base()
        base = load_classifier_model(
            config.model, run.space, tokenizer=tokenizer, trust_remote_code=config.trust_remote_code
        )
        self.hf_config = base.config
        self.switches: dict[str, HeadSwitch] = {}
        self.model: PeftModel | None = None
        self.adapters: list[str] = []
        self._base = base
        self._count = 0

    def _switch(self, path: str) -> HeadSwitch:
        """The switch at `path`, put in place of the base model's module the first time a run trained it; runs
        loaded before (which did not) keep using that module."""
        if path not in self.switches:
            switch = HeadSwitch(self.routing, self._base.get_submodule(path))
            parent, _, child = path.rpartition(".")
            setattr(self._base.get_submodule(parent) if parent else self._base, child, switch)
            self.switches[path] = switch
        return self.switches[path]

    def add(self, run: Run) -> str:
        """Load `run`'s LoRA weights as a new adapter and its heads into the switches; its adapter name."""
        adapter = f"run{self._count}"
        self._count += 1
        try:
            with quiet_loading():
                self._load(run, adapter)
        except BaseException:
            self.remove(adapter)
            raise
        return adapter

    def _load(self, run: Run, adapter: str) -> None:
        weights = load_peft_weights(str(run.path), device="cpu")
        heads = _head_paths(self._base, _saved_heads(run))
        for path in heads:
            self._switch(path)
        # A LoRA layer where a switch now stands goes on the switch's `original` (an earlier run of the set
        # trained that module in full; this one adapts it).
        lora = {self._past_switch(k): v for k, v in weights.items() if ".lora_" in k}
        config = LoraConfig.from_pretrained(str(run.path))
        # The adapter's own LoRA layers, by full path: "all-linear" must not reach into the head copies.
        config.target_modules = sorted({k[len(_PREFIX) :].rsplit(".lora_", 1)[0] for k in lora})
        config.task_type, config.modules_to_save, config.inference_mode = None, None, True
        config.exclude_modules = None
        if self.model is None:
            self.model = PeftModel(self._base, config, adapter_name=adapter)
        else:
            self.model.add_adapter(adapter, config)
        loaded = set_peft_model_state_dict(self.model, lora, adapter_name=adapter)
        if loaded.unexpected_keys:
            raise UserError(
                f"{run.path} holds LoRA weights for layers its base model lacks: {loaded.unexpected_keys[0]}"
            )
        self.adapters.append(adapter)
        for path in heads:
            head = self._head(run, path, weights)
            if head is not None:
                self.switches[path].heads[adapter] = head
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

    def _past_switch(self, key: str) -> str:
        """A saved LoRA weight's key, through the switch at its module's path if one stands there."""
        module = key[len(_PREFIX) :].rsplit(".lora_", 1)[0]
        return key.replace(f"{module}.lora_", f"{module}.original.lora_", 1) if module in self.switches else key

    def _head(self, run: Run, path: str, weights: dict[str, torch.Tensor]) -> torch.nn.Module | None:
        """The run's trained copy of the module at `path`, shaped for its labels; None where the run trained
        none (its rows go through the switch's `original`)."""
        prefix = f"{_PREFIX}{path}."
        state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix) and ".lora_" not in k}
        if not state:
            return None
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

    def logits(self, parts: Sequence[tuple[Member, dict[str, list]]], reading: Reading) -> list[np.ndarray]:
        """Logits of each part's rows (one part: one run's encoded inputs), in one length-sorted pass over all
        the parts' rows: peft's mixed-adapter forward when the rows of one batch belong to several runs."""
        encoded = {key: [row for _, part in parts for row in part[key]] for key in parts[0][1]}
        adapters = np.array([member.adapter for member, part in parts for _ in part["input_ids"]])

        width = max(member.width for member, _ in parts)

        def call(batch: dict[str, torch.Tensor], index: np.ndarray) -> torch.Tensor:
            keys = adapters[index]
            self.routing.set(keys, self.device)
            if len(self.routing.groups) == 1:
                self.model.set_adapter(str(keys[0]))
                # One run's rows alone: its own head's width, padded to the widest part's (sliced off below).
                logits = self.model(**batch).logits
                return torch.nn.functional.pad(logits, (0, width - logits.shape[-1]))
            return self.model(**batch, adapter_names=keys.tolist()).logits

        with self.lock:
            out = forward_logits(self.model, self.tokenizer, encoded, reading, width=width, call=call)
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
    """Full paths of the outermost modules named like the run's trained heads (as peft matches them: a name is
    the path's end, "pooler" or "bert.encoder.layer.5.attention.self.query")."""
    paths: list[str] = []
    for path, _ in model.named_modules():
        named = any(path == name or path.endswith("." + name) for name in names)
        if path and named and not any(path.startswith(p + ".") for p in paths):
            paths.append(path)
    return paths
