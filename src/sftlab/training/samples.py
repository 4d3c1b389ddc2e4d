"""Answers to a few fixed prompts, generated the way `sftlab generate` does (the template and stop
text used in training), at every validation and at the end of fit: logged to TensorBoard as text so
users see the model change as it trains, and printed at the end. Under FSDP2 every rank generates the
same answers with the sharded model (each layer gathers its weights for every forward, all ranks in
step); rank 0 logs them."""

from __future__ import annotations

import logging

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import ModelParallelStrategy

from sftlab.errors import SftlabError
from sftlab.inference.generate import Generator, Sampling
from sftlab.inference.loading import LoadedModel
from sftlab.inference.prompts import user_prompt

log = logging.getLogger(__name__)


class SampleAnswers(Callback):
    def __init__(self, prompts: list[str], max_new_tokens: int = 48, every_validation: bool = True) -> None:
        """
        Args:
            prompts: User messages to answer (greedy decoding).
            max_new_tokens: Length limit of each answer.
            every_validation: Also answer after every validation (not only at the end of fit).
        """
        self.prompts = prompts
        self.max_new_tokens = max_new_tokens
        self.every_validation = every_validation

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not hasattr(pl_module.model, "generate"):
            raise SftlabError(
                f"SampleAnswers: {type(pl_module.model).__name__} cannot generate (no generate method): "
                "remove SampleAnswers from trainer.callbacks"
            )

    def answers(self, trainer: Trainer, pl_module: LightningModule) -> list[str]:
        data = trainer.datamodule
        tokenizer, model = data.tokenizer, pl_module.model
        side, was_training = tokenizer.padding_side, model.training
        tokenizer.padding_side = "left"
        model.eval()
        try:
            loaded = LoadedModel(model, tokenizer, data.renderer, data.tokenizer_name, data.template)
            generator = Generator(loaded, Sampling(max_new_tokens=self.max_new_tokens), batch_size=len(self.prompts))
            return [a.answer for a in generator.answer([user_prompt(p, None, "sample").conversation for p in self.prompts])]
        finally:
            tokenizer.padding_side = side
            model.train(was_training)

    def _log(self, trainer: Trainer, pl_module: LightningModule, show: bool) -> None:
        sharded = isinstance(trainer.strategy, ModelParallelStrategy)
        if not (trainer.is_global_zero or sharded):
            return
        answers = self.answers(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        for prompt, answer in zip(self.prompts, answers):
            if show:
                print(f"\n>>> {prompt}\n{answer}", flush=True)
            if isinstance(trainer.logger, TensorBoardLogger):
                trainer.logger.experiment.add_text("samples", f"**{prompt}**\n\n{answer}", trainer.global_step)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_validation and not trainer.sanity_checking and trainer.state.fn == "fit":
            self._log(trainer, pl_module, show=False)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, show=True)
