"""HF export: a LoRA adapter that plain peft reloads onto its base with the same logits; atomic replace."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from peft import PeftModel
from transformers import AutoTokenizer

from sftlab.artifacts import save_hf_folder
from sftlab.model.adapters import LoraSettings
from sftlab.model.loading import load_causal_lm
from sftlab.model.module import CausalLMModule
from tests.model.test_loading import TINY
from tests.model.test_module import tiny_module


def export_hf(model, tokenizer, target, chat_template=None):
    return save_hf_folder(model, tokenizer, target, {"template": "chat"}, chat_template=chat_template)


# configs/tiny.yaml's model: the base the tiny LoRA run trained on.
TINY_SMOLLM2_VOCAB = {**TINY, "vocab_size": 49152, "tie_word_embeddings": True}


def test_lora_export_reloads_in_peft_with_the_same_logits(smollm2_tokenizer, tmp_path):
    module = tiny_module(causal_lm={"lora": LoraSettings(r=4, alpha=8)})
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


def test_export_replaces_an_existing_export_whole(smollm2_tokenizer, tmp_path):
    target = tmp_path / "hf"
    export_hf(load_causal_lm(config=TINY), smollm2_tokenizer, target)
    (target / "stale.txt").write_text("from an older export")
    export_hf(load_causal_lm(config=TINY), smollm2_tokenizer, target)
    assert not (target / "stale.txt").exists() and (target / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no staging or backup folder left behind


def test_sftlab_export_merges_lora_into_a_plain_model(tiny_lora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.test_cli import sftlab

    checkpoint = tiny_lora_run / "checkpoints/last.ckpt"
    for merge, output in ((True, tmp_path / "merged"), (False, tmp_path / "adapter")):
        result = sftlab("export", str(checkpoint), "--output", str(output), *(["--merge_lora"] if merge else []))
        assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "merged/model.safetensors").is_file() and not (tmp_path / "merged/adapter_config.json").exists()
    assert (tmp_path / "adapter/adapter_config.json").is_file()
    assert json.loads((tmp_path / "merged/sftlab.json").read_text())["template"] == "chat"

    trained = CausalLMModule.load_from_checkpoint(checkpoint, weights_only=True).model.eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    adapter = PeftModel.from_pretrained(load_causal_lm(config=TINY_SMOLLM2_VOCAB), tmp_path / "adapter")
    ids = AutoTokenizer.from_pretrained(tmp_path / "merged")("Hello there", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = trained(ids).logits
        torch.testing.assert_close(merged(ids).logits, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(adapter(ids).logits, expected)


def test_export_of_a_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    from tests.test_cli import sftlab

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    for path, message in ((tmp_path / "nope.ckpt", "no such checkpoint"), (foreign, "not written by `sftlab fit`")):
        result = sftlab("export", str(path))
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_export_with_a_chat_template_leaves_the_callers_tokenizer_alone(smollm2_tokenizer, tmp_path):
    """The export used to set the template on the tokenizer it was given (a testdata one, in tests)."""
    before = smollm2_tokenizer.chat_template
    target = export_hf(load_causal_lm(config=TINY), smollm2_tokenizer, tmp_path / "hf", chat_template="{{ messages }}")
    assert smollm2_tokenizer.chat_template == before
    assert AutoTokenizer.from_pretrained(target).chat_template == "{{ messages }}"


def test_export_never_replaces_a_folder_sftlab_did_not_export(tiny_lora_run, tmp_path):
    from tests.test_cli import sftlab

    checkpoint = tiny_lora_run / "checkpoints/last.ckpt"
    before = sorted(p.name for p in checkpoint.parent.iterdir())
    result = sftlab("export", str(checkpoint), "--output", str(checkpoint.parent))
    assert result.returncode == 2 and "a folder sftlab did not export" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == before
    mydata = tmp_path / "mydata"
    mydata.mkdir()
    (mydata / "precious.txt").write_text("mine")
    result = sftlab("export", str(checkpoint), "--output", str(mydata))
    assert result.returncode == 2 and (mydata / "precious.txt").read_text() == "mine"


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_an_export_killed_at_the_end_of_fit_is_done_by_the_relaunch(testdata, tmp_path):
    """A kill during the end-of-fit export left a staging folder and no export; the relaunch with
    `--ckpt_path last` has no step left to train, and used to exit 0 without exporting."""
    from tests.test_cli import sftlab

    common = ["fit", "--config", "configs/tiny.yaml", "--trainer.max_steps", "2", "--trainer.default_root_dir", str(tmp_path / "run")]
    common += ["--data.tokenizer", str(testdata / "tokenizers/smollm2-135m-instruct"), "--data.cache_dir", str(tmp_path / "cache")]
    assert sftlab(*common).returncode == 0
    logs = tmp_path / "run/lightning_logs"
    export = logs / "version_0/hf"
    shutil.rmtree(export)
    (logs / "version_0/.hf.tmp-999999-0").mkdir()  # the killed export's staging folder (pid 999999: gone)
    result = sftlab(*common, "--ckpt_path", "last")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (logs / "version_1/hf/sftlab.json").is_file() and "exported to" in result.stderr
