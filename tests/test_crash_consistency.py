"""A training run killed (SIGKILL) at any moment and re-run ends with the same model_dir as a run never
killed: net.weights.h5 and the checkpoint to 1e-6 with --deterministic, every epoch's history row once,
TensorBoard equal to the history, no temporaries left. The kills are forced at every dangerous point of
the epoch's commit (experiments.training.CRASH_POINTS, selected with MENET_CRASH_AT) and at random
moments. Each run is a real ``python -m experiments.train`` subprocess."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from experiments.training import CKPT_DIR, HISTORY_FILE, read_history
from menet_tf.atomic import CRASH_ENV, PARTIAL_PREFIX
import synthetic_pairs  # tests/synthetic_pairs.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3


def make_pairs(folder, n=3):
    return synthetic_pairs.make_pairs(folder, n=n, size=(36, 40))


def command(data_dir, model_dir):
    # GB + CA + all three losses: every kind of state (BN statistics, Adam, per-task norms) is exercised
    return [sys.executable, "-m", "experiments.train", "--flagfile=experiments/table1/lp_le_lt_gb_ca.flags",
            f"--data_dir={data_dir}", f"--model_dir={model_dir}", f"--epochs={EPOCHS}", "--steps_per_epoch=2",
            "--batch_size=4", "--crop_size=32", "--num_res_blocks=1", "--deterministic", "--seed=3",
            "--lr_decay_epochs=2"]


def run(cmd, crash=None, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    data = make_pairs(root / "pairs")
    model_dir = str(root / "straight")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    env.pop(CRASH_ENV, None)
    proc = subprocess.Popen(command(data, model_dir), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    started = None
    for line in proc.stdout:
        if started is None and line.startswith("trainable parameters"):
            started = time.monotonic()
    assert proc.wait(timeout=300) == 0 and started is not None
    training_seconds = time.monotonic() - started  # from the start of the epochs to the end of the run
    return data, model_dir, root, training_seconds


def checkpoint_tensors(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, CKPT_DIR))
    assert path is not None
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def weights(model_dir):
    import h5py

    out = {}
    with h5py.File(os.path.join(model_dir, "net.weights.h5"), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def tensorboard_scalars(model_dir, split="train"):
    from tensorflow.core.util import event_pb2

    values = {}
    for path in glob.glob(os.path.join(model_dir, "logs", split, "*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for v in event.summary.value:
                values.setdefault(v.tag, []).append((event.step, float(tf.make_ndarray(v.tensor))))
    return values


def assert_same_model_dir(got, want):
    w_got, w_want = weights(got), weights(want)
    assert sorted(w_got) == sorted(w_want)
    for name in w_want:
        np.testing.assert_allclose(w_got[name], w_want[name], rtol=0, atol=1e-6, err_msg=name)
    c_got, c_want = checkpoint_tensors(got), checkpoint_tensors(want)
    assert sorted(c_got) == sorted(c_want)
    for name, value in c_want.items():
        if isinstance(value, bytes):  # the history kept in the checkpoint (JSON rows)
            rows_got, rows_want = json.loads(c_got[name]), json.loads(value)
            assert [r["epoch"] for r in rows_got] == list(range(EPOCHS))
            for a, b in zip(rows_got, rows_want):
                assert sorted(a) == sorted(b)
                np.testing.assert_allclose([a[k] for k in sorted(b)], [b[k] for k in sorted(b)], rtol=1e-6)
            continue
        np.testing.assert_allclose(c_got[name], value, rtol=0, atol=1e-6, err_msg=name)
    h_got, h_want = read_history(os.path.join(got, HISTORY_FILE)), read_history(os.path.join(want, HISTORY_FILE))
    assert [r["epoch"] for r in h_got] == [str(e) for e in range(EPOCHS)]  # every epoch once, in order
    assert [sorted(r) for r in h_got] == [sorted(r) for r in h_want]
    for a, b in zip(h_got, h_want):
        for key in b:
            np.testing.assert_allclose(float(a[key]), float(b[key]), rtol=1e-6, err_msg=key)
    # TensorBoard is the history: each epoch's loss once, equal to history.csv's
    loss = sorted(tensorboard_scalars(got)["epoch_loss"])
    assert [s for s, _ in loss] == list(range(EPOCHS))
    np.testing.assert_allclose([v for _, v in loss], [float(r["loss"]) for r in h_got], rtol=1e-6)
    assert os.path.isfile(os.path.join(got, "training_curves.png"))
    # nothing half-written or unreferenced is left
    for dirpath, dirnames, filenames in os.walk(got):
        for name in dirnames + filenames:
            assert not name.startswith(PARTIAL_PREFIX) and not name.endswith(".tmp") and not name.startswith("tmp_"), \
                os.path.join(dirpath, name)
    state = tf.train.get_checkpoint_state(os.path.join(got, CKPT_DIR))
    listed = {os.path.basename(p) for p in state.all_model_checkpoint_paths}
    for name in os.listdir(os.path.join(got, CKPT_DIR)):
        assert name == "checkpoint" or name.split(".")[0] in listed, name


# Every point of the commit, in an epoch that leaves training to resume (0, 1) or a finished run (2, the
# last: the re-run has nothing to train and must still repair the files).
CRASHES = ["before_checkpoint@1", "during_checkpoint@1", "after_checkpoint@0", "after_checkpoint@2",
           "during_weights@2", "after_weights@1", "during_history@0", "after_history@2",
           "during_tensorboard@1", "after_tensorboard@2"]


@pytest.mark.parametrize("crash", CRASHES)
def test_a_run_killed_at_a_commit_point_and_rerun_equals_an_uninterrupted_run(reference, crash, tmp_path):
    data, straight, _, _ = reference
    model_dir = str(tmp_path / "killed")
    killed = run(command(data, model_dir), crash=crash)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    point = crash.split("@")[0]
    if point.startswith("during_") and point != "during_checkpoint":
        # the kill really left a temporary behind, which the re-run must remove
        found = [n for _, d, f in os.walk(model_dir) for n in d + f if n.startswith(PARTIAL_PREFIX)]
        assert found, f"{crash}: no temporary left by the killed writer"
    rerun = run(command(data, model_dir))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same_model_dir(model_dir, straight)


def test_random_kills_then_a_finished_run_equal_an_uninterrupted_run(reference, tmp_path):
    """Several SIGKILLs at random moments of training (uniform over the uninterrupted run's time from the line
    the trainer prints as it starts its epochs to its end, so they fall into tracing, steps and commits, not
    into TensorFlow's start-up), then a run to the end."""
    data, straight, _, training_seconds = reference
    model_dir = str(tmp_path / "random")
    rng = np.random.default_rng(0)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    env.pop(CRASH_ENV, None)
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen(command(data, model_dir), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        for line in proc.stdout:
            if line.startswith("trainable parameters"):
                break
        time.sleep(float(rng.uniform(0.0, training_seconds)))  # anywhere in tracing, steps and commits
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.stdout.read()
        proc.wait()
    assert kills >= 2
    final = run(command(data, model_dir))
    assert final.returncode == 0, final.stderr[-2000:]
    assert_same_model_dir(model_dir, straight)
