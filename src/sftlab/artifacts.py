"""What a run leaves behind and others read: files written whole or not at all, checkpoints, HF-format
exports with their `sftlab.json`, and tokenizers.

Every file sftlab writes goes through `atomic_file` (or a function built on it): a temporary file in the
target's own folder (so the final rename never crosses a filesystem, whatever `$TMPDIR` is), flushed to
disk, then renamed over the target; created with the mode a plain `open(..., "w")` would give (0666 less
the umask), so results stay readable by the group on shared clusters. Folders (exports) are staged beside
the target and swapped in; only a folder sftlab itself exported (it holds `sftlab.json`) is ever replaced.

This module imports nothing of sftlab's but its errors and `hub`: every package may use it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from sftlab import hub
from sftlab.errors import SftlabError

log = logging.getLogger(__name__)

EXPORT_INFO = "sftlab.json"
TEMPORARY_MARK = ".tmp-"  # `.NAME.tmp-PID-N`: our own temporaries, recognised (and cleaned) by this mark


def temporary_beside(path: Path) -> Path:
    """A fresh temporary name in `path`'s folder, hidden, naming the target and this process."""
    for attempt in range(1000):
        candidate = path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}-{attempt}")
        if not candidate.exists():
            return candidate
    raise SftlabError(f"cannot write {path}: no free temporary name beside it")


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing (`w` text as UTF-8, or `wb`); on a clean exit it is
    fsynced and renamed over `path`, on any error removed. A kill at any moment leaves `path` as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_beside(path)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for open()
    except OSError as err:
        raise SftlabError(f"cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise SftlabError(f"cannot write {path}: {err.strerror}") from None
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_file(path) as file:
        file.write(text)
    return Path(path)


def jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    return write_text_atomic(path, jsonl(rows))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporaries that `atomic_file` or `write_folder` left in `folder` when a process was killed
    (only names with our mark whose process no longer runs); returns what was removed."""
    removed = []
    for candidate in Path(folder).glob(f".*{TEMPORARY_MARK}*"):
        pid = candidate.name.rsplit(TEMPORARY_MARK, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            if candidate.is_dir():
                shutil.rmtree(candidate)
            else:
                candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def is_sftlab_export(folder: Path) -> bool:
    return (Path(folder) / EXPORT_INFO).is_file()


def write_folder(target: Path, fill: Callable[[Path], None]) -> Path:
    """Call `fill(staging)` to write a whole folder beside `target`, then swap it in. An existing `target`
    is replaced only when sftlab exported it (it holds `sftlab.json`); anything else is an error raised
    before any work, so a user's folder is never deleted."""
    target = Path(target)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # an empty folder holds nothing to lose
    if target.exists() and not is_sftlab_export(target):
        what = "a file" if not target.is_dir() else "a folder sftlab did not export (no sftlab.json)"
        raise SftlabError(f"export: {target} is {what}; it would be replaced: choose a new or empty output folder")
    if target.parent.is_dir():
        remove_stale_temporaries(target.parent)
    staging = temporary_beside(target)
    try:
        staging.mkdir(parents=True)
        fill(staging)
        if target.exists():
            retired = temporary_beside(target)
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
    except OSError as err:
        raise SftlabError(f"cannot write {target}: {err.strerror or err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def save_hf_folder(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    target: Path,
    info: dict[str, Any],
    chat_template: str | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Export `model` (transformers or peft: `save_pretrained`; `state_dict` instead of its own, e.g.
    gathered from shards) with `tokenizer` (its chat template set to `chat_template` on a copy) and
    `sftlab.json` (`info`: how prompts were rendered in training), written whole or not at all."""

    def fill(staging: Path) -> None:
        model.save_pretrained(staging, **({"state_dict": state_dict} if state_dict is not None else {}))
        saved_tokenizer = copy.copy(tokenizer) if chat_template else tokenizer  # the caller's keeps its template
        if chat_template:
            saved_tokenizer.chat_template = chat_template
        saved_tokenizer.save_pretrained(staging)
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=1) + "\n")

    return write_folder(target, fill)


def training_info(template: str, masking: object, max_seq_length: int) -> dict[str, Any]:
    """What `sftlab generate` needs to prompt an exported model as it was trained (`sftlab.json`)."""
    return {"template": "alpaca" if template == "alpaca" else "chat", "masking": str(masking), "max_seq_length": max_seq_length}


def read_training_info(folder: Path) -> dict[str, Any]:
    """The `sftlab.json` of an export (empty for a folder sftlab did not write)."""
    info = Path(folder) / EXPORT_INFO
    return json.loads(info.read_text()) if info.is_file() else {}


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's contents (memory-mapped, tensors and plain data only: `weights_only`), or a
    SftlabError saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise SftlabError(f"no such checkpoint: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # a truncated or foreign file raises assorted errors
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise SftlabError(f"cannot read checkpoint {path}: {type(err).__name__}: {first_line}") from None
    if not isinstance(saved, dict):
        raise SftlabError(f"{path} is not a checkpoint (it holds a {type(saved).__name__})")
    return saved


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """A local tokenizer folder, the tokenizer inside a `.gguf` model file, or a Hub id (`org/name`, or
    `org/name@revision`) resolved like a model's; a missing pad token falls back to eos (labels of
    padding are -100 anyway)."""
    location = hub.tokenizer_folder(path)
    try:
        if location.suffix == ".gguf":
            if not location.is_file():
                raise OSError(f"no such file: {location}")
            tokenizer = AutoTokenizer.from_pretrained(str(location.parent), gguf_file=location.name)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(location))
    except (OSError, ValueError) as err:
        raise SftlabError(f"data.tokenizer: cannot load a tokenizer from {path!r}: {err}") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SftlabError(f"data.tokenizer: {path!r} has neither a pad nor an eos token")
        log.info("tokenizer %s has no pad token: padding with eos %r", path, tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
