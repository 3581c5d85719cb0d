"""A training batch of mixed lengths runs as length-sorted parts (trainer.length_parts): the same loss and
gradients as the whole padded batch, less padding; batches already even in length stay whole."""

import pytest
import torch

from lora_sentiment.training.trainer import MIN_PART_ROWS, length_parts


def _batch(lengths: list[int], width: int | None = None, left: bool = False) -> dict[str, torch.Tensor]:
    width = width or max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        span = slice(width - n, width) if left else slice(0, n)
        ids[row, span] = torch.arange(1, n + 1) + 100 * row
        mask[row, span] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.arange(len(lengths))}


@pytest.mark.parametrize("left", [False, True])
def test_parts_are_sorted_by_length_cut_to_their_longest_and_cover_every_row_once(left):
    lengths = [50, 3, 40, 5, 45, 4, 6, 48, 2, 47, 7, 44]
    batch = _batch(lengths, left=left)
    parts = length_parts(batch, left_padded=left)
    assert parts is not None and len(parts) == len(lengths) // MIN_PART_ROWS
    assert sum(share for _, share in parts) == pytest.approx(1.0)
    rows = torch.cat([part["labels"] for part, _ in parts]).tolist()
    assert sorted(rows) == list(range(len(lengths)))
    assert [lengths[r] for r in rows] == sorted(lengths)  # shortest first
    for part, share in parts:
        width = int(part["attention_mask"].sum(1).max())
        assert part["input_ids"].shape == (len(part["labels"]), width) and share == len(part["labels"]) / 12
        for ids, mask, row in zip(part["input_ids"], part["attention_mask"], part["labels"]):
            n = lengths[int(row)]
            kept = ids[mask.bool()]  # every real token survives the cut, in order
            assert torch.equal(kept, torch.arange(1, n + 1) + 100 * int(row))


def test_even_or_small_batches_stay_whole():
    assert length_parts(_batch([30, 31, 29, 32, 30, 28, 31, 30])) is None  # little padding to save
    assert length_parts(_batch([50, 2, 3, 4, 5, 6, 7])) is None  # fewer than two parts' rows
    assert length_parts({"input_ids": torch.ones(8, 4, dtype=torch.long)}) is None  # no mask: nothing to go by


def test_the_split_batch_gives_the_whole_batchs_loss_and_gradients(tmp_path, tiny_bert):
    """Through the Trainer's own compute_loss: the parts' losses, weighted by their rows, are the batch's mean."""
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from lora_sentiment.training.trainer import _Trainer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2, hidden_dropout_prob=0.0,
                                                               attention_probs_dropout_prob=0.0)  # fmt: skip
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = _Trainer(model=model, args=args)
    trainer.model_accepts_loss_kwargs = False
    lengths = [60, 3, 40, 5, 45, 4, 6, 58, 2, 47, 7, 44, 9]
    batch = _batch(lengths)
    batch["input_ids"] = batch["input_ids"] % model.config.vocab_size
    batch["labels"] = torch.tensor([i % 2 for i in range(len(lengths))])
    assert length_parts(batch) is not None
    model.train()
    results = []
    for split in (False, True):
        trainer.split_by_length = split
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (whole, whole_grads), (parts, part_grads) = results
    assert torch.allclose(whole, parts, atol=1e-6)
    assert len(whole_grads) == len(part_grads) > 0
    for a, b in zip(whole_grads, part_grads):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_a_weighted_loss_keeps_the_batch_whole(tmp_path, tiny_bert):
    """--class-weights' cross-entropy is normalised by each part's weights: the parts would not add up."""
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from lora_sentiment.training.trainer import _Trainer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    seen = []

    def loss(outputs, labels, num_items_in_batch=None):
        seen.append(len(labels))
        return torch.nn.functional.cross_entropy(outputs["logits"], labels, weight=torch.tensor([1.0, 3.0]))

    trainer = _Trainer(model=model, args=args, compute_loss_func=loss)
    trainer.model_accepts_loss_kwargs, trainer.split_by_length = False, True
    batch = _batch([60, 3, 40, 5, 45, 4, 6, 58, 2])
    batch["input_ids"] = batch["input_ids"] % model.config.vocab_size
    batch["labels"] = torch.tensor([i % 2 for i in range(9)])
    assert length_parts(batch) is not None
    model.train()
    trainer.compute_loss(model, dict(batch))
    assert seen == [9]
