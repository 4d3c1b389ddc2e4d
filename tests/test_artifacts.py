"""What runs leave behind: files written whole or not at all (beside their target, with a plain file's
mode), folders only replaced when sftlab exported them, checkpoints read with `weights_only`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import torch

from sftlab.artifacts import (
    EXPORT_INFO,
    atomic_file,
    read_checkpoint,
    remove_stale_temporaries,
    write_folder,
    write_text_atomic,
)
from sftlab.errors import SftlabError
from sftlab.training.checkpoints import AtomicCheckpointIO


def test_an_atomic_write_keeps_the_mode_a_plain_write_would_have(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "result.json", "{}\n")
        (tmp_path / "plain.json").write_text("{}\n")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "result.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("good")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))
    with pytest.raises(RuntimeError), atomic_file(target) as file:
        file.write("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "good" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_the_temporary_file_is_beside_its_target_whatever_tmpdir_is(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "other-filesystem"))
    with atomic_file(tmp_path / "folder" / "x.bin", "wb") as file:
        file.write(b"1")
        assert [p.name for p in (tmp_path / "folder").iterdir()] == [f".x.bin.tmp-{os.getpid()}-0"]
    assert (tmp_path / "folder" / "x.bin").read_bytes() == b"1"


def test_checkpoint_io_writes_whole_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "step-1.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    assert torch.equal(torch.load(target)["state_dict"]["w"], torch.ones(3))

    def dies_halfway(obj, file, **kwargs):
        file.write(b"x" * 65536)
        raise KeyboardInterrupt  # what a kill looks like to the writer

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {}}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in target.parent.iterdir()] == ["step-1.ckpt"]


def test_temporaries_of_killed_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / f".last.ckpt.tmp-{dead}-0").write_bytes(b"partial")
    (tmp_path / f".hf.tmp-{dead}-0").mkdir()
    (tmp_path / f".step.ckpt.tmp-{os.getpid()}-0").write_bytes(b"being written")
    (tmp_path / ".hidden-but-not-ours").write_text("user's")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([f".last.ckpt.tmp-{dead}-0", f".hf.tmp-{dead}-0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".step.ckpt.tmp-{os.getpid()}-0", ".hidden-but-not-ours"])


def _fill(folder):
    (folder / EXPORT_INFO).write_text("{}\n")
    (folder / "weights.bin").write_bytes(b"new")


def test_a_folder_sftlab_did_not_export_is_never_replaced(tmp_path):
    precious = tmp_path / "mydata"
    precious.mkdir()
    (precious / "precious.txt").write_text("a user's file")
    with pytest.raises(SftlabError, match="mydata is a folder sftlab did not export"):
        write_folder(precious, _fill)
    assert (precious / "precious.txt").read_text() == "a user's file"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SftlabError, match="afile is a file"):
        write_folder(tmp_path / "afile", _fill)


def test_an_export_replaces_an_earlier_export_or_an_empty_folder_whole(tmp_path):
    target = tmp_path / "hf"
    target.mkdir()
    write_folder(target, _fill)  # empty: nothing to lose
    (target / "stale.txt").write_text("from the earlier export")
    write_folder(target, _fill)
    assert sorted(p.name for p in target.iterdir()) == [EXPORT_INFO, "weights.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no staging or retired folder left


def test_a_failed_export_leaves_the_earlier_one(tmp_path):
    target = write_folder(tmp_path / "hf", _fill)

    def fails(folder):
        (folder / "partial").write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(SftlabError, match="No space left"):
        write_folder(target, fails)
    assert sorted(p.name for p in target.iterdir()) == [EXPORT_INFO, "weights.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


class Payload:
    """Any pickled object: loading it would run code."""


def test_checkpoints_are_read_as_data_not_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "object": Payload()}, path)
    with pytest.raises(SftlabError, match="cannot read checkpoint"):
        read_checkpoint(path)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "loops": {}}, tmp_path / "ok.ckpt")
    assert set(read_checkpoint(tmp_path / "ok.ckpt")) == {"state_dict", "loops"}
