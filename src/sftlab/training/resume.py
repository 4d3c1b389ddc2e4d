"""Which checkpoint a relaunch resumes from, checked before any work.

`--ckpt_path last` means `last.ckpt` in the run's checkpoint folder, or, when it is corrupt or partial
(a kill during a save, a full disk), the newest readable `step-*.ckpt` (said in the log). No checkpoint
at all starts from scratch, so a requeued job can always pass `--ckpt_path last`. An explicit path that
cannot be read is a one-line error. A checkpoint is a file or, under FSDP2, a sharded folder (checked
whole: its index and every shard it names, model/restore.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sftlab.errors import SftlabError
from sftlab.model.restore import is_sharded_checkpoint, read_any_checkpoint

log = logging.getLogger(__name__)

LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def readable_checkpoint(path: Path) -> str | None:
    """None when `path` loads as a Lightning training checkpoint, else why not."""
    try:
        saved = read_any_checkpoint(path)
    except SftlabError as err:
        return str(err)
    if "loops" not in saved or ("state_dict" not in saved and not is_sharded_checkpoint(path)):
        return "not a Lightning training checkpoint"
    return None


def check_explicit_checkpoint(ckpt_path: str | None) -> None:
    """A path given to `--ckpt_path` (not one of Lightning's names) must be a readable training checkpoint."""
    if ckpt_path and ckpt_path not in LIGHTNING_CKPT_NAMES and (problem := readable_checkpoint(Path(ckpt_path))):
        raise SftlabError(f"ckpt_path: cannot resume from {ckpt_path}: {problem}")


def usable_checkpoint(ckpt_path: str | None, folders: list[Path]) -> str | None:
    """The checkpoint to resume from: `last` resolved in `folders` as described above; others unchanged."""
    if ckpt_path != "last" or not folders:
        return ckpt_path
    candidates = [folder / "last.ckpt" for folder in folders]
    steps = (p for folder in folders for p in folder.glob("step-*.ckpt"))
    candidates += sorted(steps, key=lambda p: p.stat().st_mtime, reverse=True)
    candidates = [p for p in candidates if p.is_file() or p.is_dir()]
    if not candidates:
        log.info("ckpt_path last: no checkpoint in %s yet: starting from scratch", ", ".join(map(str, folders)))
        return None
    for candidate in candidates:
        problem = readable_checkpoint(candidate)
        if problem is None:
            log.info("resuming from %s", candidate)
            return str(candidate)
        log.warning("checkpoint %s is corrupt or partial (%s): trying the previous one", candidate, problem)
    raise SftlabError(
        f"ckpt_path last: no readable checkpoint in {', '.join(map(str, folders))} ({len(candidates)} found, all corrupt or partial)"
    )
