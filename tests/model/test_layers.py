"""`model.compile`: each decoder layer (and nothing else) compiled in place, training as the eager model."""

from __future__ import annotations

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from sftlab.model.adapters import LoraSettings
from sftlab.model.layers import compile_decoder_layers, decoder_layers
from tests.model.test_module import _examples, tiny_module


def test_compile_compiles_each_decoder_layer_in_place(monkeypatch):
    compiled: list[torch.nn.Module] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *args, **kwargs: compiled.append(self))
    for settings in ({}, {"lora": LoraSettings(r=4)}):
        module = tiny_module(causal_lm=settings, compile=True)
        layers = decoder_layers(module.model)
        assert len(layers) == 2 and all(type(layer) is LlamaDecoderLayer for layer in layers)
        assert compiled == layers  # the layers themselves: same classes and names, so FSDP2 and checkpoints find them
        compiled.clear()
    compile_decoder_layers(tiny_module().model)
    assert len(compiled) == 2


@pytest.mark.slow  # torch.compile builds C++ kernels on the CPU: about a minute
def test_compiled_layers_give_the_eager_loss_and_gradients():
    from sftlab.data.labels.collate import Collator

    batch = Collator(pad_token_id=0)(_examples())
    results = []
    for compile_layers in (False, True):
        module = tiny_module(compile=compile_layers)
        for _ in range(2):  # the second call reuses the compiled graph
            module.zero_grad()
            loss_sum, normaliser, *_ = module.labelled_sums(batch)
            (loss_sum / normaliser).backward()
        results.append((float(loss_sum), [p.grad.clone() for p in module.parameters()]))
    (eager, eager_gradients), (compiled, compiled_gradients) = results
    assert compiled == pytest.approx(eager, rel=1e-5)
    for got, want in zip(compiled_gradients, eager_gradients):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_of_a_compiled_run_restores_eager(tiny_lora_run, tmp_path, monkeypatch):
    from sftlab.model.restore import restore_checkpoint

    saved = torch.load(next((tiny_lora_run / "checkpoints").glob("*.ckpt")), map_location="cpu", weights_only=False)
    saved["hyper_parameters"]["compile"] = True  # as `model.compile: true` would have saved it
    torch.save(saved, tmp_path / "compiled.ckpt")
    compiled: list[torch.nn.Module] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *args, **kwargs: compiled.append(self))
    module, _ = restore_checkpoint(tmp_path / "compiled.ckpt")
    assert module.hparams.compile is False and not compiled
