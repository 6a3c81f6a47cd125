"""Task weighting (spec section 4): total loss = sum_i w_i * L_i over the active tasks, L_p included.

  Fixed  w_p = 1 and a fixed coefficient per auxiliary task (defaults below).
  GB     gradient balance (Algorithm 1): g_i = ||dL_i / dW||_2 with W the kernel of ``layer5`` (the last
         conv, the "shared layer"); w_i = stop_gradient(1 - g_i / sum_j g_j).
  LB     loss balance (Algorithm 2): w_i = stop_gradient(1 - L_i / sum_j L_j).

Both dynamic weightings are recomputed every step from the current batch: no moving average, no
renormalisation (the weights sum to T - 1). With two tasks the weighted contributions are equal:
LB gives w_1 L_1 = w_2 L_2 and GB gives w_1 g_1 = w_2 g_2.

Numerics. The released code evaluates ``1 - x_i / sum_j x_j`` literally in float32 ("literal", the
default). With the released texture loss (1e10 and more against L_p + L_e of 1e2..1e3) the ratio rounds
to exactly 1, so w_t is exactly 0 and L_t adds nothing to the gradient. ``stable=True`` computes the
algebraically equal ``(sum_{j != i} x_j) / sum_j x_j`` from the other tasks' values directly; it keeps
w_t near 1e-8, and then the texture term's gradient is large and noisy (it trained worse; spec
section 4). Degenerate cases are guarded: a zero (or non-finite) sum gives a ratio of 0, so every
weight is 1 (both forms); any non-finite weight that would remain is replaced by 0. No NaN or Inf ever
reaches a weight.

Fixed weights with L_t: the released code has none. Here w_t = 1e-9 (documented choice): a typical
released L_t of ~1e10 then contributes ~10, the size of L_p early in training.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

WEIGHTINGS = ("fixed", "gb", "lb")
DEFAULT_FIXED_WEIGHTS = {"p": 1.0, "e": 1e-2, "t": 1e-9, "vgg": 1e-3}


def balance_weights(values: Sequence[tf.Tensor], stable: bool = False) -> list[tf.Tensor]:
    """w_i = 1 - x_i / sum_j x_j for non-negative scalars x (losses or gradient norms), float32.

    ``stable=False`` (released, literal float32) or ``stable=True`` ((sum_{j != i} x_j) / sum_j x_j).
    The result carries no gradient (stop_gradient).
    """
    xs = [tf.stop_gradient(tf.cast(v, tf.float32)) for v in values]
    total = tf.add_n(xs)
    ok = tf.logical_and(tf.math.is_finite(total), total > 0.0)
    safe_total = tf.where(ok, total, 1.0)
    weights = []
    for i, x in enumerate(xs):
        if stable:
            others = tf.add_n([xj for j, xj in enumerate(xs) if j != i]) if len(xs) > 1 else tf.zeros_like(x)
            w = tf.where(ok, others / safe_total, 1.0)
        else:
            w = 1.0 - tf.where(ok, x / safe_total, 0.0)
        weights.append(tf.where(tf.math.is_finite(w), w, 0.0))
    return weights


def loss_balance(losses: Sequence[tf.Tensor], stable: bool = False) -> list[tf.Tensor]:
    """LB (Algorithm 2): weights from the task losses of the current batch."""
    return balance_weights(losses, stable=stable)


def gradient_balance(grad_norms: Sequence[tf.Tensor], stable: bool = False) -> list[tf.Tensor]:
    """GB (Algorithm 1): weights from the per-task gradient norms on the shared layer's kernel."""
    return balance_weights(grad_norms, stable=stable)


def fixed_weights(tasks: Sequence[str], overrides: dict[str, float] | None = None) -> list[float]:
    """The fixed coefficient of each task: DEFAULT_FIXED_WEIGHTS updated with ``overrides``."""
    table = {**DEFAULT_FIXED_WEIGHTS, **(overrides or {})}
    unknown = [t for t in tasks if t not in table]
    if unknown:
        raise ValueError(f"no fixed weight for tasks {unknown}")
    return [float(table[t]) for t in tasks]


def validate(weighting: str, tasks: Sequence[str]) -> None:
    """Raise ValueError for a weighting that cannot apply to these tasks."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if weighting in ("gb", "lb") and len(tasks) < 2:
        raise ValueError(f"weighting {weighting!r} balances several tasks, but only {list(tasks)} is active")
