"""--distribution=multi_worker really trains: two `python -m experiments.train` worker processes on localhost
(TF_CONFIG, MultiWorkerMirroredStrategy), against a one-process MirroredStrategy run over two logical CPU
devices with the same global batch and seed (per-replica batch norm and per-replica task weights make that
the reference); only the chief writes the model_dir; both killed after an epoch and restarted resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import pytest

from experiments.config import check_tf_config
from experiments.training import HISTORY_FILE, read_history
from menet_tf.atomic import CRASH_ENV
import synthetic_pairs  # tests/synthetic_pairs.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# oneDNN off: with it, TF rewrites the graph of a second logical CPU device differently from the first
# (other kernels, other float rounding), so the 2-device reference would differ from 2 workers by float
# noise that Adam (epsilon 1e-8) turns into weight differences of ~4e-5; without it they agree to ~1e-8.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TF_ENABLE_ONEDNN_OPTS": "0"}
ENV.pop("TF_CONFIG", None)
ENV.pop(CRASH_ENV, None)
TWO_CPUS = ("import sys, runpy, tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
            "sys.argv = ['train'] + sys.argv[1:]; runpy.run_module('experiments.train', run_name='__main__')")


def make_pairs(folder, n=3):
    return synthetic_pairs.make_pairs(folder, n=n, size=(36, 40))


def flags(data_dir, model_dir, distribution, epochs=2):
    return ["--flagfile=experiments/table1/lp_le_lt_gb_ca.flags", f"--data_dir={data_dir}",
            f"--model_dir={model_dir}", f"--epochs={epochs}", "--steps_per_epoch=2", "--batch_size=4",
            "--crop_size=32", "--num_res_blocks=1", "--deterministic", "--seed=3", f"--distribution={distribution}"]


def free_ports(n):
    """n ports that bind now, below Linux's ephemeral range (32768-60999 by default): a port from that
    range can be taken meanwhile as the source port of some connection (even one of the workers' own
    retries towards it), so the worker meant to listen there could not."""
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0]) if os.path.exists(
        "/proc/sys/net/ipv4/ip_local_port_range") else 32768
    rng, ports = np.random.default_rng(), []
    while len(ports) < n:
        port = int(rng.integers(max(1024, low - 12000), low))
        with socket.socket() as s:
            try:
                s.bind(("localhost", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def run_workers(data_dir, model_dir, crash=None, epochs=2, timeout=240):
    """Both workers at once, their output in files (a pipe read one after the other can fill up and stall
    the unread worker, and with it the collective the other waits in). If one ends and the other has not
    a minute later, or the deadline passes, the rest get SIGABRT, whose Python traceback (faulthandler)
    is then in the output the assertion shows."""
    ports = free_ports(2)
    tmp = os.path.join(os.path.dirname(model_dir), "tmp")
    os.makedirs(tmp, exist_ok=True)
    procs, logs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = {**ENV, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": tmp, "PYTHONFAULTHANDLER": "1"}
        if crash:
            env[CRASH_ENV] = crash
        cmd = [sys.executable, "-m", "experiments.train", *flags(data_dir, model_dir, "multi_worker", epochs)]
        logs.append(tempfile.TemporaryFile("w+"))
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT, text=True))
    deadline, first_end = time.monotonic() + timeout, None
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if first_end is None and any(p.poll() is not None for p in procs):
            first_end = time.monotonic()
        if first_end is not None and time.monotonic() > first_end + 60:
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGABRT)
    outs = []
    for p, log in zip(procs, logs):
        p.wait(timeout=60)
        log.seek(0)
        outs.append((p.returncode, log.read()))
        log.close()
    return outs


def weights(model_dir):
    out = {}
    with h5py.File(os.path.join(model_dir, "net.weights.h5"), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def max_diff(a, b):
    """The largest |a - b| over all variables, each relative to its largest magnitude when that is > 1
    (moving variances reach the hundreds, where 1e-5 is a float32 ulp or two)."""
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[k] - b[k]).max()) / max(1.0, float(np.abs(b[k]).max())) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_worker")
    data = make_pairs(root / "pairs")
    workers = str(root / "workers")
    outs = run_workers(data, workers)
    mirrored = str(root / "mirrored")
    ref = subprocess.run([sys.executable, "-c", TWO_CPUS, *flags(data, mirrored, "mirrored")], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    single = str(root / "single")
    one = subprocess.run([sys.executable, "-m", "experiments.train", *flags(data, single, "default")], cwd=ROOT,
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    return root, data, workers, outs, mirrored, single


def test_two_workers_train_like_mirrored_on_two_devices_and_only_the_chief_writes(runs):
    root, _, workers, outs, mirrored, single = runs
    for code, out in outs:
        assert code == 0, out[-3000:]
    assert sorted(os.listdir(workers)) == ["ckpt", "config.json", "history.csv", "logs", "net.weights.h5",
                                           "training_curves.png"]
    assert os.listdir(root / "tmp") == []  # worker 1 wrote into a folder of its own, then removed it
    # The same data, per-replica BN and task weights: every logged loss, weight and norm agrees to 1e-5.
    got, want = read_history(os.path.join(workers, HISTORY_FILE)), read_history(os.path.join(mirrored, HISTORY_FILE))
    assert [r["epoch"] for r in got] == ["0", "1"] and sorted(got[0]) == sorted(want[0])
    for a, b in zip(got, want):
        for key in b:
            np.testing.assert_allclose(float(a[key]), float(b[key]), rtol=1e-5, err_msg=key)
    w = weights(workers)
    assert max_diff(w, weights(mirrored)) <= 1e-5
    # ... while a one-device run, with batch statistics over the whole batch, is far away
    assert max_diff(w, weights(single)) > 1e-3  # 100x the tolerance above


def test_both_workers_killed_after_an_epoch_resume_and_end_on_the_same_weights(runs, tmp_path):
    _, data, workers, _, _, _ = runs
    model_dir = str(tmp_path / "killed")
    first = run_workers(data, model_dir, crash="after_checkpoint@0")
    assert [code for code, _ in first] == [-signal.SIGKILL] * 2, [out[-2000:] for _, out in first]
    again = run_workers(data, model_dir)
    for code, out in again:
        assert code == 0, out[-3000:]
        assert "resuming from" in out and "epoch 1" in out
    assert max_diff(weights(model_dir), weights(workers)) <= 1e-6
    assert [r["epoch"] for r in read_history(os.path.join(model_dir, HISTORY_FILE))] == ["0", "1"]


def test_ports_in_the_ephemeral_range_are_warned_about():
    cfg = '{"cluster": {"worker": ["localhost:23456", "localhost:40000"]}, "task": {"type": "worker", "index": 0}}'
    warnings = check_tf_config({"TF_CONFIG": cfg}, port_range=(32768, 60999))
    assert len(warnings) == 1 and "worker 1 (localhost:40000)" in warnings[0] and "below 32768" in warnings[0]
    assert check_tf_config({"TF_CONFIG": cfg}, port_range=(50000, 60999)) == []


@pytest.mark.parametrize("value, message", [
    (None, "TF_CONFIG is not set"),
    ("{cluster", "not valid JSON"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', '"index": 0..n-1'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', '"task"'),
])
def test_a_missing_or_malformed_tf_config_is_one_clear_error(value, message, tmp_path):
    env = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(ValueError, match=message):
        check_tf_config(env)
    check_tf_config({"SLURM_PROCID": "0"})  # a Slurm job: SlurmClusterResolver reads the cluster
    check_tf_config({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'})
    if value is not None:  # the CLI: one line, exit status 2, nothing trained
        data = make_pairs(tmp_path / "pairs", n=1)
        r = subprocess.run([sys.executable, "-m", "experiments.train", *flags(data, str(tmp_path / "m"), "multi_worker")],
                           cwd=ROOT, env={**ENV, "TF_CONFIG": value}, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        assert not os.path.exists(tmp_path / "m")
