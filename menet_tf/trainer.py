"""The multi-task trainer: a keras.Model wrapping the de-raining net with a custom train_step.

One training step (spec sections 4 and 6):
  1. b = net(O, training=True) under a GradientTape (BN statistics update).
  2. L_i for every active task, kept as a Python list, under a second tape that watches b.
  3. Task weights: fixed; LB from the losses; GB from g_i = ||dL_i / dW_layer5||: each task's gradient
     dL_i/db is taken once, and its norm on layer5's kernel backpropagates dL_i/db from the output
     through layer5 only (a few percent of the step), never through the whole net.
  4. total = sum_i w_i L_i (weights carry no gradient); its gradient at the output, dtotal/db =
     sum_i w_i dL_i/db (from the per-task gradients under GB, else one gradient of the total), divided by
     the number of replicas (gradients are summed across replicas) and multiplied by the optimizer's loss
     scale under mixed_float16.
  5. One backward pass of the net from that output gradient to all its variables; Adam applies it.
  So each loss is differentiated once per step, whatever the weighting: the same gradient as
  differentiating sum_i w_i L_i through the net (the chain rule), without repeating the losses'
  backward passes (the Sobel net's is 4 % of a bfloat16 step) for GB's norms.

Every task loss, every task weight, the total (``loss``) and, for GB (or when asked), the per-task
gradient norms are tracked in their own ``keras.metrics.Mean`` and so appear in the progress bar and in
``History``. ``test_step`` scores the paper way: ``tf.image.psnr`` / ``tf.image.ssim`` with max_val 255
on the clipped float output, averaged per crop, BN in inference mode.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from menet_tf import losses as losses_lib
from menet_tf import weighting as weighting_lib
from menet_tf.model import shared_kernel

ADAM_EPSILON = 1e-8


def learning_rate_schedule(
    steps_per_epoch: int, learning_rate: float = 1e-3, decay_epochs: int = 40, decay_rate: float = 0.1
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Staircase decay by ``decay_rate`` every ``decay_epochs`` epochs (1e-3, 1e-4 from 40, 1e-5 from 80)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    return keras.optimizers.schedules.ExponentialDecay(
        learning_rate, decay_steps=decay_epochs * steps_per_epoch, decay_rate=decay_rate, staircase=True
    )


def make_optimizer(
    steps_per_epoch: int, learning_rate: float = 1e-3, decay_epochs: int = 40, decay_rate: float = 0.1
) -> keras.optimizers.Adam:
    """Adam(lr schedule, beta1 0.9, beta2 0.999, epsilon 1e-8): the released settings."""
    schedule = learning_rate_schedule(steps_per_epoch, learning_rate, decay_epochs, decay_rate)
    return keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.999, epsilon=ADAM_EPSILON)


class MultiTaskTrainer(keras.Model):
    """Trains ``net`` on (rainy, clean) batches with several task losses and a task weighting.

    tasks: task names in order, from "p" (L_p), "e" (L_e), "t" (L_t), "vgg" (VGG19 perceptual).
    weighting: "fixed", "gb" or "lb" (see menet_tf.weighting).
    fixed_weights: per-task overrides of weighting.DEFAULT_FIXED_WEIGHTS ("fixed" only).
    stable_weights: the algebraically equal "stable" GB/LB form instead of the literal float32 one.
    track_grad_norms: also compute and log the per-task gradient norms on layer5 when not using GB.
    """

    def __init__(
        self,
        net: keras.Model,
        tasks: Sequence[str] = ("p",),
        weighting: str = "fixed",
        fixed_weights: dict[str, float] | None = None,
        stable_weights: bool = False,
        texture_form: str = "released",
        vgg19_weights: str | None = None,
        track_grad_norms: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.net = net
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("at least one task loss is needed")
        weighting_lib.validate(weighting, self.tasks)
        self.weighting = weighting
        self.stable_weights = bool(stable_weights)
        self.loss_fns = list(losses_lib.make_task_losses(self.tasks, texture_form, vgg19_weights).values())
        self.fixed = weighting_lib.fixed_weights(self.tasks, fixed_weights) if weighting == "fixed" else None
        self.track_grad_norms = weighting == "gb" or bool(track_grad_norms)

        mean = keras.metrics.Mean
        self.total_tracker = mean(name="loss")
        self.loss_trackers = [mean(name=f"loss_{t}") for t in self.tasks]
        self.weight_trackers = [mean(name=f"w_{t}") for t in self.tasks]
        self.norm_trackers = [mean(name=f"gnorm_{t}") for t in self.tasks] if self.track_grad_norms else []
        self.psnr_tracker = mean(name="psnr")
        self.ssim_tracker = mean(name="ssim")

    # -- Keras plumbing -------------------------------------------------------------------------------

    @property
    def metrics(self):
        return [
            self.total_tracker,
            *self.loss_trackers,
            *self.weight_trackers,
            *self.norm_trackers,
            self.psnr_tracker,
            self.ssim_tracker,
        ]

    def call(self, inputs, training=None):
        return self.net(inputs, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras (3.15) builds a model created under a strategy from its first distributed batch, reduced
        with ``strategy.reduce("MEAN", (x, y))``; MultiWorkerMirroredStrategy cannot reduce a tuple
        ("Attempt to convert a value (PerReplica...) to a Tensor"), so multi-worker training stopped
        before its first step. Only shapes and dtypes matter here: build from this worker's first
        replica's part of the batch instead. (Keras resets the epoch iterator afterwards, so no batch is
        consumed.)"""
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is not None and iterator is not None and data_batch is None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # -- the step ---------------------------------------------------------------------------------------

    def task_losses(self, clean, derained) -> list[tf.Tensor]:
        """Each task's loss, under the name scope ``loss_<task>`` (the step profile groups ops by it)."""
        out = []
        for task, fn in zip(self.tasks, self.loss_fns):
            with tf.name_scope(f"loss_{task}"):
                out.append(fn(clean, derained))
        return out

    def _loss_scale(self) -> tf.Tensor:
        """The optimizer's loss scale (1 unless it is a mixed_float16 LossScaleOptimizer), float32."""
        return tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float32)

    def _grad_norms(self, net_tape, derained, output_grads):
        """||dL_i / dW_layer5|| per task from dL_i/db. Under a loss-scaling optimizer (mixed_float16) the
        backward pass starts from the loss scale times dL_i/db (as the step's own gradient does, so
        float16 gradients neither underflow nor differ) and the norm is divided by it again; an overflow
        gives an inf norm, and the optimizer skips that step."""
        kernel = shared_kernel(self.net)
        scale = self._loss_scale()
        norms = []
        for g in output_grads:
            grad = None if g is None else net_tape.gradient(derained, kernel, output_gradients=g * scale)
            norms.append(tf.zeros([]) if grad is None else tf.norm(tf.cast(grad, tf.float32)) / scale)
        return norms

    def _weights(self, task_losses, norms):
        if self.weighting == "lb":
            return weighting_lib.loss_balance(task_losses, self.stable_weights)
        if self.weighting == "gb":
            return weighting_lib.gradient_balance(norms, self.stable_weights)
        return [tf.constant(w, tf.float32) for w in self.fixed]

    def train_step(self, data):
        rainy, clean, _ = keras.utils.unpack_x_y_sample_weight(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        per_task = self.track_grad_norms
        with tf.GradientTape(persistent=per_task) as net_tape:
            derained = self.net(rainy, training=True)
        with tf.GradientTape(persistent=per_task) as loss_tape:
            loss_tape.watch(derained)
            task_losses = self.task_losses(clean, derained)
            with tf.name_scope("task_weighting"):
                norms = output_grads = None
                if per_task:
                    output_grads = [loss_tape.gradient(loss, derained) for loss in task_losses]
                    norms = self._grad_norms(net_tape, derained, output_grads)
                weights = self._weights(task_losses, norms)
            total = tf.add_n([w * l for w, l in zip(weights, task_losses)])
        if per_task:
            d_total = tf.add_n([w * g for w, g in zip(weights, output_grads) if g is not None])
        else:
            d_total = loss_tape.gradient(total, derained)
        del loss_tape
        d_total = d_total * (self._loss_scale() / replicas)
        variables = self.net.trainable_variables
        grads = net_tape.gradient(derained, variables, output_gradients=d_total)
        del net_tape
        self.optimizer.apply_gradients(zip(grads, variables))

        self.total_tracker.update_state(total)
        for tracker, value in zip(self.loss_trackers, task_losses):
            tracker.update_state(value)
        for tracker, value in zip(self.weight_trackers, weights):
            tracker.update_state(value)
        for tracker, value in zip(self.norm_trackers, norms or []):
            tracker.update_state(value)
        return self._results(self.total_tracker, *self.loss_trackers, *self.weight_trackers, *self.norm_trackers)

    def test_step(self, data):
        rainy, clean, _ = keras.utils.unpack_x_y_sample_weight(data)
        derained = self.net(rainy, training=False)
        clean = tf.cast(clean, tf.float32)
        self.psnr_tracker.update_state(tf.image.psnr(derained, clean, max_val=255.0))
        self.ssim_tracker.update_state(tf.image.ssim(derained, clean, max_val=255.0))
        for tracker, value in zip(self.loss_trackers, self.task_losses(clean, derained)):
            tracker.update_state(value)
        return self._results(self.psnr_tracker, self.ssim_tracker, *self.loss_trackers)

    @staticmethod
    def _results(*trackers):
        """Each tracker's value. Across several workers Keras (3.15) averages a step's outputs with
        ``strategy.reduce("MEAN", v, axis=0)``, which needs a batch axis: there each value is [1]."""
        results = {t.name: t.result() for t in trackers}
        if _multi_worker(tf.distribute.get_strategy()):
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results


def _multi_worker(strategy) -> bool:
    """A MultiWorkerMirroredStrategy with more than one worker (as Keras' trainer tells them apart)."""
    in_mode = getattr(getattr(strategy, "extended", None), "_in_multi_worker_mode", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(in_mode and in_mode())
