"""The cells of the architecture matrix. Each runs one promise of sftlab on one family (families.py) through
sftlab's own code, asserts it, and returns what the support table (support.py) says about it; a cell that
does not hold raises, so no table entry can be written without its proof.

- `attention`: the implementation a model gets when `attn_implementation` is unset is transformers' own pick,
  and each one the model does not have is a one-line error naming those it has.
- `head`: logits at trained positions only give the full forward's loss and gradients, or the model keeps
  the full forward and the log says why.
- `router`: an MoE model's loss (cross-entropy + router_aux_loss_coef x router loss) equals the model's own
  `loss` on the same batch within 1e-6 (relative: float32's resolution), and so do the gradients.
- `packing`: packed rows give every example the logits, loss and gradients it gets alone (1e-5), or packing
  is a one-line error naming the layer type, and the leak it prevents is real.
- `fit` (full and LoRA `all-linear`): `sftlab fit`, two steps with gradient checkpointing, packed where exact;
  the HF export reloads in plain transformers / peft with the trained logits; `sftlab generate` answers
  from the export, with the model's own cache giving the answers of decoding without one.
- `fsdp2`: the same fit on 2 CPU processes under FSDP2 (slow); the export has the sharded checkpoint's logits.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoConfig, AutoModelForCausalLM

from sftlab.cli import main
from sftlab.data.labels.collate import Collator
from sftlab.data.labels.packing import pack_examples
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.errors import SftlabError
from sftlab.inference.generate import Generator, Sampling
from sftlab.inference.loading import load_for_inference
from sftlab.inference.prompts import user_prompt
from sftlab.model.attention import FLAGS, accepted_attention
from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.loading import load_causal_lm
from sftlab.model.module import CausalLMModule
from sftlab.model.packing import typed_layers
from sftlab.model.restore import restore_checkpoint
from tests.architectures.families import family_config

REPO = Path(__file__).resolve().parents[2]
PAD = 2  # SmolLM2's pad token
PROBE_IDS = torch.tensor([[1, 530, 2211, 30, 17, 9, 4, 2, 1, 77, 300, 12]])
PROMPTS = ["Hello!", "What is the capital of France?"]
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}


def module_for(name: str, **settings: Any) -> CausalLMModule:
    """The family's tiny model in sftlab's module, built (eval mode: no dropout or router noise in comparisons)."""
    builder = settings.pop("causal_lm", {})
    module = CausalLMModule(causal_lm=HFCausalLM(config=family_config(name), **builder), **settings)
    module.configure_model()
    module.model.eval()
    return module


def examples() -> list[dict[str, list[int]]]:
    """Four examples of uneven lengths, each a prompt half (labels -100, the first label included, as packing
    makes it) and an answer half."""
    generator = torch.Generator().manual_seed(1)
    rows = []
    for length in (23, 41, 17, 30):
        ids = torch.randint(3, 1000, (length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * (length // 2) + ids[length // 2 :]})
    return rows


def padded_batch() -> dict[str, torch.Tensor]:
    return Collator(pad_token_id=PAD)(examples())


def packed_batch() -> dict[str, torch.Tensor]:
    rows = examples()
    packed = pack_examples({key: [row[key] for row in rows] for key in ("input_ids", "labels")}, max_seq_length=64)
    assert max(packed["examples"]) > 1  # rows hold several examples
    return Collator(pad_token_id=PAD)([dict(zip(packed, row)) for row in zip(*packed.values())])


def loss_and_gradients(
    module: CausalLMModule, batch: dict[str, torch.Tensor], router: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss sftlab trains on one micro-batch (the mean over trained tokens; with `router`, the router loss
    included) and its gradients."""
    module.zero_grad()
    loss_sum, normaliser, *_, router_sum = module.labelled_sums(batch)
    loss = (loss_sum + module.forward_pass.router_coefficient * router_sum if router else loss_sum) / normaliser
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]


def assert_same(got: tuple[torch.Tensor, list[torch.Tensor]], expected: tuple[torch.Tensor, list[torch.Tensor]], atol: float) -> None:
    torch.testing.assert_close(got[0], expected[0], rtol=1e-6, atol=atol)
    assert len(got[1]) == len(expected[1]) > 0
    for mine, theirs in zip(got[1], expected[1]):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def attention_cell(name: str) -> str:
    config = family_config(name)
    settings = {key: value for key, value in config.items() if key != "model_type"}
    model = load_causal_lm(config=config)
    picked = AutoModelForCausalLM.from_config(AutoConfig.for_model(name, **settings)).config._attn_implementation
    assert model.config._attn_implementation == picked, (model.config._attn_implementation, picked)
    accepted = accepted_attention(type(model))
    for refused in sorted(set(FLAGS) - set(accepted)):
        try:
            load_causal_lm(config=config, attn_implementation=refused)
        except SftlabError as err:
            assert "\n" not in str(err) and f"it accepts {', '.join(accepted)}" in str(err), err
        else:
            raise AssertionError(f"{name}: attn_implementation {refused!r} was not refused")
    return picked


def head_cell(name: str) -> str:
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("sftlab.model.head")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        split = module_for(name)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if split.forward_pass.split_head is None:
        assert any("logits are computed at every position" in message for message in messages), messages
        return "full forward"
    full = module_for(name, labelled_logits_only=False)
    assert_same(loss_and_gradients(split, padded_batch()), loss_and_gradients(full, padded_batch()), atol=1e-5)
    return "trained positions"


def router_cell(name: str) -> str:
    module = module_for(name)
    coefficient = module.forward_pass.router_coefficient
    if coefficient is None:
        return "—"
    batch = padded_batch()
    mine = loss_and_gradients(module, batch, router=True)
    module.zero_grad()
    own = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"], use_cache=False)
    assert own.aux_loss is not None and float(own.aux_loss.detach()) > 0
    own.loss.backward()
    theirs = own.loss.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]
    assert abs(float(mine[0]) - float(theirs[0])) <= 1e-6 * abs(float(theirs[0])), (float(mine[0]), float(theirs[0]))  # float32
    assert_same(mine, theirs, atol=1e-6)
    return f"added (x{coefficient:g})"


def packing_cell(name: str) -> str:
    module = module_for(name)
    packed, padded = packed_batch(), padded_batch()
    plan = module.forward_pass.packing()
    if plan.refusal is not None:
        try:
            module.labelled_sums(packed)
        except SftlabError as err:
            message = str(err)
        else:
            raise AssertionError(f"{name}: packed rows were trained although packing was refused")
        layer = message.split("'s ", 1)[1].split(" layers", 1)[0]
        assert "\n" not in message and "data.batching.group_by_length: true" in message and layer in typed_layers(module.model)[1], message
        assert largest_leak(module, packed, padded) > 1e-6  # what a packing-naive forward does to these rows
        return f"refused ({layer})"
    assert largest_leak(module, packed, padded, sftlab=True) <= 1e-5
    assert_same(loss_and_gradients(module, packed), loss_and_gradients(module, padded), atol=1e-5)
    return "exact (boundaries)" if plan.boundaries else "exact"


def largest_leak(module: CausalLMModule, packed: dict[str, torch.Tensor], padded: dict[str, torch.Tensor], sftlab: bool = False) -> float:
    """The largest difference between an example's logits in a packed row and alone (its unpacked row):
    through sftlab's forward, or the model's own forward of the packed rows as they are."""
    with torch.no_grad():
        inputs = {"input_ids": packed["input_ids"], "position_ids": packed["position_ids"]}
        packed_logits = module(packed) if sftlab else module.model(**inputs, use_cache=False).logits
        alone = module(padded)
    largest, compared = 0.0, set()
    for row, positions in enumerate(packed["position_ids"].tolist()):
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for start, end in itertools.pairwise(starts):
            ids = packed["input_ids"][row, start:end]
            match = [
                i
                for i in range(len(padded["input_ids"]))
                if padded["input_ids"][i, : end - start].equal(ids) and padded["lengths"][i] == end - start
            ]
            if match:  # the padding tail is no example
                largest = max(largest, float((packed_logits[row, start:end] - alone[match[0], : end - start]).abs().max()))
                compared.add(match[0])
    assert len(compared) == len(padded["input_ids"]), compared  # every example was compared
    return largest


def fit_cell(name: str, root: Path, cache: Path, packing: bool, lora: bool = False) -> dict[str, str]:
    """`sftlab fit` in this process; {"fit": ..., "export": ..., "generate": ...} (generate: full fine-tunes only)."""
    args = ["--model.causal_lm.config", json.dumps(family_config(name)), "--model.causal_lm.gradient_checkpointing", "true"]
    args += ["--data.packing", str(packing).lower(), "--data.batching.group_by_length", str(not packing).lower()]
    args += ["--model.causal_lm.lora", json.dumps(LORA)] if lora else []
    status, stderr = run_sftlab(
        [
            "fit",
            "--config",
            str(REPO / "tests/architectures/fit.yaml"),
            *args,
            "--trainer.default_root_dir",
            str(root),
            "--data.cache_dir",
            str(cache),
        ]
    )
    if status != 0:
        error = [line for line in stderr.splitlines() if line.startswith("sftlab: error:")]
        assert status == 2 and len(error) == 1 and lora, stderr[-3000:]  # only peft may refuse an adapter
        assert "model.causal_lm.lora: peft cannot adapt" in error[0], error
        return {"fit": "refused by peft"}
    module, _ = restore_checkpoint(root / "checkpoints/last.ckpt")
    trained = logits(module.model)
    assert not torch.allclose(trained, logits(load_causal_lm(config=family_config(name))))  # it trained
    export = next(root.glob("lightning_logs/version_*/hf"))
    reloaded = (
        PeftModel.from_pretrained(load_causal_lm(config=family_config(name)), export)
        if lora
        else AutoModelForCausalLM.from_pretrained(export)
    )
    torch.testing.assert_close(logits(reloaded), trained)
    if module.forward_pass.router_coefficient is not None:
        events = EventAccumulator(str(export.parent))
        events.Reload()
        assert all(event.value > 0 for event in events.Scalars("train/aux_loss"))
    return {"fit": "✓", "export": "✓"} if lora else {"fit": "✓", "export": "✓", "generate": generate_cell(export, root)}


def run_sftlab(argv: list[str]) -> tuple[int, str]:
    """`sftlab ARGV` in this process (no 6-15 s of imports per run): exit status and stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            main(argv)
        except SystemExit as exit:
            return int(exit.code or 0), stderr.getvalue()
    return 0, stderr.getvalue()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(PROBE_IDS).logits


def generate_cell(export: Path, root: Path) -> str:
    """`sftlab generate` from the export answers every prompt, and greedy answers with the model's own cache
    (hybrid caches: convolution and recurrent states) are those of decoding without a cache."""
    status, stderr = run_sftlab(
        ["generate", "--model", str(export), "--prompt", *PROMPTS, "--max_new_tokens", "6", "--output", str(root / "answers.jsonl")]
    )
    assert status == 0, stderr[-3000:]
    answers = [json.loads(line) for line in (root / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == len(PROMPTS) and all(answer["answer_tokens"] > 0 for answer in answers)
    loaded = load_for_inference(str(export))
    conversations = [user_prompt(prompt, None, "matrix").conversation for prompt in PROMPTS]
    cached = Generator(loaded, Sampling(max_new_tokens=6), batch_size=2).answer(conversations)
    loaded.model.generation_config.use_cache = False
    uncached = Generator(loaded, Sampling(max_new_tokens=6), batch_size=2).answer(conversations)
    assert [(a.answer, a.answer_tokens) for a in cached] == [(a.answer, a.answer_tokens) for a in uncached]
    assert [a.answer for a in cached] == [answer["answer"] for answer in answers]
    return "✓"


def fsdp2_cell(name: str, root: Path, cache: Path, packing: bool) -> str:
    """The full fit on 2 CPU processes under FSDP2 (a subprocess: Lightning launches the ranks)."""
    args = ["--model.causal_lm.config", json.dumps(family_config(name)), "--data.packing", str(packing).lower()]
    args += [
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "fsdp2",
        "--trainer.default_root_dir",
        str(root),
        "--data.cache_dir",
        str(cache),
    ]
    command = [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(REPO / "tests/architectures/fit.yaml"), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    module, _ = restore_checkpoint(root / "checkpoints/last.ckpt")
    export = next(root.glob("lightning_logs/version_*/hf"))
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(export)), logits(module.model))
    return "✓"
