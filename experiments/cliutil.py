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


def resolve_model(prog: str, model_dir: str | None, model: str | None, default: bool = False) -> str | None:
    """The model directory from a CLI's ``--model_dir`` / ``--model=NAME`` (a shipped model,
    :mod:`menet_tf.pretrained`); with ``default=True`` neither means the default shipped model. A bad
    combination, an unknown name or damaged shipped weights: one line and exit status 2."""
    from menet_tf import pretrained

    try:
        return pretrained.resolve(model_dir, model, default=default)
    except ValueError as e:
        usage_error(prog, str(e))
