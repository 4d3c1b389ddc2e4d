"""The fsdp2 strategy's pieces that need no processes: its short name, one-line errors for bad names,
the decoder layers it shards, the mixed-precision policy it derives from `trainer.precision`."""

from __future__ import annotations

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from sftlab.errors import SftlabError
from sftlab.model.adapters import LoraSettings
from sftlab.training.strategies import (
    DDP,
    DEAD_RANK_TIMEOUT,
    FSDP2,
    DDPStrategy,
    StrategyRegistry,
    check_strategy_name,
    decoder_layer_classes,
    mixed_precision,
)
from tests.model.test_module import tiny_module
from tests.test_cli import sftlab


def test_fsdp2_is_a_registered_short_name():
    assert isinstance(StrategyRegistry.get("fsdp2"), FSDP2)
    for name in ("fsdp2", "FSDP2", "auto", "ddp", None):
        check_strategy_name(name)


def test_ddp_is_lightnings_own_with_the_dead_rank_timeout():
    ddp = StrategyRegistry.get("ddp")
    assert isinstance(ddp, DDP) and isinstance(ddp, DDPStrategy)
    assert ddp.dead_rank_timeout == StrategyRegistry.get("fsdp2").dead_rank_timeout == DEAD_RANK_TIMEOUT
    assert DDP(timeout=30, find_unused_parameters=True).dead_rank_timeout == 30
    with pytest.raises(SftlabError, match="timeout: .* must be > 0"):
        FSDP2(timeout=-1)


def test_unknown_and_dotted_strategy_names_are_one_line_errors():
    with pytest.raises(SftlabError, match=r"unknown strategy 'fsdp3' \(known names: auto, ddp, .*fsdp2"):
        check_strategy_name("fsdp3")
    with pytest.raises(SftlabError, match=r"read as a strategy name; a class is given as --trainer.strategy.class_path my.Strategy"):
        check_strategy_name("my.Strategy")


def test_a_bad_strategy_name_on_the_command_line_is_one_line_and_exit_2():
    result = sftlab("fit", "--config", "configs/tiny.yaml", "--trainer.strategy", "fsdp3")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("sftlab: error: trainer.strategy: unknown strategy 'fsdp3'")
    assert "Traceback" not in result.stderr


def test_old_fsdp_strategy_class_paths_name_the_new_one():
    result = sftlab("fit", "--config", "configs/tiny.yaml", "--trainer.strategy.class_path", "sftlab.training.strategies.DecoderLayerFSDP")
    assert result.returncode == 2
    assert "DecoderLayerFSDP moved to sftlab.training.strategies.FSDP2 (--trainer.strategy fsdp2)" in result.stderr


def test_the_decoder_layers_come_from_the_model_with_or_without_lora():
    for module in (tiny_module(), tiny_module(causal_lm={"lora": LoraSettings(r=4)})):
        assert decoder_layer_classes(module.model) == {LlamaDecoderLayer}
    with pytest.raises(SftlabError, match="cannot find the decoder-layer class of Linear"):
        decoder_layer_classes(torch.nn.Linear(2, 2))


def test_bf16_mixed_gathers_and_computes_in_bf16_and_reduces_in_float32():
    policy = mixed_precision("bf16-mixed")
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    for precision in ("32-true", "bf16-true"):
        assert (mixed_precision(precision).param_dtype, mixed_precision(precision).reduce_dtype) == (None, None)
