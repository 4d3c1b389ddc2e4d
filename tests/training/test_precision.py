"""Precision picked by measuring this machine (a probe of bf16 vs float32 products of the model's shapes,
cached), said in the log, and never changed when the config gives one."""

from __future__ import annotations

import json
import logging

import pytest

from sftlab.model.packaged import packaged_smollm2_gguf
from sftlab.training import precision

TINY = {"hidden_size": 64, "intermediate_size": 128, "vocab_size": 49152}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test probes into its own cache file, never the user's."""
    monkeypatch.setattr(precision, "probe_cache", lambda: tmp_path / "probe.json")
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)


def timed_as(monkeypatch, float32: float, bfloat16: float) -> list[int]:
    """Products take these seconds per dtype; returns the list that counts the probes."""
    probes: list[int] = []

    def seconds(shapes, dtypes, samples=10):
        probes.append(1)
        return [float32, bfloat16]

    monkeypatch.setattr(precision, "matmul_seconds", seconds)
    return probes


@pytest.mark.parametrize("float32, bfloat16, expected", [(3.0, 1.0, "bf16-mixed"), (1.0, 1.0, "32-true"), (1.0, 4.0, "32-true")])
def test_an_unset_precision_is_the_faster_one_measured_and_the_log_says_the_ratio(monkeypatch, caplog, float32, bfloat16, expected):
    timed_as(monkeypatch, float32, bfloat16)
    trainer = {"accelerator": "cpu", "precision": None}
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        precision.pick_precision(trainer, {"config": {"model_type": "llama", **TINY}})
    assert trainer["precision"] == expected
    assert f"trainer.precision: {expected} (bf16 products of this model's shapes ran {float32 / bfloat16:.2f}x" in caplog.text
    assert "set trainer.precision to choose" in caplog.text


def test_the_probe_is_cached_per_machine_and_model_shape(monkeypatch):
    probes = timed_as(monkeypatch, 2.0, 1.0)
    assert precision.bf16_speedup(TINY) == (2.0, False)
    assert precision.bf16_speedup(TINY) == (2.0, True)  # the second run reads the cache
    assert len(probes) == 1
    cached = json.loads(precision.probe_cache().read_text())
    assert len(cached) == 1 and "threads | torch" in next(iter(cached))
    precision.bf16_speedup({**TINY, "hidden_size": 128})  # another shape is measured
    assert len(probes) == 2


def test_the_first_measurement_written_stands_so_that_runs_started_together_agree(monkeypatch):
    timed_as(monkeypatch, 3.0, 1.0)
    precision.bf16_speedup(TINY)
    first = precision.probe_cache().read_text()  # what another process measured and wrote: 3.0x
    precision.probe_cache().unlink()

    def measured_while_the_other_process_writes(shapes, dtypes, samples=10):
        precision.probe_cache().write_text(first)
        return [1.0, 1.0]  # this process itself measures 1.0x

    monkeypatch.setattr(precision, "matmul_seconds", measured_while_the_other_process_writes)
    assert precision.bf16_speedup(TINY) == (3.0, True)
    assert precision.probe_cache().read_text() == first


def test_a_given_precision_is_never_changed_nor_probed(monkeypatch):
    probes = timed_as(monkeypatch, 10.0, 1.0)
    for given in ("32-true", "bf16-mixed", "16-mixed", "64-true"):
        trainer = {"accelerator": "cpu", "precision": given}
        precision.pick_precision(trainer, {"config": {"model_type": "llama", **TINY}})
        assert trainer["precision"] == given
    assert not probes


def test_gpus_compute_bf16_where_supported_without_a_probe(monkeypatch):
    probes = timed_as(monkeypatch, 1.0, 10.0)
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: True)
    for supported, expected in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(precision.torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert precision.native_precision("gpu", TINY)[0] == expected
    assert precision.native_precision("cpu", TINY)[0] == "32-true"  # a CPU run on a GPU machine is probed
    assert len(probes) == 1


def test_the_model_shape_comes_from_its_config_its_folder_or_its_gguf(tmp_path):
    assert precision.model_dimensions({"config": {"model_type": "llama", **TINY}}) == TINY
    gguf = {"hidden_size": 576, "intermediate_size": 1536, "vocab_size": 49152}  # SmolLM2-135M
    assert precision.model_dimensions({"source": str(packaged_smollm2_gguf())}) == gguf
    assert precision.model_dimensions({"class_path": "mypkg.MyBuilder", "init_args": {}}) is None  # not HFCausalLM: default shapes
    assert precision.model_dimensions({"source": str(tmp_path)}) is None  # unreadable: default shapes, the build will say why


def test_the_probe_is_short_and_measures_both_dtypes():
    float32, bfloat16 = precision.matmul_seconds(
        precision.probe_shapes(TINY), (precision.torch.float32, precision.torch.bfloat16), samples=2
    )
    assert float32 > 0 and bfloat16 > 0
