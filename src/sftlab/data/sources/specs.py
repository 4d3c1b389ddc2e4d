"""Where a split's data comes from: one or more sources, each with its own files, format, template,
masking and weight.

`data.sources` lists them (`{path, weight, format, template, masking, prompt_loss_weight, text_field, name, val_path}`);
`data.train_path` / `data.val_path` are the one-source shorthand. Keys a source leaves out take the
`data.*` value of the same name, so a mixture config only spells out what differs per source. Sources
come as plain dicts (a `TypedDict`), so a checkpoint's hyperparameters stay plain data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

from sftlab.data.formats.readers import Format
from sftlab.data.labels.masking import MaskingName, MaskingStrategy, check_prompt_loss_weight, make_strategy
from sftlab.errors import SftlabError

StoppingStrategy = Literal["first_exhausted", "all_exhausted"]


class SourceSpec(TypedDict, total=False):
    """One entry of `data.sources` as written in a config (only `path` is required)."""

    path: str
    weight: float
    format: Format
    template: str
    masking: MaskingName | MaskingStrategy
    prompt_loss_weight: float
    text_field: str
    name: str
    val_path: str


@dataclass(frozen=True)
class Source:
    """One source of one split, every setting resolved."""

    name: str
    path: str
    weight: float
    format: Format
    template: str
    masking: MaskingName | MaskingStrategy
    text_field: str
    # Out of the repr, which identifies the data of a checkpoint: `strategy`'s repr has it where it is not 0.
    prompt_loss_weight: float = field(default=0.0, repr=False)

    @property
    def strategy(self) -> MaskingStrategy:
        """The masking strategy of this source, with its prompt loss weight."""
        return make_strategy(self.masking, self.prompt_loss_weight)


def default_name(path: str) -> str:
    """A source's name from its path: the file's stem, or the last folder before any glob character."""
    parts = Path(path).parts
    globbed = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
    return Path(parts[globbed - 1]).stem if globbed else "source"


def _checked(spec: SourceSpec, index: int) -> SourceSpec:
    where = f"data.sources[{index}]"
    if not isinstance(spec, dict) or not spec.get("path"):
        raise SftlabError(f"{where}: give the source's path (a file, a folder or a glob)")
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise SftlabError(f"{where}: weight must be a number > 0, got {weight!r}")
    check_prompt_loss_weight(spec.get("prompt_loss_weight", 0.0), f"{where}: prompt_loss_weight")
    name = spec.get("name") or default_name(spec["path"])
    if not re.fullmatch(r"[\w.-]+", name):
        raise SftlabError(f"{where}: name {name!r} may hold only letters, digits, '_', '.' and '-' (it names metrics)")
    return {**spec, "name": name, "weight": float(weight)}


def split_sources(
    sources: list[SourceSpec] | None,
    train_path: str | None,
    val_path: str | None,
    defaults: dict,
    val_masking: MaskingName | MaskingStrategy | None = None,
) -> dict[str, list[Source]]:
    """The sources of each split (`train`, `val`), from `data.sources` or the shorthand paths.
    `defaults` holds `format`, `template`, `masking`, `text_field` and `prompt_loss_weight`; validation uses
    `val_masking` where it is given."""
    if sources and (train_path or val_path):
        raise SftlabError("data.sources and data.train_path/val_path: give one or the other (a source has its own val_path)")
    specs = [_checked(spec, i) for i, spec in enumerate(sources)] if sources else []
    if not specs and (train_path or val_path):
        specs = [{"name": default_name(train_path or val_path), "path": train_path, "weight": 1.0, "val_path": val_path}]
    names = [spec["name"] for spec in specs]
    if len(set(names)) != len(names):
        raise SftlabError(f"data.sources: names must differ, got {names}; give each source a `name`")
    keys = ("format", "template", "masking", "text_field", "prompt_loss_weight")

    def source(spec: SourceSpec, path: str, masking: MaskingName | MaskingStrategy | None = None) -> Source:
        settings = {key: spec.get(key, defaults[key]) for key in keys}
        return Source(spec["name"], path, spec.get("weight", 1.0), **{**settings, "masking": masking or settings["masking"]})

    return {
        "train": [source(spec, spec["path"]) for spec in specs if spec.get("path")],
        "val": [source(spec, spec["val_path"], val_masking) for spec in specs if spec.get("val_path")],
    }
