"""What a run's training data is, kept in its checkpoints: the saved position in an epoch means
something only on the same data, so a resume on other data is caught (unless the user accepts it)."""

from __future__ import annotations

import hashlib

import datasets

from sftlab.data.formats import readers
from sftlab.data.sources.build import OpenSource, Rows
from sftlab.errors import SftlabError


def data_identity(sources: list[OpenSource], built: list[Rows], settings: tuple) -> dict[str, object]:
    """A hash of the sources (files and their sizes, slices, formats, templates, maskings, weights) and the
    data settings, and the number of rows (none for streams: not known before reading them)."""
    identity = [(repr(opened.source), readers.file_names_and_sizes(list(opened.files.files)), opened.files.slice) for opened in sources]
    rows = [len(rows.data) if isinstance(rows.data, datasets.Dataset) else None for rows in built]
    digest = hashlib.sha256(repr((identity, settings)).encode()).hexdigest()[:16]
    return {"data": digest, "rows": None if None in rows else sum(rows)}


def check_same_data(saved: dict[str, object] | None, now: dict[str, object] | None, accept_changed: bool) -> None:
    if saved and now and saved != now and not accept_changed:
        raise SftlabError(
            f"ckpt_path: the training data changed since the checkpoint was written ({now['rows']} rows now, "
            f"{saved['rows']} then; or other files, sizes or data settings): resume with the same data, or set "
            "data.accept_changed_data true to go on from the saved position with the new data"
        )
