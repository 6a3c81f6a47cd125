"""Path checks shared by the CLIs (no TensorFlow import, so flag errors come before any work)."""

from __future__ import annotations

import os


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
