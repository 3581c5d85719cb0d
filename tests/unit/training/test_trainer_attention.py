"""The Trainer evaluates and predicts with SDPA where training runs eager attention, and trains eager again after."""

from __future__ import annotations

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, TrainingArguments

from lora_sentiment.training.trainer import _Trainer


def test_evaluate_and_predict_use_the_evaluation_attention_and_training_gets_its_own_back(tiny_bert, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, attn_implementation="eager")
    seen: list[str] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.config._attn_implementation))
    rows = Dataset.from_dict({"input_ids": [[2, 5, 6, 3], [2, 7, 3, 0]], "attention_mask": [[1, 1, 1, 1], [1, 1, 1, 0]],
                              "labels": [0, 1]})  # fmt: skip
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", per_device_eval_batch_size=2, use_cpu=True)
    trainer = _Trainer(model=model, args=args, eval_dataset=rows)
    trainer.eval_attention = "sdpa"

    trainer.evaluate()
    predicted = trainer.predict(rows)

    assert seen == ["sdpa", "sdpa"]  # one batch each: the evaluation's attention, also for predict
    assert model.config._attn_implementation == "eager"  # training's attention restored
    assert predicted.predictions.shape == (2, 2) and torch.isfinite(torch.as_tensor(predicted.predictions)).all()
