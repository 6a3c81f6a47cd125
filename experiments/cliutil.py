"""Helpers shared by the CLIs (no TensorFlow import, so flag errors come before any work)."""

from __future__ import annotations

import os
import sys


def usage_error(prog: str, message: str, status: int = 2):
    """A bad flag: one line on stderr and exit, before any work (absl's UsageError prints the whole help)."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def check_writable(path: str, flag: str | None = None) -> None:
    """Create ``path`` if needed and prove it writable (a probe file), else ValueError naming the
    flag (when given) and the path."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write_test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        where = f"{flag}: {path}" if flag else path
        raise ValueError(f"{where}: not writable ({e.strerror or e})") from None
