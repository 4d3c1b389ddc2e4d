"""Where a split's data comes from: one or more sources, each with its own data (a path or Hub id, its
subset, split and revision), format (reader), field names, template, masking and weight.

`data.sources` lists them; `data.train_path` / `data.val_path` are the one-source shorthand. Keys a source
leaves out take the `data.*` value of the same name, so a mixture config only spells out what differs per
source. Sources come as plain dicts (a `TypedDict`), so a checkpoint's hyperparameters stay plain data;
`split_sources` turns them into `Source`s with every setting resolved and the masking strategy built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from sftlab.data.formats.base import DataFormat
from sftlab.data.formats.readers import FormatName
from sftlab.data.labels.masking import MaskingName, MaskingStrategy, make_strategy
from sftlab.errors import SftlabError

StoppingStrategy = Literal["first_exhausted", "all_exhausted"]

# The keys a source may set, whose default is the `data.*` key of the same name.
SOURCE_KEYS = ("split", "val_split", "subset", "revision", "format", "fields", "template", "masking")


class SourceSpec(TypedDict, total=False):
    """One entry of `data.sources` as written in a config (only `path` is required)."""

    path: str
    weight: float
    name: str
    val_path: str
    split: str
    val_split: str
    subset: str
    revision: str
    format: FormatName | DataFormat
    fields: dict[str, str]
    template: str
    masking: MaskingName | MaskingStrategy


@dataclass(frozen=True)
class Source:
    """One source of one split, every setting resolved: where its rows are (`path`, a file, folder, glob
    or Hub id; its `subset`, `split` and `revision`), how they are read (`format`, `fields`), rendered
    (`template`) and masked (`masking`), and its share of a mixture (`weight`). `key` names it in errors."""

    name: str
    path: str
    weight: float
    format: FormatName | DataFormat
    template: str
    masking: MaskingStrategy
    split: str = "train"
    subset: str | None = None
    revision: str | None = None
    fields: dict[str, str] | None = None
    key: str = "data.train_path"


def default_name(path: str) -> str:
    """A source's name from its path: the file's stem, the last folder before any glob character, or a
    Hub id's name."""
    parts = Path(path).parts
    globbed = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
    return Path(parts[globbed - 1]).stem if globbed else "source"


def _checked(spec: SourceSpec, index: int) -> SourceSpec:
    where = f"data.sources[{index}]"
    if not isinstance(spec, dict) or not spec.get("path"):
        raise SftlabError(f"{where}: give the source's path (a file, a folder, a glob or a Hub id)")
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise SftlabError(f"{where}: weight must be a number > 0, got {weight!r}")
    name = spec.get("name") or default_name(spec["path"])
    if not re.fullmatch(r"[\w.-]+", name):
        raise SftlabError(f"{where}: name {name!r} may hold only letters, digits, '_', '.' and '-' (it names metrics)")
    return {**spec, "name": name, "weight": float(weight)}


def split_sources(
    sources: list[SourceSpec] | None,
    train_path: str | None,
    val_path: str | None,
    defaults: dict[str, Any],
    val_masking: MaskingName | MaskingStrategy | None = None,
) -> dict[str, list[Source]]:
    """The sources of each split (`train`, `val`), from `data.sources` or the shorthand paths. `defaults`
    holds the `SOURCE_KEYS`; validation reads each source's `val_path` (else, with a `val_split`, its
    own path) at its `val_split` (default `train`), with `val_masking` where it is given."""
    if sources and (train_path or val_path):
        raise SftlabError("data.sources and data.train_path/val_path: give one or the other (a source has its own val_path)")
    specs = [_checked(spec, i) for i, spec in enumerate(sources)] if sources else []
    if not specs and (train_path or val_path):
        specs = [{"name": default_name(train_path or val_path), "path": train_path, "weight": 1.0, "val_path": val_path}]
    names = [spec["name"] for spec in specs]
    if len(set(names)) != len(names):
        raise SftlabError(f"data.sources: names must differ, got {names}; give each source a `name`")

    def source(spec: SourceSpec, index: int, split: str) -> Source | None:
        settings = {key: spec.get(key, defaults[key]) for key in SOURCE_KEYS}
        path, chosen, masking = spec.get("path"), settings["split"], settings["masking"]
        if split == "val":
            path, chosen, masking = (
                spec.get("val_path") or (settings["val_split"] and path),
                settings["val_split"] or "train",
                val_masking or masking,
            )
        if not path:
            return None
        key = f"data.sources[{index}].{'val_path' if split == 'val' else 'path'}" if sources else f"data.{split}_path"
        del settings["val_split"], settings["split"], settings["masking"]
        return Source(spec["name"], path, spec.get("weight", 1.0), masking=make_strategy(masking), split=chosen, key=key, **settings)

    return {split: [s for i, spec in enumerate(specs) if (s := source(spec, i, split))] for split in ("train", "val")}
