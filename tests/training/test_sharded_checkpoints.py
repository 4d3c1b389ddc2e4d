"""Sharded (DCP) checkpoint folders: read back only when whole (index, every shard it names, meta.pt);
`--ckpt_path last` falls back past a partial one; a finished folder replaces the previous one by rename."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from sftlab.errors import SftlabError
from sftlab.model.restore import SHARDED_META, is_sharded_checkpoint, read_sharded_checkpoint
from sftlab.training.resume import check_explicit_checkpoint, readable_checkpoint, usable_checkpoint
from sftlab.training.sharded_checkpoints import swap_in


def sharded_checkpoint(folder: Path, step: int) -> Path:
    """A folder laid out as Lightning's ModelParallelStrategy writes it (here by one process)."""
    weights = {"model.weight": torch.full((4, 3), float(step)), "model.bias": torch.zeros(4)}
    dcp.save({"state_dict": weights}, checkpoint_id=str(folder))
    torch.save({"loops": {}, "global_step": step, "epoch": 0}, folder / SHARDED_META)
    return folder


def shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.distcp"))


def test_a_whole_sharded_checkpoint_reads_and_partial_ones_say_what_is_missing(tmp_path):
    folder = sharded_checkpoint(tmp_path / "last.ckpt", step=3)
    assert is_sharded_checkpoint(folder) and readable_checkpoint(folder) is None
    assert read_sharded_checkpoint(folder)["global_step"] == 3
    shard = shard_files(folder)[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(SftlabError, match=rf"{folder} is incomplete: its shard {shard.name} is missing or cut short"):
        read_sharded_checkpoint(folder)
    shard.unlink()
    assert "is incomplete" in readable_checkpoint(folder)
    (folder / ".metadata").unlink()
    assert "no readable shard index (.metadata)" in readable_checkpoint(folder)
    (folder / SHARDED_META).write_bytes(b"")
    assert not is_sharded_checkpoint(tmp_path / "nowhere.ckpt")


def test_last_falls_back_past_a_partial_sharded_checkpoint(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"
    sharded_checkpoint(checkpoints / "step-00000002.ckpt", step=2)
    last = sharded_checkpoint(checkpoints / "last.ckpt", step=3)
    assert usable_checkpoint("last", [checkpoints]) == str(last)
    shard_files(last)[0].write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert usable_checkpoint("last", [checkpoints]) == str(checkpoints / "step-00000002.ckpt")
    assert "last.ckpt is corrupt or partial" in caplog.text
    with pytest.raises(SftlabError, match=r"ckpt_path: cannot resume from .*last.ckpt: .*is incomplete"):
        check_explicit_checkpoint(str(last))
    check_explicit_checkpoint(str(checkpoints / "step-00000002.ckpt"))


def test_a_finished_folder_replaces_the_previous_checkpoint_whole(tmp_path):
    target = sharded_checkpoint(tmp_path / "last.ckpt", step=1)
    staging = sharded_checkpoint(tmp_path / ".last.ckpt.tmp-1-0", step=2)
    swap_in(staging, target)
    assert read_sharded_checkpoint(target)["global_step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
