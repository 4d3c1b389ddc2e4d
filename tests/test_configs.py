"""Every shipped config: `--print_config` round-trips, and the FSDP one wraps the model's decoder layers."""

from __future__ import annotations

import pytest
import yaml
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from sftlab.model.adapters import LoraSettings
from sftlab.training.cli import SftlabCLI
from sftlab.training.strategies import DecoderLayerFSDP, decoder_layer_classes
from tests.model.test_module import tiny_module
from tests.test_cli import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _print_config(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        SftlabCLI(args=["fit", *args, "--print_config"])
    assert stop.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_print_config_round_trips(config, tmp_path, capsys):
    printed = _print_config(capsys, "--config", str(config))
    (tmp_path / "printed.yaml").write_text(printed)
    assert _print_config(capsys, "--config", str(tmp_path / "printed.yaml")) == printed
    resolved = yaml.safe_load(printed)
    assert resolved["model"]["class_path"] == "sftlab.model.module.CausalLMModule"
    assert resolved["data"]["class_path"] == "sftlab.data.datamodule.SFTDataModule"


def test_alpaca_fsdp_wraps_and_checkpoints_the_decoder_layers_the_model_names(capsys):
    resolved = yaml.safe_load(_print_config(capsys, "--config", str(REPO / "configs/alpaca_fsdp.yaml")))
    strategy = resolved["trainer"]["strategy"]
    assert strategy["class_path"] == "sftlab.training.strategies.DecoderLayerFSDP"
    settings = {**strategy["init_args"], "checkpoint_activations": True}
    fsdp = DecoderLayerFSDP(**settings)
    assert fsdp.sharding_strategy.name == "FULL_SHARD" and resolved["trainer"]["precision"] == "bf16-mixed"
    for module in (tiny_module(), tiny_module(causal_lm={"lora": LoraSettings(r=4)})):
        assert fsdp.configure_for(module) == {LlamaDecoderLayer}
        assert fsdp.kwargs["auto_wrap_policy"]._module_classes == {LlamaDecoderLayer}
        assert fsdp._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == {LlamaDecoderLayer}


def test_a_model_without_named_layers_is_a_clear_error():
    import torch

    from sftlab.errors import SftlabError

    with pytest.raises(SftlabError, match="cannot find the decoder-layer class of Linear"):
        decoder_layer_classes(torch.nn.Linear(2, 2))
