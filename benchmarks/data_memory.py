"""Peak resident memory of a training run per --cache mode, on a small and a 10x larger data set.

    python -m benchmarks.data_memory --data_dir=runs/bsds_rss2000 [--sizes 200,2000] [--steps 5]

For each size N (the first N pairs of --data_dir, linked into a temporary folder) and each cache mode it
runs ``python -m experiments.train`` (row lp, one epoch capped at --steps steps of batch 20 x 224 x 224,
--mixed_precision) as a child process and reads the child's peak RSS (``wait4``'s ru_maxrss). Every pair
is decoded and checked before the first step in every mode, so the run covers all of the data set's
loading; the steps are capped because a whole epoch of 2,000 pairs (1,000 steps) takes 7 minutes here.
Last line: {"peak_rss_mb": {"<mode>": {"<N>": MB}}, "growth": {"<mode>": rss(N_max) / rss(N_min)}}.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl import app, flags

from menet_tf import data as data_lib

flags.DEFINE_string("data_dir", None, "Pairs to take the subsets from (e.g. data_prep.synthesize output).")
flags.DEFINE_list("sizes", ["200", "2000"], "Numbers of pairs.")
flags.DEFINE_list("modes", ["memory", "disk", "none"], "Cache modes.")
flags.DEFINE_integer("steps", 5, "Training steps of the one epoch.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_rss_mb(cmd, env) -> float:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return usage.ru_maxrss / 1024  # Linux: kB


def main(argv):
    del argv
    pairs = data_lib.find_pairs(FLAGS.data_dir)
    sizes = [int(s) for s in FLAGS.sizes]
    if max(sizes) > len(pairs):
        raise app.UsageError(f"--data_dir has {len(pairs)} pairs, fewer than {max(sizes)}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = {m: {} for m in FLAGS.modes}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = os.path.join(tmp, f"pairs{n}")
            os.makedirs(folder)
            for k, (r, c) in enumerate(pairs[:n]):
                os.symlink(os.path.abspath(r), os.path.join(folder, f"rain-{k + 1}.png"))
                os.symlink(os.path.abspath(c), os.path.join(folder, f"norain-{k + 1}.png"))
            for mode in FLAGS.modes:
                model_dir = os.path.join(tmp, f"model_{mode}_{n}")
                cmd = [sys.executable, "-m", "experiments.train", "--flagfile=experiments/table1/lp.flags",
                       f"--data_dir={folder}", f"--model_dir={model_dir}", "--epochs=1",
                       f"--steps_per_epoch={FLAGS.steps}", f"--cache={mode}", "--mixed_precision"]
                result[mode][str(n)] = peak_rss_mb(cmd, env)
                shutil.rmtree(model_dir, ignore_errors=True)
                print(f"{mode:7s} {n:5d} pairs: peak RSS {result[mode][str(n)]:8.0f} MB", flush=True)
    lo, hi = str(min(sizes)), str(max(sizes))
    print(json.dumps({"peak_rss_mb": result, "steps": FLAGS.steps,
                      "growth": {m: result[m][hi] / result[m][lo] for m in FLAGS.modes}}, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
