"""Run one training configuration end to end, resumably (the library behind ``experiments.train``).

model_dir layout:
  config.json        the TrainConfig it was trained with (also read by menet_tf.model.load_net)
  net.weights.h5     the de-raining net after the last finished epoch
  ckpt/              tf.train.Checkpoint of net + optimizer + epoch (re-running the command resumes)
  history.csv        one row per epoch: every task loss and weight, gradient norms, lr, val PSNR/SSIM
  logs/              TensorBoard
  training_curves.png  task weights and losses over training

Resume is exact: the data order of epoch e is a pure function of (seed, e), and the checkpoint holds
the optimizer's step counter (hence the scheduled learning rate) and moments.
"""

from __future__ import annotations

import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from experiments.config import TrainConfig, save_config
from menet_tf import data as data_lib
from menet_tf.model import build_derain_net, save_net
from menet_tf.trainer import MultiTaskTrainer, make_optimizer

CKPT_DIR = "ckpt"
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
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: checkpoint (net, optimizer, epoch), net weights and config; atomic enough that a
    crash loses at most the epoch in progress."""

    def __init__(self, manager, epoch_var, net, model_dir, config):
        super().__init__()
        self.manager, self.epoch_var, self.net = manager, epoch_var, net
        self.model_dir, self.config = model_dir, config

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        save_net(self.net, self.model_dir, self.config.to_json())


class HistoryCSV(keras.callbacks.Callback):
    """history.csv with one row per epoch and a stable header (the union of all keys seen), rewritten
    atomically after every epoch; a resumed run keeps the earlier rows (only those before its start)."""

    def __init__(self, path: str, start_epoch: int):
        super().__init__()
        self.path = path
        self.rows = [r for r in read_history(path) if int(r["epoch"]) < start_epoch] if start_epoch else []

    def on_epoch_end(self, epoch, logs=None):
        import csv

        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        keys = ["epoch"] + sorted({k for r in self.rows for k in r} - {"epoch"})
        with open(self.path + ".tmp", "w", newline="") as f:
            writer = csv.DictWriter(f, keys, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(self.path + ".tmp", self.path)


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


def load_patches(config: TrainConfig, data_dir: str | None = None):
    """All five-crop patches of a folder as uint8 arrays (rainy, clean), checked before training."""
    rainy, clean, _ = data_lib.make_patches(
        data_dir or config.data_dir,
        crop_size=config.crop_size,
        skip_bad_pairs=config.skip_bad_pairs,
        rainy_glob=config.rainy_glob,
        clean_glob=config.clean_glob,
        progress=True,
    )
    return rainy, clean


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

    rainy, clean = load_patches(config)
    n = len(rainy)
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
    with strategy.scope():
        trainer = build_trainer(config, steps_per_epoch=steps)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        ckpt = tf.train.Checkpoint(net=trainer.net, optimizer=trainer.optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(ckpt, os.path.join(model_dir, CKPT_DIR), max_to_keep=2)
    if manager.latest_checkpoint:
        check_same_config(config, model_dir)  # before restoring: a different net would fail obscurely
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"resuming from {manager.latest_checkpoint}: epoch {int(epoch_var.numpy())}, "
              f"step {int(trainer.optimizer.iterations.numpy())}", flush=True)
    start_epoch = int(epoch_var.numpy())
    save_config(config, model_dir)

    n_params = sum(int(np.prod(v.shape)) for v in trainer.net.trainable_variables)
    print("configuration:\n" + json.dumps(config.to_json(), indent=2, sort_keys=True), flush=True)
    print(f"trainable parameters: {n_params:,}; {n} patches, {steps} steps per epoch, "
          f"epochs {start_epoch} -> {config.epochs}", flush=True)
    if start_epoch >= config.epochs:
        print(f"{model_dir}: already trained for {start_epoch} epochs; nothing to do", flush=True)
        return trainer, {}

    train_ds = data_lib.make_epoch_dataset(rainy, clean, config.batch_size, config.seed, start_epoch,
                                          config.epochs, steps)
    callbacks = [
        LearningRateLogger(),
        EpochCheckpoint(manager, epoch_var, trainer.net, model_dir, config),
        HistoryCSV(os.path.join(model_dir, HISTORY_FILE), start_epoch),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), write_graph=False),
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
    try:
        plot_training_curves(model_dir)
    except Exception as e:  # noqa: BLE001 - a plot must never lose a finished training run
        logging.warning("could not plot training curves: %s", e)
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
                 "fixed_weights", "stable_weights", "mixed_precision")


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
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["train", "build_trainer", "check_reusable", "plot_training_curves"]
