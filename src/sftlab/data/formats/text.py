"""Pretraining text: one document per record (`text`, or the field `data.fields` maps it to), or per line
of a `.txt` file. Not conversations: documents are tokenized, concatenated and cut into blocks."""

from __future__ import annotations

from sftlab.data.formats.base import DataFormat


class Text(DataFormat):
    """`format: text`: every token is trained (pretraining)."""

    name = "text"
    columns = ("text",)
