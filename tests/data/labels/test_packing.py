"""Packing: packed rows give the same per-token logits and loss as the examples run one by one."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.packing import chunk_documents, pack_examples
from sftlab.data.labels.tokenize import IGNORE_INDEX


def tiny_llama(attn_implementation: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    config._attn_implementation = attn_implementation
    return LlamaForCausalLM(config).eval()


def _examples(lengths: list[int]) -> dict[str, list[list[int]]]:
    generator = torch.Generator().manual_seed(1)
    ids = [torch.randint(3, 128, (n,), generator=generator).tolist() for n in lengths]
    labels = [[IGNORE_INDEX] * (n // 2) + row[n // 2 :] for row, n in zip(ids, lengths)]  # a prompt half, an answer half
    return {"input_ids": ids, "labels": labels}


def _summed_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE_INDEX, reduction="sum")


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_logits_and_loss_equal_separate_examples(attn_implementation):
    model = tiny_llama(attn_implementation)
    examples = _examples([23, 41, 17, 30])
    packed = pack_examples(examples, max_seq_length=64)
    assert sum(packed["examples"]) == 4 and len(packed["input_ids"]) < 4  # some rows hold several examples
    batch = Collator(pad_token_id=0)([dict(zip(packed, row)) for row in zip(*packed.values())])
    assert "attention_mask" not in batch  # isolation comes from position ids alone
    with torch.no_grad():
        packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        packed_loss = sum(_summed_loss(row, y) for row, y in zip(packed_logits, batch["labels"]))
        separate_loss = torch.tensor(0.0)
        checked = 0
        for row, members in enumerate(packed["position_ids"]):
            starts = [i for i, p in enumerate(members) if p == 0] + [len(members)]
            for start, end in itertools.pairwise(starts):
                ids = batch["input_ids"][row, start:end]
                alone = model(input_ids=ids[None], use_cache=False).logits[0]
                torch.testing.assert_close(packed_logits[row, start:end], alone, atol=1e-5, rtol=0)
                original = next(i for i, x in enumerate(examples["input_ids"]) if x == ids.tolist())
                separate_loss += _summed_loss(alone, torch.tensor(examples["labels"][original]))
                checked += 1
    assert checked == 4
    torch.testing.assert_close(packed_loss, separate_loss, atol=1e-4, rtol=1e-6)


def test_isolation_needs_position_ids_not_an_attention_mask():
    """The control: the same packed row with plain positions lets examples see each other."""
    model = tiny_llama("sdpa")
    examples = _examples([20, 20])
    packed = pack_examples(examples, max_seq_length=64)
    ids = torch.tensor(packed["input_ids"])
    with torch.no_grad():
        isolated = model(input_ids=ids, position_ids=torch.tensor(packed["position_ids"]), use_cache=False).logits
        leaking = model(input_ids=ids, use_cache=False).logits
    assert (isolated[0, 20:] - leaking[0, 20:]).abs().max() > 1e-3


def test_first_label_of_each_packed_example_is_ignored():
    examples = {"input_ids": [[5, 6, 7], [8, 9]], "labels": [[5, 6, 7], [8, 9]]}
    packed = pack_examples(examples, max_seq_length=8)
    assert packed["input_ids"] == [[5, 6, 7, 8, 9]]
    assert packed["labels"] == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9]]
    assert packed["position_ids"] == [[0, 1, 2, 0, 1]]


def test_weights_are_packed_beside_the_labels_and_padded_with_zero():
    examples = {"input_ids": [[5, 6, 7], [8, 9]], "labels": [[5, 6, 7], [IGNORE_INDEX, 9]], "weights": [[1.0, 0.5, 2.0], [0.0, 3.0]]}
    packed = pack_examples(examples, max_seq_length=8)
    assert packed["weights"] == [[0.0, 0.5, 2.0, 0.0, 3.0]]  # the first label of each example is -100: weight 0
    batch = Collator(pad_token_id=0)([dict(zip(packed, row)) for row in zip(*packed.values())])
    assert batch["weights"].dtype == torch.float32 and batch["weights"].tolist() == [[0.0, 0.5, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0]]
    unweighted = Collator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]}])
    assert unweighted["weights"].tolist() == [[0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]  # from the labels


def test_a_prompt_mask_is_packed_and_padded_like_the_weights():
    examples = {
        "input_ids": [[5, 6, 7], [8, 9]],
        "labels": [[5, 6, 7], [8, 9]],
        "weights": [[0.1, 0.1, 1.0], [0.1, 1.0]],
        "prompt_mask": [[True, True, False], [True, False]],
    }
    packed = pack_examples(examples, max_seq_length=8)
    assert packed["prompt_mask"] == [[False, True, False, False, False]]  # each example's first label is untrained
    batch = Collator(pad_token_id=0)([dict(zip(packed, row)) for row in zip(*packed.values())])
    assert batch["prompt_mask"].dtype == torch.bool and batch["prompt_mask"].tolist() == [[False, True] + [False] * 6]
    assert "prompt_mask" not in Collator(pad_token_id=0)([{"input_ids": [5, 6], "labels": [5, 6]}])


def test_packing_respects_the_row_length_and_keeps_every_example():
    lengths = [60, 50, 40, 30, 20, 10, 5, 64]
    examples = {"input_ids": [[1] * n for n in lengths], "labels": [[1] * n for n in lengths]}
    packed = pack_examples(examples, max_seq_length=64)
    assert all(len(row) <= 64 for row in packed["input_ids"])
    assert sum(len(row) for row in packed["input_ids"]) == sum(lengths)
    assert sum(packed["examples"]) == len(lengths)


def test_chunk_documents_keeps_the_tail_and_restarts_positions():
    docs = {"input_ids": [[1, 2, 3, 0], [4, 5, 0], [6, 7, 8, 9, 0]]}
    out = chunk_documents(docs, block_size=5, reset_position_ids=True)
    assert out["input_ids"] == [[1, 2, 3, 0, 4], [5, 0, 6, 7, 8], [9, 0]]
    assert out["labels"] == out["input_ids"]
    assert out["position_ids"] == [[0, 1, 2, 3, 0], [0, 1, 0, 1, 2], [0, 1]]
    assert "position_ids" not in chunk_documents(docs, block_size=5)
