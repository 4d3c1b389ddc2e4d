"""A callback for the streaming tests: every training batch each rank takes, as the document ids its rows
hold (`<000123>` markers in the test corpora) and a hash of its tokens, appended to
`$SFTLAB_BATCH_RECORD/rank<r>-<start time>.jsonl` (a file per process, so a line cut by a kill stays in
its own file) under the key (epoch, batch index). A resumed run writes the batches after its checkpoint
again: the latest process's line of a key is the batch that was finally trained."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer

MARKER = re.compile(r"<(\d{6})>")


class BatchRecorder(Callback):
    def __init__(self) -> None:
        self.started = time.time_ns()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        tokenizer = trainer.datamodule.tokenizer
        rows = [ids[:length].tolist() for ids, length in zip(batch["input_ids"], batch["lengths"])]
        entry = {
            "key": [trainer.current_epoch, batch_idx],
            "step": trainer.global_step,
            "ids": [[int(i) for i in MARKER.findall(tokenizer.decode(row))] for row in rows],
            "hash": hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16],
        }
        folder = Path(os.environ["SFTLAB_BATCH_RECORD"])
        with open(folder / f"rank{trainer.global_rank}-{self.started}.jsonl", "a") as file:
            file.write(json.dumps(entry) + "\n")
            file.flush()
            os.fsync(file.fileno())


def trained_batches(folder: Path, rank: int) -> dict[tuple[int, int], dict[str, Any]]:
    """The batches a rank finally trained, by (epoch, batch index); a line cut by a kill is skipped."""
    batches = {}
    for path in sorted(folder.glob(f"rank{rank}-*.jsonl"), key=lambda p: int(p.stem.split("-")[1])):
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            batches[tuple(entry["key"])] = entry
    return batches
