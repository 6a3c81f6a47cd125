"""Keep TensorFlow's start-up noise out of the CLIs' output.

Importing TensorFlow 2.21 writes C++ log lines straight to file descriptor 2 before its logging is set
up (``All log messages before absl::InitializeLog() ...``, oneDNN, CUDA stubs, CPU features, and on a
machine without a GPU a ``failed call to cuInit`` error); ``TF_CPP_MIN_LOG_LEVEL`` no longer silences
them. The CLI packages (``experiments``, ``data_prep``) call :func:`install`: the first
``import tensorflow`` then runs with file descriptor 2 captured, together with the device listing that
prints the rest, and afterwards every captured line that is not such noise (:func:`keep_line`) is
written to stderr, in order; if the import fails, every line is. A user who sets
``TF_CPP_MIN_LOG_LEVEL`` (``=0`` to see everything) gets TensorFlow's own behaviour, unfiltered.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

USER_SWITCH = "TF_CPP_MIN_LOG_LEVEL"

_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "  # C++ INFO and WARNING records
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
)
_NO_CUDA_DRIVER = re.compile(r"I\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers")
_CUINIT_ERROR = re.compile(r"E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit")


def keep_line(line: str, no_cuda_driver: bool) -> bool:
    """Whether a line TensorFlow wrote while it was imported is worth showing: not a C++ INFO/WARNING
    record or its known continuation, and not the cuInit error of a machine that TensorFlow already
    found to have no CUDA driver (``no_cuda_driver``). Other errors and all other text are kept."""
    if _NOISE.match(line):
        return False
    return not (no_cuda_driver and _CUINIT_ERROR.match(line))


def filter_lines(text: str) -> str:
    """``text`` without the lines :func:`keep_line` drops (line ends kept)."""
    lines = text.splitlines(keepends=True)
    no_driver = any(_NO_CUDA_DRIVER.match(line) for line in lines)
    return "".join(line for line in lines if keep_line(line.rstrip("\r\n"), no_driver))


class _Capture:
    """File descriptor 2 redirected to a temporary file between ``start`` and ``stop``."""

    def start(self):
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)

    def stop(self) -> str:
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self.saved, 2)
            os.close(self.saved)
        self.file.seek(0)
        text = self.file.read().decode("utf-8", "replace")
        self.file.close()
        return text


class _QuietImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A finder for the top-level ``tensorflow`` package only: it finds it through the other finders and
    runs the real loader under :class:`_Capture` (then gives the module its real loader back)."""

    def __init__(self):
        self.searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or self.searching:
            return None
        self.searching = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.searching = False
        uninstall()  # once: later imports of tensorflow find it in sys.modules
        if spec is None or spec.loader is None:
            return spec
        self.loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        capture = _Capture()
        capture.start()
        try:
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # prints the rest (CUDA probing) now, inside the capture
        except BaseException:
            sys.stderr.write(capture.stop())
            raise
        finally:
            module.__loader__ = module.__spec__.loader = self.loader
        sys.stderr.write(filter_lines(capture.stop()))
        sys.stderr.flush()


_installed: list[_QuietImport] = []


def install() -> None:
    """Filter the noise of the first ``import tensorflow`` of this process, unless TensorFlow is already
    imported or the user set ``TF_CPP_MIN_LOG_LEVEL``; and keep absl's INFO records (data layouts found,
    checkpoints written) out of the output unless the user passes ``--verbosity=0``."""
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # a --verbosity flag, parsed later by app.run, overrides it
    if _installed or "tensorflow" in sys.modules or USER_SWITCH in os.environ:
        return
    finder = _QuietImport()
    _installed.append(finder)
    sys.meta_path.insert(0, finder)


def uninstall() -> None:
    while _installed:
        finder = _installed.pop()
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
