"""Keys and class paths that moved are one-line errors naming the new place, in configs and on the command line."""

from __future__ import annotations

import importlib

import pytest

from sftlab.errors import SftlabError
from sftlab.training.moved_keys import check_config_file, check_moved_keys, moved_class


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("sftlab.data.masking.TrainParts", "sftlab.data.labels.masking.TrainParts"),
        ("sftlab.data.readers.load_text", "sftlab.data.formats.readers.load_text"),
        ("sftlab.data.templates.ChatTemplate", "sftlab.data.rendering.templates.ChatTemplate"),
        ("sftlab.data.mixture.Mixture", "sftlab.data.sources.mixture.Mixture"),
        ("sftlab.data.sources.SourceSpec", "sftlab.data.sources.specs.SourceSpec"),
    ],
)
def test_a_class_path_into_a_moved_data_module_names_its_new_home(old, new):
    assert moved_class(old) == new
    module, name = new.rsplit(".", 1)
    assert hasattr(importlib.import_module(module), name)


def test_current_class_paths_are_not_moved():
    for path in ("sftlab.data.labels.masking.TrainParts", "sftlab.data.sources.build.Rows", "sftlab.data.datamodule.SFTDataModule"):
        assert moved_class(path) is None


def test_a_moved_class_path_in_a_config_or_a_flag_is_an_error(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text("data:\n  masking:\n    class_path: sftlab.data.masking.LaterTurns\n")
    with pytest.raises(SftlabError, match="sftlab.data.masking.LaterTurns moved to sftlab.data.labels.masking.LaterTurns"):
        check_config_file(config)
    with pytest.raises(SftlabError, match="moved to sftlab.data.labels.masking.TrainParts"):
        check_moved_keys(["fit", "--data.masking=sftlab.data.masking.TrainParts"])


def test_data_keys_taken_apart_into_typed_parts_name_their_new_place(tmp_path):
    with pytest.raises(SftlabError, match="^data.group_by_length moved to data.batching.group_by_length$"):
        check_moved_keys(["fit", "--data.group_by_length", "true"])
    config = tmp_path / "old.yaml"
    config.write_text("data:\n  train_path: x.jsonl\n  text_field: content\n")
    with pytest.raises(SftlabError, match=r"old.yaml: data.text_field moved to data.fields \(e.g. --data.fields '\{text: content\}'"):
        check_config_file(config)
    config.write_text("data:\n  sources:\n    - {path: a.jsonl, text_field: body}\n")
    with pytest.raises(SftlabError, match=r"data.sources\[0\].text_field moved to data.sources\[0\].fields \(\{text: NAME\}\)"):
        check_config_file(config)
    check_moved_keys(["fit", "--data.batching.batch_size", "2", "--data.fields", "{text: content}"])  # the new places pass
