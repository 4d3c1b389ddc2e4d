"""One run per folder: `sftlab fit` holds an exclusive lock on `<trainer.default_root_dir>/.sftlab-run.lock`
for its whole life, so a second fit into the same folder (which would share the logger version, overwrite
the config and mix checkpoints and exports) is a one-line error naming the holder's pid and host.

The lock is the kernel's (`flock`): it goes away with the process however it ends, kill -9 included, so a
lock file left by a dead run is stale by construction and simply taken over (and said). On NFS, Linux maps
`flock` to NFS byte-range locks, so runs on different nodes sharing a folder see each other too.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import IO

from sftlab.errors import SftlabError

log = logging.getLogger(__name__)

LOCK_NAME = ".sftlab-run.lock"


def lock_run_folder(folder: Path) -> IO[str]:
    """Take the folder's run lock (kept while the returned file stays open), or raise naming its holder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / LOCK_NAME).open("a+", encoding="utf-8")
    except OSError as err:
        raise SftlabError(f"trainer.default_root_dir: cannot use {folder}: {err.strerror}") from None
    handle.seek(0)
    previous = handle.read().strip()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        holder = json.loads(previous) if previous.startswith("{") else {}
        raise SftlabError(
            f"trainer.default_root_dir: {folder} is in use by another run (pid {holder.get('pid', '?')} on host "
            f"{holder.get('host', '?')}, since {holder.get('since', '?')}): wait for it to end, or choose another folder"
        ) from None
    if previous:
        log.info("%s: the run that held it before has ended (%s)", folder / LOCK_NAME, previous)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
    handle.flush()
    return handle
