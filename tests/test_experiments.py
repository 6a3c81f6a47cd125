"""experiments/: every flagfile parses and builds what it names; training resumes exactly; bad flags
stop with a one-line error before any work."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import config as config_lib
from experiments.training import build_trainer, check_reusable, read_history, train
from menet_tf import losses as losses_lib
from menet_tf.model import load_net
import synthetic_pairs  # tests/synthetic_pairs.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Spec section 8 rows: flagfile -> (tasks, weighting, channel attention, residual blocks)
EXPECTED = {
    ("table1", "lp"): (("p",), "fixed", False, 8),
    ("table1", "lp_le_fixed"): (("p", "e"), "fixed", False, 8),
    ("table1", "lp_le_gb"): (("p", "e"), "gb", False, 8),
    ("table1", "lp_le_lb"): (("p", "e"), "lb", False, 8),
    ("table1", "lp_le_lt_gb"): (("p", "e", "t"), "gb", False, 8),
    ("table1", "lp_le_lt_lb"): (("p", "e", "t"), "lb", False, 8),
    ("table1", "lp_le_lt_gb_ca"): (("p", "e", "t"), "gb", True, 8),
    ("table1", "lp_le_lt_lb_ca"): (("p", "e", "t"), "lb", True, 8),
    ("table1", "le"): (("e",), "fixed", False, 8),
    ("table1", "lp_ca"): (("p",), "fixed", True, 8),
    ("table2", "menet_gb_deep"): (("p", "e", "t"), "gb", True, 16),
    ("table2", "menet_lb_deep"): (("p", "e", "t"), "lb", True, 16),
    ("table4", "mse"): (("p",), "fixed", False, 8),
    ("table4", "mse_edge_fixed"): (("p", "e"), "fixed", False, 8),
    ("table4", "mse_vgg_fixed"): (("p", "vgg"), "fixed", False, 8),
}
PARAMS = {(8, False): 671_680, (8, True): 815_680, (16, True): 1_407_552}


def test_every_flagfile_is_listed():
    found = {(t, r) for t in ("table1", "table2", "table4") for r in config_lib.list_rows(t)}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("table, row", sorted(EXPECTED), ids=["/".join(k) for k in sorted(EXPECTED)])
def test_flagfile_builds_the_model_losses_and_weighting_it_names(table, row, tmp_path):
    extra = []
    if row == "mse_vgg_fixed":
        vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        path = str(tmp_path / "vgg.weights.h5")
        vgg.save_weights(path)
        extra = [f"--vgg19_weights={path}"]
    cfg = config_lib.load_flagfile(config_lib.row_flagfile(row, table), *extra)
    tasks, weighting, ca, blocks = EXPECTED[(table, row)]
    assert (cfg.tasks, cfg.weighting, cfg.channel_attention, cfg.num_res_blocks) == (tasks, weighting, ca, blocks)
    # paper defaults that no flagfile may change
    assert (cfg.batch_size, cfg.crop_size, cfg.epochs, cfg.lr, cfg.lr_decay_epochs) == (20, 224, 100, 1e-3, 40)
    cfg.jit_compile = False
    trainer = build_trainer(cfg, steps_per_epoch=23)
    n_params = sum(int(np.prod(v.shape)) for v in trainer.net.trainable_variables)
    assert n_params == PARAMS[(blocks, ca)]
    assert trainer.tasks == tasks and trainer.weighting == weighting
    by_name = {"p": losses_lib.reconstruction_loss, "e": losses_lib.edge_loss,
               "t": losses_lib.texture_loss_released}
    for name, fn in zip(tasks, trainer.loss_fns):
        if name in by_name:
            assert fn is by_name[name]
    if weighting == "fixed":
        expected = {"lp_le_fixed": [1.0, 1e-2], "mse_edge_fixed": [1.0, 1e-2], "mse_vgg_fixed": [1.0, 1e-3],
                    "le": [1.0]}.get(row, [1.0])
        assert trainer.fixed == pytest.approx(expected)
    assert trainer.optimizer.epsilon == 1e-8


make_pairs = synthetic_pairs.make_pairs


def tiny_config(data_dir, model_dir, epochs):
    return config_lib.TrainConfig(
        losses=("p", "e", "t"), weighting="lb", num_res_blocks=1, crop_size=16, batch_size=4, epochs=epochs,
        lr_decay_epochs=1, seed=3, deterministic=True, jit_compile=False, data_dir=data_dir,
        model_dir=str(model_dir),
    )


@pytest.fixture
def restore_op_determinism():
    """--deterministic turns on TF's process-wide op determinism (which also makes Keras drop XLA);
    switch it back off so later tests run as they would alone."""
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    yield
    if not was:
        tf_config.disable_op_determinism()


def test_resume_reproduces_an_uninterrupted_run(tmp_path, restore_op_determinism):
    data = make_pairs(tmp_path / "pairs")  # 3 pairs -> 30 patches -> 7 steps per epoch
    straight, _ = train(tiny_config(data, tmp_path / "straight", 2), verbose=0)
    train(tiny_config(data, tmp_path / "resumed", 1), verbose=0)
    resumed, _ = train(tiny_config(data, tmp_path / "resumed", 2), verbose=0)

    for a, b in zip(straight.net.weights, resumed.net.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)
    for a, b in zip(straight.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert int(resumed.optimizer.iterations.numpy()) == 14
    # staircase x0.1 every epoch here: the lr in force at the end of epoch 2 is the scheduled 1e-5
    rows = read_history(str(tmp_path / "resumed" / "history.csv"))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    np.testing.assert_allclose([float(r["lr"]) for r in rows], [1e-4, 1e-5], rtol=1e-5)
    # the net saved in model_dir is the resumed one
    x = tf.random.uniform((1, 16, 16, 3), 0, 255, seed=1)
    np.testing.assert_allclose(load_net(str(tmp_path / "resumed"))(x).numpy(), resumed.net(x).numpy(), atol=1e-4)
    assert (tmp_path / "resumed" / "training_curves.png").is_file()


def test_a_model_dir_trained_with_other_settings_is_not_reused(tmp_path):
    """experiments.ablation skips finished rows: one trained on other data, crops or a longer schedule
    must be refused (its scores would be reported as the row asked for), the same one accepted."""
    import dataclasses

    data = make_pairs(tmp_path / "pairs")
    other = make_pairs(tmp_path / "other", seed=1)
    model_dir = tmp_path / "row"
    done = tiny_config(data, model_dir, 2)
    config_lib.save_config(done, str(model_dir))
    check_reusable(dataclasses.replace(done), str(model_dir))  # the same settings
    check_reusable(dataclasses.replace(done, epochs=5), str(model_dir))  # more epochs: resumes
    # the same folder through another path (a symlink) is the same data
    os.symlink(data, tmp_path / "link")
    check_reusable(dataclasses.replace(done, data_dir=str(tmp_path / "link")), str(model_dir))
    for change, named in (({"data_dir": other}, "data_dir"), ({"crop_size": 32}, "crop_size 16 (asked: 32)"),
                          ({"epochs": 1}, "epochs 2 (asked: 1)"), ({"fixed_weights": {"e": 0.1}}, "fixed_weights"),
                          ({"channel_attention": True}, "channel_attention")):
        with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
            check_reusable(dataclasses.replace(done, **change), str(model_dir))
    check_reusable(done, str(tmp_path / "fresh"))  # nothing there yet
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "config.json").write_text('{"losses": ["p"')
    with pytest.raises(ValueError, match=r"damaged.config\.json: not a training config"):
        check_reusable(done, str(tmp_path / "damaged"))


def run_train(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_bad_flags_stop_with_one_line_error_before_any_work(tmp_path):
    data = make_pairs(tmp_path / "pairs", n=1)
    locked = tmp_path / "locked"
    locked.write_text("a file, not a folder")
    cases = [
        (["--losses=p,x", f"--data_dir={data}", f"--model_dir={tmp_path}/m1"], "unknown loss name"),
        (["--losses=p", "--weighting=gb", f"--data_dir={data}", f"--model_dir={tmp_path}/m2"], "only ['p']"),
        ([f"--model_dir={tmp_path}/m3"], "--data_dir is required"),
        ([f"--data_dir={tmp_path}/nowhere", f"--model_dir={tmp_path}/m4"], "no such directory"),
        ([f"--data_dir={data}", f"--model_dir={locked}/sub"], "not writable"),
        ([f"--data_dir={data}", f"--model_dir={tmp_path}/m5", "--init_from=menet-lb-rain100l"],
         "--init_from: menet-lb-rain100l holds another net: channel_attention True (this run: False)"),
    ]
    for args, message in cases:
        result = run_train(*args)
        assert result.returncode != 0, args
        last = result.stderr.strip().splitlines()[-1]
        assert message in last, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "m1").exists() or not os.listdir(tmp_path / "m1")


def _check_writable_many(path, n):
    from experiments.cliutil import check_writable
    for _ in range(n):
        check_writable(path)


def test_check_writable_from_several_processes_at_once(tmp_path):
    """The workers of a multi-worker run check the same model_dir at once: one's probe file must never
    be another's (a shared probe name made a worker fail with 'not writable (No such file or
    directory)' when the other removed it first)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.starmap(_check_writable_many, [(str(tmp_path / "shared"), 300)] * 4)
    assert os.listdir(tmp_path / "shared") == []  # every probe removed


def test_init_from_starts_from_the_given_weights_and_checks_the_net(tmp_path):
    """--init_from (fine-tuning): the first step starts from the named run's net, not a random init; a
    source with another net, or none, is one ValueError naming the flag."""
    import dataclasses

    data = make_pairs(tmp_path / "pairs")
    source = tmp_path / "source"
    base = dataclasses.replace(tiny_config(data, source, 1), deterministic=False, steps_per_epoch=2)
    first, _ = train(base, verbose=0)
    # an lr so small that Adam's first step (about lr per weight) leaves the start visible to 1e-6
    tuned, _ = train(dataclasses.replace(base, model_dir=str(tmp_path / "tuned"), lr=1e-9, seed=4,
                                         init_from=str(source)), verbose=0)
    fresh, _ = train(dataclasses.replace(base, model_dir=str(tmp_path / "fresh"), lr=1e-9, seed=4), verbose=0)
    start = load_net(str(source))  # trainable weights only: batch norm's moving statistics move with any lr
    for w0, wt in zip(start.trainable_weights, tuned.net.trainable_weights):
        np.testing.assert_allclose(wt.numpy(), w0.numpy(), atol=1e-6, err_msg=w0.path)
    assert any(np.abs(wf.numpy() - w0.numpy()).max() > 1e-3
               for w0, wf in zip(start.trainable_weights, fresh.net.trainable_weights))
    np.testing.assert_array_equal(start.trainable_weights[0].numpy(), first.net.trainable_weights[0].numpy())
    # resuming the tuned run is not re-initialised: the checkpoint wins
    again, _ = train(dataclasses.replace(base, model_dir=str(tmp_path / "tuned"), lr=1e-9, seed=4,
                                         init_from=str(source), epochs=2), verbose=0)
    assert int(again.optimizer.iterations.numpy()) == 4
    # a net with fewer residual blocks is deepened: its blocks last, identity blocks in front (menet_tf.model.deepen)
    deeper, _ = train(dataclasses.replace(base, model_dir=str(tmp_path / "deeper"), lr=1e-9, seed=4,
                                          num_res_blocks=3, init_from=str(source)), verbose=0)
    for w0, wd in zip(start.get_layer("res_block1").trainable_weights,
                      deeper.net.get_layer("res_block3").trainable_weights):
        np.testing.assert_allclose(wd.numpy(), w0.numpy(), atol=1e-6, err_msg=w0.path)
    for k in (1, 2):
        assert np.abs(deeper.net.get_layer(f"res_block{k}").conv_bn2.bn.gamma.numpy()).max() < 1e-6
    for bad, message in ((dataclasses.replace(base, channel_attention=True), "channel_attention False"),
                         (base, "neither a shipped model")):
        init = str(source) if message != "neither a shipped model" else str(tmp_path / "nowhere")
        with pytest.raises(ValueError, match=r"^--init_from: .*" + message.replace("(", r"\(").replace(")", r"\)")):
            dataclasses.replace(bad, model_dir=str(tmp_path / "x"), init_from=init).validate()


def test_checkpoint_state_is_the_file_tensorflows_deprecated_writer_wrote(tmp_path, monkeypatch):
    """experiments.training.write_checkpoint_state replaced tf.compat.v1.train.update_checkpoint_state (which
    logs a deprecation warning): for a relative model directory the same bytes; for an absolute one names
    relative to it (TensorFlow wrote absolute ones), which tf.train.get_checkpoint_state reads back the same."""
    from experiments.training import write_checkpoint_state

    monkeypatch.chdir(tmp_path)
    for d in ("ours", "theirs"):
        os.mkdir(d)
    write_checkpoint_state("ours", ["ours/ckpt-3", "ours/ckpt-4"])
    tf.compat.v1.train.update_checkpoint_state("theirs", "theirs/ckpt-4",
                                               all_model_checkpoint_paths=["theirs/ckpt-3", "theirs/ckpt-4"])
    assert (tmp_path / "ours" / "checkpoint").read_bytes() == (tmp_path / "theirs" / "checkpoint").read_bytes()

    absolute = str(tmp_path / "ours")
    write_checkpoint_state(absolute, [os.path.join(absolute, "ckpt-5"), os.path.join(absolute, "ckpt-6")])
    text = (tmp_path / "ours" / "checkpoint").read_text()
    assert "ckpt-6" in text and absolute not in text
    state = tf.train.get_checkpoint_state(absolute)
    assert state.model_checkpoint_path == os.path.join(absolute, "ckpt-6")
    assert list(state.all_model_checkpoint_paths) == [os.path.join(absolute, f"ckpt-{i}") for i in (5, 6)]


def test_interpolate_cli_writes_a_model_dir_of_the_mixed_weights(tmp_path):
    """experiments.interpolate: --out holds end's config, interpolation.json and weights equal to
    (1 - alpha) x start + alpha x end (numpy), loadable as a model directory; an existing --out is refused
    in one line before any work."""
    import json

    import keras

    from menet_tf.model import build_derain_net, save_net

    keras.utils.set_random_seed(2)
    dirs = {}
    for name in ("start", "end"):
        net = build_derain_net(num_res_blocks=2, channel_attention=True)
        for v in net.weights:  # away from the init and from each other, BN statistics too
            v.assign(v.numpy() + np.random.default_rng(len(name)).normal(0, 0.05, v.shape).astype("float32") ** 2)
        dirs[name] = str(tmp_path / name)
        save_net(net, dirs[name], {"num_res_blocks": 2, "channel_attention": True, "ca_variant": "released",
                                   "data_dir": "somewhere", "tag": name})
    out = tmp_path / "mix"
    cmd = [sys.executable, "-m", "experiments.interpolate", f"--start={dirs['start']}", f"--end={dirs['end']}",
           "--alpha=0.25", f"--out={out}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["tag"] == "end"
    assert json.loads((out / "interpolation.json").read_text()) == {"start": dirs["start"], "end": dirs["end"],
                                                                     "alpha": 0.25}
    start, end, mix = load_net(dirs["start"]), load_net(dirs["end"]), load_net(str(out))
    assert any(np.abs(a.numpy() - b.numpy()).max() > 1e-3 for a, b in zip(start.weights, end.weights))
    for a, b, m in zip(start.weights, end.weights, mix.weights):
        np.testing.assert_allclose(m.numpy(), 0.75 * a.numpy() + 0.25 * b.numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=a.path)
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "exists" in again.stderr.strip().splitlines()[-1]
    assert "Traceback" not in again.stderr
    # a start that is no model directory: one line naming the missing file, and no --out left behind
    (tmp_path / "empty").mkdir()
    bad = subprocess.run(cmd[:3] + [f"--start={tmp_path / 'empty'}", cmd[4], "--alpha=0.25", f"--out={tmp_path / 'mix2'}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    last = bad.stderr.strip().splitlines()[-1]
    assert bad.returncode != 0 and str(tmp_path / "empty" / "config.json") in last, bad.stderr[-2000:]
    assert "Traceback" not in bad.stderr and not os.path.exists(tmp_path / "mix2")
