"""Hugging Face Hub ids (`org/name`) for models, tokenizers and data sets, resolved to local folders.

One rule everywhere a model, tokenizer or data set is named: an existing local path is read as it is; a
name of the form `org/name` that is no local path is a Hub repository, resolved through `huggingface_hub`
to its snapshot folder in the user's cache (`HF_HOME`), downloaded only when it is not there and the
network may be used (`HF_HUB_OFFLINE=1` forbids it). The folder is then read exactly as a local folder
is, so a repository put in the cache by `huggingface-cli download` (on a cluster's login node, say) and
one downloaded by sftlab are the same thing. The token comes from the environment (`HF_TOKEN`, or
`huggingface-cli login`) through `huggingface_hub` and is never logged.

Why not `datasets.load_dataset("org/name")`: with `HF_HUB_OFFLINE=1` it does not read a data set that
`huggingface-cli download --repo-type dataset` put in the cache ("Couldn't reach 'org/name' on the Hub
(OfflineModeIsEnabled)"); `snapshot_download` does.

This module imports nothing of sftlab's but its errors: every package may use it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from sftlab.errors import SftlabError

log = logging.getLogger(__name__)

RepoType = Literal["model", "dataset"]

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# A name ending like a file is a path that does not exist, not a repository.
FILE_SUFFIXES = {".json", ".jsonl", ".parquet", ".arrow", ".txt", ".csv", ".gguf", ".safetensors", ".bin", ".jinja", ".ckpt", ".yaml"}
SNAPSHOT = re.compile(r"(?P<kind>models|datasets)--(?P<repo>.+?)/snapshots/(?P<commit>[0-9a-f]{40})")

# What a model needs from its repository (not the other weight formats many repositories also hold).
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py", "*.tiktoken", "tokenizer*"]
TOKENIZER_FILES = ["*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken", "tokenizer*"]


@dataclass(frozen=True)
class HubRepo:
    """A repository and the commit its files came from: what an export records so that it reloads elsewhere."""

    id: str
    revision: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "revision": self.revision}


def is_hub_id(name: str) -> bool:
    """`org/name` that is no local file or folder (and does not end like a file name)."""
    return HUB_ID.fullmatch(name) is not None and Path(name).suffix not in FILE_SUFFIXES and not Path(name).expanduser().exists()


def origin(path: str | Path) -> HubRepo | None:
    """The repository and commit of a path inside the Hugging Face cache (`models--org--name/snapshots/<commit>`)."""
    found = SNAPSHOT.search(Path(path).expanduser().resolve().as_posix())
    return HubRepo(found["repo"].replace("--", "/"), found["commit"]) if found else None


def model_folder(source: str, revision: str | None = None, key: str = "model.causal_lm.source") -> Path:
    """A model's local folder: `source` itself, or the snapshot of the Hub model `source` (its weights as
    safetensors, else as PyTorch `.bin` files)."""
    if not is_hub_id(source):
        return Path(source).expanduser()
    folder = resolve(source, "model", revision, key, tuple(MODEL_FILES))
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        folder = resolve(source, "model", revision, key, ("*.bin",))
    return folder


def tokenizer_folder(name: str, key: str = "data.tokenizer") -> Path:
    """A tokenizer's local folder or file: `name` itself, or the snapshot of the Hub repository `name`
    (`org/name@revision` pins a revision; without one, the tokenizer follows `main`)."""
    repo, _, revision = name.partition("@")
    if not is_hub_id(repo):
        return Path(name).expanduser()
    return resolve(repo, "model", revision or None, key, tuple(TOKENIZER_FILES))


def dataset_folder(path: str, revision: str | None = None, key: str = "data.train_path") -> Path | None:
    """The snapshot folder of the Hub data set `path`, or None when `path` is no Hub id (a local path)."""
    return resolve(path, "dataset", revision, key) if is_hub_id(path) else None


def resolve(repo_id: str, kind: RepoType, revision: str | None, key: str, patterns: tuple[str, ...] | None = None) -> Path:
    """The snapshot folder of a repository: from the cache, else downloaded (unless offline); a user's
    mistake is a one-line SftlabError saying which it is and what to do (`key` names the setting)."""
    return _snapshot(repo_id, kind, revision, key, patterns, constants.HF_HUB_CACHE)


@lru_cache(maxsize=64)
def _snapshot(repo_id: str, kind: RepoType, revision: str | None, key: str, patterns: tuple[str, ...] | None, cache: str) -> Path:
    """`resolve`, once per process and cache for each repository (a run names its model several times)."""
    where = f"{key}: {'data set' if kind == 'dataset' else 'model'} {repo_id!r}" + (f" (revision {revision!r})" if revision else "")
    download = f"huggingface-cli download{' --repo-type dataset' if kind == 'dataset' else ''} {repo_id}" + (
        f" --revision {revision}" if revision else ""
    )
    try:
        folder = snapshot_download(
            repo_id, repo_type=kind, revision=revision, cache_dir=cache, allow_patterns=list(patterns) if patterns else None
        )
    except GatedRepoError:
        raise SftlabError(
            f"{where} is gated on the Hugging Face Hub: accept its conditions at {constants.ENDPOINT}/"
            f"{'datasets/' if kind == 'dataset' else ''}{repo_id} and log in (huggingface-cli login, or set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise SftlabError(f"{where}: the repository has no such revision (a branch, tag or commit)") from None
    except RepositoryNotFoundError:
        raise SftlabError(
            f"{where} is neither a local file or folder nor a {kind} repository on the Hugging Face Hub "
            "(a private one needs a login: huggingface-cli login, or set HF_TOKEN)"
        ) from None
    except IncompleteSnapshotError:
        raise SftlabError(
            f"{where} is only partly in the Hugging Face cache ({constants.HF_HUB_CACHE}): run `{download}` to complete it"
        ) from None
    except LocalEntryNotFoundError as err:
        if constants.HF_HUB_OFFLINE:
            raise SftlabError(
                f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}), nor a local file or folder, and HF_HUB_OFFLINE=1 "
                "forbids downloading it: "
                f"run `{download}` where the network is reachable (same HF_HOME), or unset HF_HUB_OFFLINE"
            ) from None
        cause = type(err.__cause__).__name__ if err.__cause__ else "no connection"
        raise SftlabError(
            f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}), nor a local file or folder, and the Hub cannot be "
            f"reached ({cause}): "
            f"run `{download}` where it can"
        ) from None
    except HFValidationError:
        raise SftlabError(f"{where} is not a valid Hub repository id (org/name)") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        raise SftlabError(f"{where}: the Hugging Face Hub answered HTTP {status}; try again later, or `{download}`") from None
    log.info("%s %s: %s", kind, repo_id, folder)
    return Path(folder)
