"""Run one training configuration end to end, resumably (the library behind ``experiments.train``).

model_dir layout:
  config.json        the TrainConfig it was trained with (also read by menet_tf.model.load_net)
  net.weights.h5     the de-raining net after the last finished epoch
  ckpt/              tf.train.Checkpoint of net + optimizer + epoch + history (re-running the command resumes)
  history.csv        one row per epoch: every task loss and weight, gradient norms, lr, val PSNR/SSIM
  logs/              TensorBoard
  training_curves.png  task weights and losses over training

Resume is exact: the data order of epoch e is a pure function of (seed, e), and the checkpoint holds
the optimizer's step counter (hence the scheduled learning rate) and moments. A run killed at any moment
and re-run ends with the same files as one never killed: see "the epoch's commit point" below.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from experiments.config import TrainConfig, save_config
from menet_tf import atomic
from menet_tf import data as data_lib
from menet_tf import patch_source
from menet_tf.atomic import crash_point
from menet_tf.model import build_derain_net, load_net, save_weights
from menet_tf.model import deepen as deepen_net
from menet_tf.trainer import MultiTaskTrainer, make_optimizer

CKPT_DIR = "ckpt"
LOGS_DIR = "logs"
HISTORY_FILE = "history.csv"
CURVES_FILE = "training_curves.png"


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_runtime(config: TrainConfig) -> TrainConfig:
    """Fill the 'auto' settings: XLA on with a GPU, off on CPU (XLA is slower on this CPU)."""
    if config.jit_compile is None:
        config.jit_compile = has_gpu()
    return config


def mixed_precision_policy() -> str:
    return "mixed_float16" if has_gpu() else "mixed_bfloat16"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """default: one device. mirrored: every local GPU, else every logical CPU device. multi_worker:
    MultiWorkerMirroredStrategy over the cluster in TF_CONFIG, or the Slurm job's (SlurmClusterResolver)
    when TF_CONFIG is unset inside one."""
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
            [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG") and "SLURM_PROCID" in os.environ:
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
            return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_role(strategy: tf.distribute.Strategy) -> tuple[bool, str]:
    """(is_chief, name) of this process: the chief is task "chief", or worker 0 when the cluster has no
    chief; a single process is the chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not task_type:
        return True, "chief"
    task_id = int(resolver.task_id or 0)
    cluster = resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return chief, f"{task_type}{task_id}"


# ------------------------------------------------------------------------------ the epoch's commit point
#
# A model_dir is consistent whenever training is killed. After every epoch, in this order:
#   1. the checkpoint (net, optimizer, epoch counter and the whole history, as one string variable) is
#      written under a new prefix, then ``ckpt/checkpoint`` is pointed at it in one atomic rename: the
#      commit point;
#   2. the files derived from it are rewritten whole (temporary name, then rename): net.weights.h5,
#      history.csv, the TensorBoard logs (made from the history) and training_curves.png.
# A kill before 1's rename loses the epoch in progress, which a re-run repeats exactly (the data order is
# a function of (seed, epoch)); a kill after it leaves derived files an epoch behind, and every re-run
# first restores the checkpoint and rewrites them from it (:func:`repair_model_dir`), also when the run
# is already complete, and removes what killed writers left (temporaries, unreferenced checkpoint files).

CRASH_POINTS = ("before_checkpoint", "during_checkpoint", "after_checkpoint", "during_weights", "after_weights",
                "during_history", "after_history", "during_tensorboard", "after_tensorboard", "after_curves")


def latest_checkpoint(model_dir: str) -> str | None:
    return tf.train.latest_checkpoint(os.path.join(model_dir, CKPT_DIR))


def remove_unreferenced_checkpoints(ckpt_dir: str) -> list[str]:
    """Delete checkpoint files that ``ckpt_dir/checkpoint`` does not list (older ones, and the partial
    writes of a killed save); returns their names."""
    state = tf.train.get_checkpoint_state(ckpt_dir) if os.path.isdir(ckpt_dir) else None
    if state is None:
        return []
    keep = {os.path.basename(p) for p in [*state.all_model_checkpoint_paths, state.model_checkpoint_path]}
    removed = []
    for name in sorted(os.listdir(ckpt_dir)):
        if name == "checkpoint" or any(name.startswith(k + ".") for k in keep):
            continue
        path = os.path.join(ckpt_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        removed.append(name)
    return removed


def commit_checkpoint(ckpt: tf.train.Checkpoint, model_dir: str, epochs_done: int, keep: int = 2) -> str:
    """Write the checkpoint of ``epochs_done`` epochs, then make it the latest in one atomic rename of
    ``ckpt/checkpoint`` (the commit); keep the ``keep`` newest."""
    ckpt_dir = os.path.join(model_dir, CKPT_DIR)
    prefix = ckpt.write(os.path.join(ckpt_dir, f"ckpt-{epochs_done}"))
    crash_point("during_checkpoint", epochs_done - 1)
    state = tf.train.get_checkpoint_state(ckpt_dir)
    previous = [p for p in (state.all_model_checkpoint_paths if state else []) if p != prefix]
    kept = previous[len(previous) - (keep - 1):] if keep > 1 else []
    write_checkpoint_state(ckpt_dir, kept + [prefix])
    remove_unreferenced_checkpoints(ckpt_dir)
    return prefix


def write_checkpoint_state(ckpt_dir: str, prefixes: list[str]) -> None:
    """``ckpt_dir/checkpoint``, whole (the text CheckpointState that ``tf.train.get_checkpoint_state``
    reads): the last of ``prefixes`` the latest, all of them listed, as names relative to ``ckpt_dir`` so
    that the model directory may move. (What ``tf.compat.v1.train.update_checkpoint_state`` wrote, without
    its deprecation warning.)"""
    names = [os.path.relpath(p, ckpt_dir) for p in prefixes]
    lines = [f"model_checkpoint_path: {json.dumps(names[-1])}"]
    lines += [f"all_model_checkpoint_paths: {json.dumps(n)}" for n in names]
    atomic.write_text(os.path.join(ckpt_dir, "checkpoint"), "\n".join(lines) + "\n")


def write_history(path: str, rows: list[dict], before_rename=None) -> None:
    """history.csv, whole: one row per epoch, the header the union of all keys ("epoch" first)."""
    import csv

    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    with atomic.atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, keys, restval="")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        if before_rename is not None:
            before_rename()


def write_tensorboard(model_dir: str, rows: list[dict], before_rename=None) -> None:
    """Rewrite ``logs/`` from the history: ``logs/train`` gets ``epoch_<key>`` for every logged value,
    ``logs/validation`` ``epoch_<key>`` for every ``val_<key>``; step = the epoch (0-based), as Keras'
    TensorBoard callback writes them. A new folder swapped in whole, so it always equals history.csv."""
    with atomic.atomic_path(os.path.join(model_dir, LOGS_DIR)) as tmp:
        os.makedirs(tmp)
        for split in ("train", "validation"):
            writer = tf.summary.create_file_writer(os.path.join(tmp, split))
            with writer.as_default():
                for row in rows:
                    for key, value in row.items():
                        if key == "epoch" or value in ("", None) or key.startswith("val_") != (split == "validation"):
                            continue
                        tag = "epoch_" + (key[4:] if split == "validation" else key)
                        tf.summary.scalar(tag, float(value), step=int(row["epoch"]))
            writer.close()
        if before_rename is not None:
            before_rename()


def write_derived_files(model_dir: str, net: keras.Model, rows: list[dict], epoch: int | None = None) -> None:
    """net.weights.h5, history.csv, logs/ and training_curves.png from the net and the history (each whole)."""
    save_weights(net, model_dir, before_rename=lambda: crash_point("during_weights", epoch))
    crash_point("after_weights", epoch)
    write_history(os.path.join(model_dir, HISTORY_FILE), rows, lambda: crash_point("during_history", epoch))
    crash_point("after_history", epoch)
    write_tensorboard(model_dir, rows, lambda: crash_point("during_tensorboard", epoch))
    crash_point("after_tensorboard", epoch)
    if rows:
        try:
            plot_training_curves(model_dir)
        except Exception as e:  # noqa: BLE001 - a plot must never lose a training run
            logging.warning("could not plot training curves: %s", e)
    crash_point("after_curves", epoch)


def repair_model_dir(model_dir: str, net: keras.Model, rows: list[dict]) -> list[str]:
    """Before anything else in a re-run, with ``net`` restored from the latest checkpoint and ``rows`` its
    history: remove temporaries and unreferenced checkpoint files, rewrite the derived files. Returns the
    names removed."""
    removed = atomic.remove_partials(model_dir, legacy=True) + remove_unreferenced_checkpoints(os.path.join(model_dir, CKPT_DIR))
    write_derived_files(model_dir, net, rows)
    if removed:
        print(f"{model_dir}: removed what an interrupted run left: {', '.join(removed)}", flush=True)
    return removed


class EpochCommit(keras.callbacks.Callback):
    """After every epoch: the commit point, then the derived files (see above)."""

    def __init__(self, ckpt, epoch_var, history_var, rows, net, model_dir):
        super().__init__()
        self.ckpt, self.epoch_var, self.history_var = ckpt, epoch_var, history_var
        self.rows, self.net, self.model_dir = list(rows), net, model_dir

    def on_epoch_end(self, epoch, logs=None):
        rows = self.rows + [{"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}]
        crash_point("before_checkpoint", epoch)
        self.epoch_var.assign(epoch + 1)
        self.history_var.assign(json.dumps(rows))
        commit_checkpoint(self.ckpt, self.model_dir, epoch + 1)
        self.rows = rows
        crash_point("after_checkpoint", epoch)
        write_derived_files(self.model_dir, self.net, rows, epoch)


def history_rows(history_var: tf.Variable, model_dir: str, start_epoch: int) -> list[dict]:
    """The history of the restored checkpoint; for a checkpoint written before the history was kept in
    it, the rows of history.csv before ``start_epoch``."""
    text = history_var.numpy().decode()
    if text:
        return [r for r in json.loads(text) if int(r["epoch"]) < start_epoch]
    rows = [r for r in read_history(os.path.join(model_dir, HISTORY_FILE)) if int(r["epoch"]) < start_epoch]
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items() if v not in ("", None)} for r in rows]


def read_history(path: str) -> list[dict]:
    import csv

    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate in force at the end of each epoch to the logs (CSV and TensorBoard)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            opt = self.model.optimizer
            logs["lr"] = float(keras.ops.convert_to_numpy(opt.learning_rate))


def load_patches(config: TrainConfig, data_dir: str | None = None) -> patch_source.PatchSource:
    """The training patches of a folder (every pair decoded and checked before training), kept as
    ``config.cache`` says (menet_tf.patch_source)."""
    cache_dir = config.cache_dir or (os.path.join(config.model_dir, patch_source.CACHE_DIRNAME)
                                     if config.model_dir else None)
    return patch_source.make_patch_source(
        data_dir or config.data_dir,
        crop_size=config.crop_size,
        mode=config.cache,
        cache_dir=cache_dir,
        skip_bad_pairs=config.skip_bad_pairs,
        rainy_glob=config.rainy_glob,
        clean_glob=config.clean_glob,
        progress=True,
    )


def build_trainer(config: TrainConfig, steps_per_epoch: int) -> MultiTaskTrainer:
    net = build_derain_net(**config.net_kwargs())
    trainer = MultiTaskTrainer(
        net,
        config.tasks,
        config.weighting,
        fixed_weights=config.fixed_weights,
        stable_weights=config.stable_weights,
        texture_form=config.texture_loss,
        vgg19_weights=config.vgg19_weights,
        track_grad_norms=config.track_grad_norms,
    )
    optimizer = make_optimizer(steps_per_epoch, config.lr, config.lr_decay_epochs)
    trainer.compile(optimizer=optimizer, jit_compile=bool(config.jit_compile))
    trainer.optimizer.build(net.trainable_variables)  # create Adam's slots so a checkpoint restores into them
    return trainer


def train(config: TrainConfig, verbose: int | None = None) -> tuple[MultiTaskTrainer, dict]:
    """Train (or resume) ``config`` into ``config.model_dir``; returns the trainer and the history."""
    config = resolve_runtime(config)
    config.validate()
    model_dir = config.model_dir
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())

    source = load_patches(config)
    n = len(source)
    full_steps = n // config.batch_size
    if full_steps < 1:
        raise ValueError(
            f"--data_dir: {config.data_dir}: {n} patches make no full batch of {config.batch_size}; "
            "lower --batch_size or add pairs"
        )
    steps = min(full_steps, config.steps_per_epoch or full_steps)
    val_ds = None
    if config.val_dir:
        val_ds = data_lib.make_paper_eval_dataset(config.val_dir, crop_size=config.crop_size, batch_size=config.batch_size)

    strategy = make_strategy(config.distribution)
    chief, role = worker_role(strategy)
    # Only the chief writes the model_dir. The other workers take part in every save (reading mirrored
    # variables may need their collectives) into a folder of their own, removed at the end (TensorFlow's
    # multi-worker pattern); all restore the chief's checkpoint (a file system shared by the workers).
    write_dir = model_dir if chief else tempfile.mkdtemp(prefix=f"menet-{role}-")
    try:
        return _train(config, model_dir, write_dir, chief, strategy, source, n, steps, val_ds, verbose)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def _train(config, model_dir, write_dir, chief, strategy, source, n, steps, val_ds, verbose):
    with strategy.scope():
        trainer = build_trainer(config, steps_per_epoch=steps)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    history_var = tf.Variable("", dtype=tf.string, trainable=False, name="history")  # JSON rows
    ckpt = tf.train.Checkpoint(net=trainer.net, optimizer=trainer.optimizer, epoch=epoch_var, history=history_var)
    _ = ckpt.save_counter  # create it, so that Checkpoint.write stores it (CheckpointManager.save did)
    restored = latest_checkpoint(model_dir)
    if restored:
        check_same_config(config, model_dir)  # before restoring: a different net would fail obscurely
        ckpt.restore(restored).assert_existing_objects_matched()
        print(f"resuming from {restored}: epoch {int(epoch_var.numpy())}, "
              f"step {int(trainer.optimizer.iterations.numpy())}", flush=True)
    elif config.init_from:
        folder, weights, deepen = config.init_source()
        grown = ""
        if deepen:  # the same net with fewer blocks: its function, grown (menet_tf.model.deepen)
            shallow = load_net(folder)
            with strategy.scope():
                added = deepen_net(shallow, trainer.net)
            grown = f"; deepened: its {config.num_res_blocks - added} residual blocks behind {added} identity blocks"
        else:
            with strategy.scope():
                trainer.net.load_weights(weights)
        print(f"starting from the weights of {config.init_from} ({weights}){grown}", flush=True)
    start_epoch = int(epoch_var.numpy())
    if chief:
        save_config(config, model_dir)
    rows = history_rows(history_var, model_dir, start_epoch)
    if restored:  # the files derived from the checkpoint may be an epoch behind it, or half written
        repair_model_dir(write_dir, trainer.net, rows)

    n_params = sum(int(np.prod(v.shape)) for v in trainer.net.trainable_variables)
    print("configuration:\n" + json.dumps(config.to_json(), indent=2, sort_keys=True), flush=True)
    print(f"trainable parameters: {n_params:,}; {n} patches, {steps} steps per epoch, "
          f"epochs {start_epoch} -> {config.epochs}", flush=True)
    if start_epoch >= config.epochs:
        print(f"{model_dir}: already trained for {start_epoch} epochs; nothing to do", flush=True)
        return trainer, {}

    train_ds = patch_source.make_source_epoch_dataset(source, config.batch_size, config.seed, start_epoch,
                                                      config.epochs, steps)
    callbacks = [
        LearningRateLogger(),
        EpochCommit(ckpt, epoch_var, history_var, rows, trainer.net, write_dir),
    ]
    t0 = time.time()
    history = trainer.fit(
        train_ds,
        epochs=config.epochs,
        initial_epoch=start_epoch,
        steps_per_epoch=steps,
        validation_data=val_ds,
        validation_freq=_validation_epochs(config, start_epoch),
        callbacks=callbacks,
        shuffle=False,
        verbose=verbose,
    )
    print(f"trained epochs {start_epoch} -> {config.epochs} in {time.time() - t0:.1f} s", flush=True)
    return trainer, history.history


def _validation_epochs(config: TrainConfig, start_epoch: int) -> list[int]:
    """1-based epochs to validate on: every val_every, and the last one."""
    epochs = {e for e in range(1, config.epochs + 1) if e % config.val_every == 0} | {config.epochs}
    return sorted(e for e in epochs if e > start_epoch)


def saved_config(model_dir: str) -> TrainConfig | None:
    """The TrainConfig a model_dir was trained with (its config.json), or None if it has none yet."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return TrainConfig.from_json(json.load(f))
    except (ValueError, TypeError) as e:  # damaged JSON, or not a TrainConfig's keys
        raise ValueError(f"{path}: not a training config ({e}); use a new model_dir or delete that one") from None


#: What a resumed run must share with the model_dir's: the net and the tasks (epochs etc. may change).
SAME_NET = ("losses", "weighting", "channel_attention", "ca_variant", "num_res_blocks", "texture_loss", "perceptual")


def check_same_config(config: TrainConfig, model_dir: str) -> None:
    """Refuse to resume a model_dir with a different net or task set (epochs etc. may change)."""
    old = saved_config(model_dir)
    if old is None:
        return
    diff = [k for k in SAME_NET if getattr(old, k) != getattr(config, k)]
    if diff:
        raise ValueError(
            f"--model_dir: {model_dir} holds a run with different {', '.join(diff)}; use a new --model_dir"
        )


# What a finished or half-finished run must share with the run asked for, beyond SAME_NET, before a
# driver (experiments.ablation) reuses its model_dir: otherwise its scores belong to another setting.
# Epochs may grow (the run then resumes and trains on), not shrink.
SAME_SETTINGS = ("data_dir", "crop_size", "batch_size", "steps_per_epoch", "lr", "lr_decay_epochs", "seed",
                 "fixed_weights", "stable_weights", "mixed_precision", "init_from")


def check_reusable(config: TrainConfig, model_dir: str) -> None:
    """Refuse to reuse a model_dir trained with other settings: ValueError naming each difference."""
    old = saved_config(model_dir)
    if old is None:
        return

    def norm(name, cfg):
        value = getattr(cfg, name)
        return os.path.realpath(value) if name == "data_dir" and value else value

    diff = [f"{k} {norm(k, old)!r} (asked: {norm(k, config)!r})" for k in SAME_NET + SAME_SETTINGS
            if norm(k, old) != norm(k, config)]
    if old.epochs > config.epochs:
        diff.append(f"epochs {old.epochs} (asked: {config.epochs})")
    if diff:
        raise ValueError(f"{model_dir} was trained with other settings: {'; '.join(diff)}; "
                         "use a new --output_dir or delete that folder")


def plot_training_curves(model_dir: str) -> str:
    """Draw task weights, task losses (log scale) and lr per epoch from history.csv -> PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(os.path.join(model_dir, HISTORY_FILE))
    if not rows:
        raise ValueError(f"{model_dir}/{HISTORY_FILE} is empty")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    cols = rows[0].keys()
    groups = [
        ("task weights w_i", [c for c in cols if c.startswith("w_")], False),
        ("task losses L_i", [c for c in cols if c.startswith("loss_")], True),
        ("grad norms on layer5", [c for c in cols if c.startswith("gnorm_")], True),
        ("validation PSNR (paper protocol)", [c for c in cols if c == "val_psnr"], False),
    ]
    groups = [g for g in groups if g[1]]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), squeeze=False)
    for ax, (title, names, log) in zip(axes[0], groups):
        for name in names:
            xs = [e for e, r in zip(epochs, rows) if r.get(name) not in (None, "")]
            ys = [float(r[name]) for r in rows if r.get(name) not in (None, "")]
            ax.plot(xs, ys, label=name, marker="." if len(xs) < 30 else None)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(os.path.basename(os.path.normpath(model_dir)))
    fig.tight_layout()
    path = os.path.join(model_dir, CURVES_FILE)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


__all__ = ["train", "build_trainer", "check_reusable", "plot_training_curves"]
