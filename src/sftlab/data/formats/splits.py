"""Which files and rows a source reads: `path` (a file, a glob, a folder, a `save_to_disk` folder or a Hub
data set), its `subset` and `split`, and a slice of the split (`train[:5%]`, `train[100:200]`).

A Hub id is resolved to its snapshot folder (`sftlab.hub`) and read exactly as a local folder is: the
folder's README configs (subsets) and file names give its splits, as `datasets` reads them
(`datasets.load_dataset_builder`, which only lists files here); a folder without split names is one
split, `train`. A file or a glob is one split. Slices are `datasets`' split syntax
(`datasets.ReadInstruction`), over the split's rows in file order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import datasets
from huggingface_hub import DatasetCard

from sftlab import hub
from sftlab.data.formats import containers
from sftlab.data.formats.files import resolve_files
from sftlab.errors import DataError, SftlabError

SPLIT = re.compile(r"(?P<name>[\w.-]+)(?P<slice>\[[^\[\]]*\])?")


@dataclass(frozen=True)
class DataFiles:
    """A split's files, in reading order, and the slice of its rows to read (`""`: all)."""

    files: tuple[Path, ...]
    slice: str = ""

    def rows(self) -> list[tuple[Path, int, int | None]]:
        """Each file with the range of its rows the slice takes (`(file, 0, None)`: all of them)."""
        if not self.slice:
            return [(file, 0, None) for file in self.files]
        counts = [containers.count(file) for file in self.files]
        (taken,) = datasets.ReadInstruction.from_spec(f"split{self.slice}").to_absolute({"split": sum(counts)})
        ranges, offset = [], 0
        for file, rows in zip(self.files, counts):
            ranges.append((file, min(max(taken.from_ - offset, 0), rows), min(max(taken.to - offset, 0), rows)))
            offset += rows
        return ranges


def parse_split(split: str, key: str) -> tuple[str, str]:
    """`train[:5%]` -> (`train`, `[:5%]`)."""
    found = SPLIT.fullmatch(split)
    if found is None:
        raise SftlabError(f"{key}: the split {split!r} is no split name, optionally sliced (train, train[:5%], test[100:200])")
    if found["slice"]:
        try:
            datasets.ReadInstruction.from_spec(f"split{found['slice']}")
        except (ValueError, AssertionError) as err:
            raise SftlabError(f"{key}: the split {split!r}: {err}") from None
    return found["name"], found["slice"] or ""


def data_files(
    path: str,
    split: str = "train",
    subset: str | None = None,
    revision: str | None = None,
    max_files: int | None = None,
    key: str = "data.train_path",
) -> DataFiles:
    """The files of `split` (sliced) of the data at `path` (a Hub id at `revision`), capped at `max_files`."""
    name, piece = parse_split(split, key)
    folder = hub.dataset_folder(path, revision, key) or Path(path).expanduser()
    if folder.is_dir():
        files = split_files(folder, name, subset, path)
    else:
        files = resolve_files(path)
        if name != "train":
            raise DataError(path, f"a file or a glob is one split: there is no split {name!r} (give a slice of it: train[:5%])")
    return DataFiles(tuple(files[:max_files] if max_files else files), piece)


def split_files(folder: Path, name: str, subset: str | None, path: str) -> list[Path]:
    """The files of split `name` of a folder (a `save_to_disk` one, or laid out as Hub data sets are)."""
    if (folder / "dataset_dict.json").is_file():  # save_to_disk of a DatasetDict: a folder per split
        splits = json.loads((folder / "dataset_dict.json").read_text())["splits"]
        if name not in splits:
            raise DataError(path, f"no split {name!r} (splits: {', '.join(splits)}); set the split")
        return saved_files(folder / name)
    if (folder / "state.json").is_file():  # save_to_disk of a Dataset: one split
        return saved_files(folder)
    try:
        builder = datasets.load_dataset_builder(str(folder), name=subset)
    except datasets.data_files.EmptyDatasetError:
        raise DataError(path, f"folder holds no data files ({', '.join(containers.KINDS)})") from None
    except ValueError as err:  # an unknown config name (subset)
        raise DataError(path, f"data.subset: {err}") from None
    splits = {str(split): [Path(file) for file in files] for split, files in builder.config.data_files.items()}
    if name not in splits:
        raise DataError(path, f"no split {name!r} (splits: {', '.join(splits)}); set the split")
    _check_nothing_left_out(folder, splits, path)
    return splits[name]


def saved_files(folder: Path) -> list[Path]:
    """The Arrow files of a `save_to_disk` folder, in order."""
    state = json.loads((folder / "state.json").read_text())
    return [folder / item["filename"] for item in state["_data_files"]]


def _check_nothing_left_out(folder: Path, splits: dict[str, list[Path]], path: str) -> None:
    """A folder whose data files are of several kinds is read by `datasets` as one kind only: without a
    README config that chooses its files, the others would be left out silently, so it is an error."""
    readme = folder / "README.md"
    if readme.is_file() and DatasetCard.load(readme).data.to_dict().get("configs"):
        return
    chosen = {file.resolve() for files in splits.values() for file in files}
    present = [
        file
        for file in sorted(folder.rglob("*"))
        if file.suffix in containers.KINDS and not file.relative_to(folder).parts[0].startswith(".")
    ]
    left = [file for file in present if file.is_file() and file.resolve() not in chosen]
    if left:
        kinds = sorted({file.suffix for file in present})
        raise DataError(
            path,
            f"the folder holds data files of several kinds ({', '.join(kinds)}), and one folder is read as one kind: "
            f"{left[0].name} would be left out; keep one kind per folder, or name the files with a glob",
        )
