"""The GPU tier (`pytest -m gpu`, skipped without CUDA; `bash benchmarks/gpu_check.sh` runs it on a lent
GPU): the precision policy on a GPU, `configs/alpaca_fsdp.yaml` as written on one GPU (FSDP2, bf16),
packed rows under every attention implementation that installs, QLoRA through bitsandbytes,
`model.compile` per decoder layer and Liger's kernels, each against the plain path on the same batch.
Tiny random models: the tier proves the paths, benchmarks/sft_throughput.py --device cuda times them."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from sftlab.data.labels.collate import Collator
from sftlab.model.adapters import LoraSettings
from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.module import CausalLMModule
from tests.test_cli import sftlab

pytestmark = pytest.mark.gpu

TINY = {
    "model_type": "llama",
    "vocab_size": 49152,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
}


def packed_batch() -> dict[str, torch.Tensor]:
    """Two packed rows of three examples each (position ids restart), labels on the second half of each."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for lengths in ((40, 60, 28), (64, 32, 32)):
        ids = torch.randint(3, 49152, (sum(lengths),), generator=generator)
        positions = torch.cat([torch.arange(n) for n in lengths])
        labels = torch.where(positions >= torch.cat([torch.full((n,), n // 2) for n in lengths]), ids, -100)
        rows.append({"input_ids": ids.tolist(), "labels": labels.tolist(), "position_ids": positions.tolist()})
    batch = Collator(pad_token_id=0)(rows)
    return {key: value.cuda() for key, value in batch.items()}


def loss_and_gradients(module: CausalLMModule, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
    """The summed loss / trained tokens of `batch` under bf16 autocast, and the trainable parameters' gradients."""
    module.zero_grad()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss_sum, normaliser, *_ = module.labelled_sums(batch)
    (loss_sum / normaliser).backward()
    return float(loss_sum / normaliser), {n: p.grad.float().clone() for n, p in module.named_parameters() if p.grad is not None}


def built(compile: bool = False, **settings) -> CausalLMModule:
    """A tiny module on the GPU (random weights from `TINY` unless `settings` give a source)."""
    module = CausalLMModule(causal_lm=HFCausalLM(**({"config": TINY} if "source" not in settings else {}), **settings), compile=compile)
    module.configure_model()
    return module.cuda()


def assert_same_training(module: CausalLMModule, reference: CausalLMModule, tolerance: float = 2e-2) -> None:
    """Same loss and gradients on the packed batch, within bf16 rounding."""
    batch = packed_batch()
    loss, gradients = loss_and_gradients(module, batch)
    expected, expected_gradients = loss_and_gradients(reference, batch)
    assert loss == pytest.approx(expected, rel=tolerance)
    assert gradients.keys() == expected_gradients.keys()
    for name, gradient in gradients.items():
        scale = expected_gradients[name].abs().max().clamp(min=1e-6)
        assert (gradient - expected_gradients[name]).abs().max() / scale < 5 * tolerance, name


def test_an_unset_precision_is_bf16_mixed_on_a_gpu_with_bf16():
    from sftlab.training.precision import native_precision

    assert native_precision("gpu", None)[0] == ("bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true")


def test_the_alpaca_fsdp_config_runs_on_one_gpu_in_bf16(testdata, tmp_path):
    root = tmp_path / "run"
    result = sftlab(
        "fit",
        "--config",
        "configs/alpaca_fsdp.yaml",
        "--model.causal_lm.config",
        json.dumps(TINY),
        "--trainer.devices",
        "1",
        "--trainer.max_steps",
        "3",
        "--trainer.accumulate_grad_batches",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(root),
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--data.cache_dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    from sftlab.model.restore import is_sharded_checkpoint

    assert is_sharded_checkpoint(root / "checkpoints/last.ckpt")
    assert "precision: bf16-mixed" in next(root.glob("lightning_logs/version_*/config.yaml")).read_text()


@pytest.mark.parametrize("implementation", ["eager", "flash_attention_2"])
def test_packed_rows_train_the_same_under_each_attention_implementation(implementation):
    if implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash-attn is not installed (it has no wheel on PyPI; it builds from source for an hour)")
    torch.manual_seed(0)
    assert_same_training(built(attn_implementation=implementation), built(attn_implementation="sdpa"))


def test_compiled_decoder_layers_train_as_the_eager_ones():
    module, reference = built(compile=True), built()
    assert_same_training(module, reference)
    assert_same_training(module, reference)  # the second call runs the compiled graphs again, no recompilation error


def test_liger_kernels_train_as_the_plain_layers():
    if importlib.util.find_spec("liger_kernel") is None:
        pytest.skip("liger-kernel is not installed")
    assert_same_training(built(liger=True), built())


def test_qlora_loads_a_4bit_base_and_trains_only_the_adapter(testdata, tmp_path):
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    from sftlab.model.loading import load_causal_lm

    load_causal_lm(config=TINY).save_pretrained(tmp_path / "tiny")
    root = tmp_path / "run"
    result = sftlab(
        "fit",
        "--config",
        "configs/tiny.yaml",
        "--model.causal_lm.config",
        "null",
        "--model.causal_lm.source",
        str(tmp_path / "tiny"),
        "--model.causal_lm.lora",
        '{"r": 8, "target_modules": "all-linear", "quantize_4bit": true}',
        "--trainer.accelerator",
        "gpu",
        "--trainer.max_steps",
        "4",
        "--trainer.callbacks",
        "[]",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(root),
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--data.cache_dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "trainer.precision: bf16-mixed (this GPU computes bf16" in result.stderr
    module = built(source=str(tmp_path / "tiny"), lora=LoraSettings(r=8, target_modules="all-linear", quantize_4bit=True))
    assert any(type(m).__name__ == "Linear4bit" for m in module.model.modules())
    loss, gradients = loss_and_gradients(module, packed_batch())
    assert torch.isfinite(torch.tensor(loss)) and gradients and all("lora_" in name for name in gradients)
