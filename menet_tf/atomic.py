"""Files that appear whole or not at all: write under a temporary name in the same folder, then rename.

A process killed while writing (SIGKILL, out of memory, a scheduler's time limit) then leaves the old file
or none, never a truncated one, plus at most a temporary ``.partial-<host>-<pid>-<name>`` beside it, which
:func:`remove_partials` deletes (training does so before resuming). The temporary name ends with the final
name, so writers that choose a format by extension (Keras' ``.weights.h5``, PIL, matplotlib) still work.
A rename within one folder is atomic on POSIX file systems; a folder (a SavedModel) is swapped with two
renames, so a crash between them leaves the new folder under its temporary name and no folder under the
final name, which a re-run writes again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sys
from typing import IO, Iterator

PARTIAL_PREFIX = ".partial-"
CRASH_ENV = "MENET_CRASH_AT"


def crash_point(name: str, index: int | None) -> None:
    """Fault injection for the crash-consistency tests: with ``MENET_CRASH_AT="<name>@<index>[,...]"``
    the process kills itself with SIGKILL on reaching the point ``name`` for the ``index``-th time unit
    (a 0-based epoch in training, image in ``derain``). Unset (always, outside tests) it does nothing."""
    spec = os.environ.get(CRASH_ENV)
    if spec and index is not None and f"{name}@{index}" in spec.split(","):
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def partial_path(path: str) -> str:
    """The temporary name used while ``path`` is written: ``<dir>/.partial-<host>-<pid>-<name>``, unique
    to this process even when the workers of several machines write into one shared folder (the disk
    cache of a multi-worker run)."""
    folder, name = os.path.split(os.path.abspath(path))
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"
    return os.path.join(folder, f"{PARTIAL_PREFIX}{host}-{os.getpid()}-{name}")


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s content to (a file, or a folder the caller creates);
    on success it replaces ``path`` (a file or folder) in one rename; on an exception it is removed."""
    tmp = partial_path(path)
    _remove(tmp)
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"{path}: nothing was written")
        if os.path.isdir(tmp) and os.path.isdir(path) and not os.path.islink(path):
            old = partial_path(path) + ".old"
            _remove(old)
            os.replace(path, old)  # a folder cannot replace a non-empty folder in one rename
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(os.path.dirname(os.path.abspath(path)))
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` whose content appears at ``path`` only once the block ends without error
    (flushed and fsync'ed first)."""
    if not any(m in mode for m in "wx"):
        raise ValueError(f"atomic_write writes a new file; mode {mode!r} has no 'w'")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def remove_partials(folder: str, legacy: bool = False) -> list[str]:
    """Delete the temporaries (``.partial-*``) that killed writers left in ``folder`` (not recursive);
    returns their names. ``legacy``: also the names this project's model_dir writers used before this
    module (``tmp_net.weights.h5``, ``config.json.tmp``, ``history.csv.tmp``)."""
    if not os.path.isdir(folder):
        return []
    old = ("tmp_net.weights.h5", "config.json.tmp", "history.csv.tmp") if legacy else ()
    removed = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(PARTIAL_PREFIX) or name in old:
            _remove(os.path.join(folder, name))
            removed.append(name)
    return removed
