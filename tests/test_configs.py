"""Every shipped config: `--print_config` round-trips, and the FSDP one names the FSDP2 strategy in bf16
(that it runs: tests/training/test_fsdp2_fit.py)."""

from __future__ import annotations

import pytest
import yaml

from sftlab.training.cli import SftlabCLI
from sftlab.training.strategies import FSDP2, StrategyRegistry
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


def test_alpaca_fsdp_shards_with_fsdp2_in_bf16(capsys):
    resolved = yaml.safe_load(_print_config(capsys, "--config", str(REPO / "configs/alpaca_fsdp.yaml")))
    trainer = resolved["trainer"]
    assert (trainer["strategy"], trainer["precision"], trainer["devices"]) == ("fsdp2", "bf16-mixed", 4)
    assert isinstance(StrategyRegistry.get(trainer["strategy"]), FSDP2)
