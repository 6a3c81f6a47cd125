"""Helpers shared by the CLIs (no TensorFlow import, so flag errors come before any work)."""

from __future__ import annotations

import os
import platform
import sys
import tempfile

MODEL_FILES = ("config.json", "net.weights.h5")  # menet_tf.model.CONFIG_FILE, WEIGHTS_FILE (no TF import here)


def usage_error(prog: str, message: str, status: int = 2):
    """A bad flag: one line on stderr and exit, before any work (absl's UsageError prints the whole help)."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def check_writable(path: str, flag: str | None = None) -> None:
    """Create ``path`` if needed and prove it writable (a probe file), else ValueError naming the
    flag (when given) and the path. The probe's name is unique (``tempfile``): several processes may
    check the same folder at once (the workers of a multi-worker run), and one must never remove
    another's probe."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test_", dir=path)
        os.close(fd)
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


def resolve_models(prog: str, models) -> list[str]:
    """The model directories of a list flag holding shipped model names or model directories, each
    through :func:`resolve_model` (an unknown name or damaged shipped weights: one line, exit status 2)."""
    from menet_tf import pretrained

    def resolve(m):
        try:
            return pretrained.name_or_dir(m)
        except ValueError as e:
            usage_error(prog, str(e))

    return [resolve(m) for m in models]


def label_dirs(prog: str, flag: str, items) -> list[tuple[str, str]]:
    """A list flag of ``LABEL=FOLDER`` items (split at the last ``=``: a label may hold one, a folder rarely
    does) as (label, folder) pairs; an item without a label or an existing folder: one line naming
    ``--flag``, exit status 2."""
    out = []
    for item in items or []:
        label, sep, folder = item.rpartition("=")
        if not sep or not label.strip() or not os.path.isdir(folder):
            usage_error(prog, f"--{flag}: {item!r} is not 'label=existing folder'")
        out.append((label.strip(), folder))
    return out


def extra_dirs(prog: str, items) -> list[tuple[str, str]]:
    """``--extra_dirs=LABEL=FOLDER,...``: folders of outputs another tool de-rained (e.g.
    experiments.prenet_peer), one ``<input stem>.png`` per input, shown beside the models (:func:`label_dirs`)."""
    return label_dirs(prog, "extra_dirs", items)


def extra_output(folder: str, input_path: str, shape) -> "np.ndarray":
    """The output for ``input_path`` in an --extra_dirs folder (``<stem>.png``), checked to be ``shape``."""
    from menet_tf.imageio import read_image

    path = os.path.join(folder, os.path.splitext(os.path.basename(input_path))[0] + ".png")
    image = read_image(path)
    if image.shape != tuple(shape):
        raise ValueError(f"{path}: {image.shape[1]}x{image.shape[0]}, but the input is {shape[1]}x{shape[0]}")
    return image


def model_dir_problem(model_dir: str) -> str | None:
    """``--model_dir=DIR: no FILE there (not a trained model directory)`` for the first of
    :data:`MODEL_FILES` missing from ``model_dir``, else None."""
    for name in MODEL_FILES:
        if not os.path.isfile(os.path.join(model_dir, name)):
            return f"--model_dir={model_dir}: no {name} there (not a trained model directory)"
    return None


def rain_scale_problem(flag: str, value: str) -> str | None:
    """A rain scale flag's value must be ``auto`` or a number >= 1: the one-line problem, else None."""
    if value == "auto":
        return None
    try:
        if float(value) >= 1:
            return None
    except ValueError:
        pass
    return f"{flag}={value}: give a number >= 1 or 'auto'"


def cpu_description() -> str:
    """This machine's CPU model (from /proc/cpuinfo where there is one) and the cores this process may use."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return f"{model or 'CPU'}, {cores} cores available"
