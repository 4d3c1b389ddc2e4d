"""Answers to fixed prompts, generated with the chat template used in training: printed and logged
to TensorBoard as text at the end of fit, so users see what the model learned."""

from __future__ import annotations

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger


class SampleAnswers(Callback):
    def __init__(self, prompts: list[str], max_new_tokens: int = 48) -> None:
        self.prompts = prompts
        self.max_new_tokens = max_new_tokens

    def answers(self, pl_module: LightningModule, tokenizer) -> list[str]:
        model = pl_module.model
        model.eval()
        results = []
        with torch.no_grad():
            for prompt in self.prompts:
                inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                       return_tensors="pt", return_dict=True).to(pl_module.device)
                output = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id)
                results.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        return results

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        if data.hparams.template == "alpaca":
            return  # answers need a chat template; the Alpaca prompt is for `sftlab generate`
        tokenizer = data.tokenizer
        tokenizer.chat_template = data.renderer.template
        for prompt, answer in zip(self.prompts, self.answers(pl_module, tokenizer)):
            print(f"\n>>> {prompt}\n{answer}")
            if isinstance(trainer.logger, TensorBoardLogger):
                trainer.logger.experiment.add_text("samples", f"**{prompt}**\n\n{answer}", trainer.global_step)
