"""Progress bars: keras.utils.Progbar, live on a terminal, one summary line when output is a log file
(Keras' live bar writes every update, with colour codes, into non-terminal output)."""

from __future__ import annotations

import sys


def progress_bar(total: int, unit_name: str = "step", stateful_metrics=None):
    import keras

    interactive = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    return keras.utils.Progbar(total, unit_name=unit_name, stateful_metrics=stateful_metrics,
                               verbose=1 if interactive else 2)
