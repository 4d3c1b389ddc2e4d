"""HF export: a LoRA adapter that plain peft reloads onto its base with the same logits; atomic replace."""

from __future__ import annotations

import torch
from peft import PeftModel

from sftlab.model.adapters import LoraSettings
from sftlab.model.export import export_hf
from sftlab.model.loading import load_causal_lm
from sftlab.model.module import CausalLMModule
from tests.model.test_loading import TINY


def test_lora_export_reloads_in_peft_with_the_same_logits(smollm2_tokenizer, tmp_path):
    module = CausalLMModule(config=TINY, lora=LoraSettings(r=4, alpha=8))
    with torch.no_grad():
        for name, parameter in module.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # a trained-looking adapter (lora_B starts at zero)
    target = export_hf(module.model, smollm2_tokenizer, tmp_path / "hf", chat_template="{{ messages }}")
    assert (target / "adapter_config.json").is_file() and not (target / "model.safetensors").exists()
    reloaded = PeftModel.from_pretrained(load_causal_lm(config=TINY), target)
    module.model.eval()  # LoRA dropout off, as in the reloaded model
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, module.model(ids).logits)
        assert not torch.allclose(load_causal_lm(config=TINY)(ids).logits, module.model(ids).logits)
    assert (target / "chat_template.jinja").read_text() == "{{ messages }}"


def test_export_replaces_an_existing_folder_whole(smollm2_tokenizer, tmp_path):
    target = tmp_path / "hf"
    target.mkdir()
    (target / "stale.txt").write_text("from an older export")
    export_hf(load_causal_lm(config=TINY), smollm2_tokenizer, target)
    assert not (target / "stale.txt").exists() and (target / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no staging or backup folder left behind
