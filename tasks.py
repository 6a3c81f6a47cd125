#!/usr/bin/env python3
"""Fresh-clone entry points; needs nothing but Python 3.11.

    python3 tasks.py demo   # make .venv, pip install -e ., run the ablation demo on built-in data
    python3 tasks.py test   # make .venv, pip install -e .[test], run the test suite
    python3 tasks.py bench  # run the benchmarks (each prints one JSON line last)

Extra arguments after the task name are passed on (to pytest for `test`, to the demo for `demo`).
"""

import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get("MENET_VENV", os.path.join(ROOT, ".venv"))
PY = os.path.join(VENV, "bin", "python")


def run(*cmd):
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc:
        sys.exit(rc)


def ensure_env(extras: str = "") -> None:
    if not os.path.exists(PY):
        print(f"creating virtualenv {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = os.path.join(VENV, f".installed{extras}")
    stamp = max(os.path.getmtime(os.path.join(ROOT, f)) for f in ("setup.cfg", "setup.py"))
    if not os.path.exists(marker) or os.path.getmtime(marker) < stamp:
        run(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
        run(PY, "-m", "pip", "install", "-q", "-e", f".{extras}")
        open(marker, "w").close()


def main(argv):
    task, rest = (argv[0] if argv else "test"), argv[1:]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if task == "test":
        ensure_env("[test]")
        # two pytest workers (pytest-xdist): 12-15 min instead of 21 on the 2-core machines (most tests wait on
        # TensorFlow's start-up in subprocesses); give -n yourself to change it (-n 0: one process)
        workers = [] if any(a.startswith(("-n", "--numprocesses")) for a in rest) else ["-n", "2"]
        run(PY, "-m", "pytest", "-q", *workers, *rest)
    elif task == "demo":
        ensure_env()
        run(PY, "-m", "experiments.ablation", "--preset=demo", *rest)
    elif task == "bench":
        ensure_env()
        for b in ("train_step", "inference", "data_pipeline"):
            run(PY, "-m", f"benchmarks.{b}", *rest)
    else:
        sys.exit(f"unknown task {task!r}: use demo, test or bench")


if __name__ == "__main__":
    main(sys.argv[1:])
