"""MENET's task losses, all on RGB values in 0..255 (spec section 3).

  L_p  reconstruction: mean squared error over all B*H*W*C elements.
  L_e  edge-aware: MSE between phi(B) and phi(b), phi = the fixed Sobel "loss network" (depthwise, per
       RGB channel, dy = [[-1,-2,-1],[0,0,0],[1,2,1]], dx = dy^T, reflect padding 1, unnormalised),
       output [B, H, W, 3, 2] -- exactly ``tf.image.sobel_edges``; computed as phi(b - B) (phi is linear).
  L_t  texture matching, two forms:
       "released" (default): F = reshape(space_to_depth(img, 4), [B, HW/16, 48]); G = F^T F (48x48, not
           normalised); s = mean(G) per image; L_t = mean_batch (s(B) - s(b))^2. Huge (1e7..1e13):
           only dynamic weighting makes it usable.
       "paper" (Eq. 7, K = 4, M = HW/16): ||G(B) - G(b)||_F^2 per image, averaged over the batch, with
           the normalisation chosen here: G = F^T F / M (the Gram matrix of the M patch features
           averaged over patches), which makes the loss independent of the image size.
  VGG19 perceptual (Table IV): MSE between VGG19 ``block3_conv4`` features of B and b, caffe
       preprocessing (RGB -> BGR, minus [103.939, 116.779, 123.68]); ImageNet weights from a local file.

Every loss is a plain function ``loss(clean, derained) -> scalar float32``; inputs are cast to float32,
so the losses stay in float32 under a mixed-precision policy.
"""

from __future__ import annotations

import os
from typing import Callable

import keras
import tensorflow as tf

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

TASK_NAMES = ("p", "e", "t", "vgg")
TEXTURE_FORMS = ("released", "paper")
TEXTURE_PATCH = 4  # K: the 4x4 patches of the texture loss
VGG_LAYER = "block3_conv4"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def _f32(x):
    return tf.cast(x, tf.float32)


@tf.custom_gradient
def mean_square(x):
    """mean(x^2) over every element of a float32 tensor, with the gradient 2 x / N written as one
    element-wise pass (autodiff of reduce_mean(square(x)) tiles the scalar, then multiplies twice: three
    passes over a full-resolution tensor, 5 % of a bfloat16 training step with L_p and L_e)."""
    n = tf.cast(tf.size(x), tf.float32)

    def grad(dy):
        return x * (2.0 * dy / n)

    return tf.reduce_mean(tf.square(x)), grad


def reconstruction_loss(clean, derained):
    """L_p: mean squared error over every element."""
    return mean_square(_f32(derained) - _f32(clean))


def sobel_edges(images):
    """The fixed Sobel loss network phi: [B, H, W, C] -> [B, H, W, C, 2] (dy, dx), reflect padded."""
    return tf.image.sobel_edges(_f32(images))


@keras.saving.register_keras_serializable(package="menet_tf")
class SobelLossNetwork(keras.layers.Layer):
    """phi as a (weight-free, non-trainable) Keras layer, for use on KerasTensors."""

    def __init__(self, **kwargs):
        super().__init__(trainable=False, **kwargs)

    def call(self, images):
        return sobel_edges(images)


def edge_loss(clean, derained):
    """L_e: MSE between the Sobel responses of the clean and the de-rained image.

    phi is linear (reflect padding and the Sobel filters), so phi(b) - phi(B) = phi(b - B): one pass of
    the Sobel net over the difference instead of two (the same value up to float rounding)."""
    return mean_square(sobel_edges(_f32(derained) - _f32(clean)))


def patch_features(images, patch: int = TEXTURE_PATCH):
    """F: [B, H, W, 3] -> [B, HW/K^2, 3K^2], the K x K patches as rows (space_to_depth)."""
    x = tf.nn.space_to_depth(_f32(images), patch)
    shape = tf.shape(x)
    return tf.reshape(x, [shape[0], shape[1] * shape[2], shape[3]])


def gram(features, normalise: bool = False):
    """G = F^T F per image: [B, M, D] -> [B, D, D]; divided by M when ``normalise``."""
    g = tf.linalg.matmul(features, features, transpose_a=True)
    if normalise:
        g = g / tf.cast(tf.shape(features)[1], g.dtype)
    return g


def texture_loss_released(clean, derained):
    """L_t as released: (mean(G(B)) - mean(G(b)))^2 averaged over the batch."""
    s_clean = tf.reduce_mean(gram(patch_features(clean)), axis=[1, 2])
    s_derained = tf.reduce_mean(gram(patch_features(derained)), axis=[1, 2])
    return tf.reduce_mean(tf.square(s_clean - s_derained))


def texture_loss_paper(clean, derained):
    """L_t as in the paper (Eq. 7): squared Frobenius distance of the M-normalised Gram matrices."""
    g_clean = gram(patch_features(clean), normalise=True)
    g_derained = gram(patch_features(derained), normalise=True)
    return tf.reduce_mean(tf.reduce_sum(tf.square(g_clean - g_derained), axis=[1, 2]))


def texture_loss(form: str = "released") -> LossFn:
    if form == "released":
        return texture_loss_released
    if form == "paper":
        return texture_loss_paper
    raise ValueError(f"texture loss form must be one of {TEXTURE_FORMS}, got {form!r}")


def caffe_preprocess(images):
    """RGB 0..255 -> BGR minus the ImageNet channel means (Keras' VGG 'caffe' mode)."""
    bgr = _f32(images)[..., ::-1]
    return bgr - tf.constant(CAFFE_BGR_MEAN, tf.float32)


def vgg19_feature_extractor(weights_path: str | None) -> keras.Model:
    """VGG19 up to ``block3_conv4``, frozen (under the global dtype policy; the loss is taken in float32). ``weights_path``: a local Keras VGG19 weights file
    (e.g. ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``); None gives random weights (tests only)."""
    if weights_path is not None and not os.path.isfile(weights_path):
        raise FileNotFoundError(
            f"{weights_path}: VGG19 weights file not found (ImageNet weights cannot be downloaded here; "
            "pass a local Keras VGG19 'notop' .h5 file)"
        )
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    if weights_path is not None:
        try:
            vgg.load_weights(weights_path)
        except Exception as e:  # noqa: BLE001 - h5py/keras raise many types for a wrong file
            raise ValueError(f"{weights_path}: not a Keras VGG19 (notop) weights file ({e})") from None
    features = keras.Model(vgg.input, vgg.get_layer(VGG_LAYER).output, name="vgg19_block3_conv4")
    features.trainable = False
    return features


def perceptual_loss(weights_path: str | None) -> LossFn:
    """The Table IV VGG19 loss: MSE between block3_conv4 features of B and b."""
    features = vgg19_feature_extractor(weights_path)

    def vgg_loss(clean, derained):
        f_clean = features(caffe_preprocess(clean), training=False)
        f_derained = features(caffe_preprocess(derained), training=False)
        return tf.reduce_mean(tf.square(_f32(f_derained) - _f32(f_clean)))

    vgg_loss.feature_extractor = features
    return vgg_loss


def make_task_losses(
    tasks, texture_form: str = "released", vgg19_weights: str | None = None
) -> dict[str, LossFn]:
    """The loss function of each named task, in the given order: "p", "e", "t", "vgg"."""
    out = {}
    for name in tasks:
        if name == "p":
            out[name] = reconstruction_loss
        elif name == "e":
            out[name] = edge_loss
        elif name == "t":
            out[name] = texture_loss(texture_form)
        elif name == "vgg":
            out[name] = perceptual_loss(vgg19_weights)
        else:
            raise ValueError(f"unknown loss {name!r}: choose from {', '.join(TASK_NAMES)}")
    if len(out) != len(list(tasks)):
        raise ValueError(f"a loss is named twice in {list(tasks)}")
    return out
