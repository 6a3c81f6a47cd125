"""The multi-task trainer: a keras.Model wrapping the de-raining net with a custom train_step.

One training step (spec sections 4 and 6):
  1. b = net(O, training=True) under a GradientTape (BN statistics update).
  2. L_i for every active task, kept as a Python list inside the tape.
  3. Task weights: fixed; LB from the losses; GB from g_i = ||dL_i / dW_layer5||, each a gradient taken
     with recording paused, so it only backpropagates from the output through layer5's kernel (a few
     percent of the step), never through the whole net.
  4. total = sum_i w_i L_i (weights carry no gradient), divided by the number of replicas (gradients
     are summed across replicas), scaled by the optimizer's loss scale under mixed_float16.
  5. One gradient of the total over the net's variables; Adam applies it.

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

    # -- the step ---------------------------------------------------------------------------------------

    def task_losses(self, clean, derained) -> list[tf.Tensor]:
        return [fn(clean, derained) for fn in self.loss_fns]

    def _grad_norms(self, tape, task_losses):
        """||dL_i / dW_layer5|| per task. Under a loss-scaling optimizer (mixed_float16) the backward
        pass starts from the loss scale (as the step's own gradient does, so float16 gradients neither
        underflow nor differ) and the norm is divided by it again; an overflow gives an inf norm, and the
        optimizer skips that step."""
        kernel = shared_kernel(self.net)
        scale = tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float32)
        norms = []
        for loss in task_losses:
            grad = tape.gradient(loss, kernel, output_gradients=tf.cast(scale, loss.dtype))
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
        with tf.GradientTape(persistent=self.track_grad_norms) as tape:
            derained = self.net(rainy, training=True)
            task_losses = self.task_losses(clean, derained)
            norms = None
            if self.track_grad_norms:
                with tape.stop_recording():
                    norms = self._grad_norms(tape, task_losses)
            weights = self._weights(task_losses, norms)
            total = tf.add_n([w * l for w, l in zip(weights, task_losses)])
            scaled = self.optimizer.scale_loss(total / replicas)
        variables = self.net.trainable_variables
        grads = tape.gradient(scaled, variables)
        del tape
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
        return {t.name: t.result() for t in trackers}
