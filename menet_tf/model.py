"""The de-raining network f_w: O (RGB, float 0..255) -> b (spec section 1).

    space_to_depth 2 -> layer1 (conv 12->16, BN) = net_1 -> ReLU
    space_to_depth 2 -> layer2 (conv 64->64, BN) = net_2 -> ReLU
    [channel attention]                              (only with CA)
    N residual blocks (no ReLU after the last add)
    + net_2 -> layer3 (conv 64->64, BN)
    depth_to_space 2 -> + net_1 -> layer4 (conv 16->16, BN)
    layer5 (conv 16->12, no BN) -> depth_to_space 2 = residual
    b = clip(O + residual, 0, 255)

``layer5``'s kernel (3x3x16x12) is the "shared layer" on which gradient balance measures the per-task
gradient norms. A model directory (written by the trainer) holds ``config.json`` and
``net.weights.h5``; :func:`load_net` rebuilds the net from them.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

from menet_tf import atomic
from menet_tf import layers as L

NET_CONFIG_KEYS = ("num_res_blocks", "channel_attention", "ca_variant")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "net.weights.h5"


def required_multiple(channel_attention: bool) -> int:
    """Height and width must be multiples of this (4; 16 with channel attention)."""
    return 16 if channel_attention else 4


def build_derain_net(
    num_res_blocks: int = 8,
    channel_attention: bool = False,
    ca_variant: str = "released",
    name: str = "menet",
) -> keras.Model:
    """Build the MENET de-raining network as a functional Keras model with input (None, None, 3).

    num_res_blocks: 8 ("shallow") or 16 ("deep"); any positive number works.
    channel_attention: insert the CA block after layer2 (H and W then multiples of 16, else of 4).
    ca_variant: "released" (x + x * a, default) or "scale_only" (x * a, an earlier release).
    """
    if num_res_blocks < 1:
        raise ValueError(f"num_res_blocks must be >= 1, got {num_res_blocks}")
    rainy = keras.Input(shape=(None, None, 3), name="rainy", dtype="float32")
    x = L.SpaceToDepth(2, name="desubpixel1")(rainy)
    net_1 = L.ConvBN(16, 12, name="layer1")(x)
    x = keras.layers.ReLU(name="layer1_relu")(net_1)
    x = L.SpaceToDepth(2, name="desubpixel2")(x)
    net_2 = L.ConvBN(64, 64, name="layer2")(x)
    x = keras.layers.ReLU(name="layer2_relu")(net_2)
    if channel_attention:
        x = L.ChannelAttention(64, variant=ca_variant, name="channel_attention")(x)
    for i in range(num_res_blocks):
        x = L.ResidualBlock(64, final_relu=i < num_res_blocks - 1, name=f"res_block{i + 1}")(x)
    x = keras.layers.Add(name="long_skip2")([x, net_2])
    x = L.ConvBN(64, 64, name="layer3")(x)
    x = L.DepthToSpace(2, name="subpixel1")(x)
    x = keras.layers.Add(name="long_skip1")([x, net_1])
    x = L.ConvBN(16, 16, name="layer4")(x)
    x = L.conv(12, 16, name="layer5")(x)
    residual = L.DepthToSpace(2, name="subpixel2")(x)
    derained = L.GlobalResidual(255.0, name="global_residual")([rainy, residual])
    return keras.Model(rainy, derained, name=name)


def shared_kernel(net: keras.Model):
    """The kernel of ``layer5`` (3x3x16x12): where GB measures per-task gradient norms."""
    return net.get_layer("layer5").kernel


def net_config(num_res_blocks: int = 8, channel_attention: bool = False, ca_variant: str = "released") -> dict:
    return {"num_res_blocks": int(num_res_blocks), "channel_attention": bool(channel_attention), "ca_variant": ca_variant}


def save_net(net: keras.Model, model_dir: str, config: dict) -> None:
    """Write ``config.json`` (must contain the NET_CONFIG_KEYS) and ``net.weights.h5`` into model_dir."""
    missing = [k for k in NET_CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"config lacks the net keys {missing}")
    os.makedirs(model_dir, exist_ok=True)
    atomic.write_text(os.path.join(model_dir, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True))
    save_weights(net, model_dir)


def save_weights(net: keras.Model, model_dir: str, before_rename=None) -> str:
    """Write ``model_dir/net.weights.h5`` whole or not at all (a temporary name, then a rename);
    ``before_rename()`` runs between the two (crash-point tests)."""
    path = os.path.join(model_dir, WEIGHTS_FILE)
    with atomic.atomic_path(path) as tmp:
        net.save_weights(tmp)
        if before_rename is not None:
            before_rename()
    return path


def read_config(model_dir: str) -> dict:
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no {CONFIG_FILE} here; is {model_dir!r} a menet-tf model directory?")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def load_net(model_dir: str) -> keras.Model:
    """Rebuild the net described by ``model_dir/config.json`` and load ``model_dir/net.weights.h5``."""
    config = read_config(model_dir)
    net = build_derain_net(**{k: config[k] for k in NET_CONFIG_KEYS if k in config})
    weights = os.path.join(model_dir, WEIGHTS_FILE)
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{weights}: no trained weights in {model_dir!r} (has training finished an epoch?)")
    net.load_weights(weights)
    return net


def _res_blocks(net: keras.Model) -> list[str]:
    return sorted((layer.name for layer in net.layers if layer.name.startswith("res_block")),
                  key=lambda n: int(n[len("res_block"):]))


def deepen(source: keras.Model, target: keras.Model) -> int:
    """Give ``target`` (a :func:`build_derain_net` with more residual blocks than ``source``, otherwise the
    same net) the function of ``source``: every layer outside the blocks copied, ``source``'s N blocks copied
    into ``target``'s last N, and each block in front made an identity (its second BN's gamma and beta zero,
    so ``conv_bn2`` gives 0 and the block gives ReLU(x + 0) = x, its input being non-negative: it follows a
    ReLU, or channel attention ``x + x*a`` / ``x*a`` with ``a > 0`` of one). The last block keeps having no
    final ReLU, so ``target(x) == source(x)``; training then grows the new blocks from there (a
    function-preserving deepening, as in Net2Net's Net2DeeperNet). Returns the number of identity blocks.
    ValueError if the nets differ otherwise."""
    src_blocks, dst_blocks = _res_blocks(source), _res_blocks(target)
    added = len(dst_blocks) - len(src_blocks)

    def others(net):
        return sorted(layer.name for layer in net.layers if not layer.name.startswith("res_block"))

    if added < 0 or others(source) != others(target):
        raise ValueError(f"cannot deepen {source.name} ({len(src_blocks)} blocks, layers {others(source)}) into "
                         f"{target.name} ({len(dst_blocks)} blocks, layers {others(target)})")
    pairs = [(name, name) for name in others(source)] + list(zip(src_blocks, dst_blocks[added:]))
    for src, dst in pairs:
        weights = source.get_layer(src).get_weights()
        if [w.shape for w in weights] != [w.shape for w in target.get_layer(dst).get_weights()]:
            raise ValueError(f"cannot deepen: layer {src} of {source.name} and {dst} of {target.name} differ")
        target.get_layer(dst).set_weights(weights)
    for name in dst_blocks[:added]:
        bn = target.get_layer(name).conv_bn2.bn
        bn.gamma.assign(np.zeros(bn.gamma.shape, "float32"))
        bn.beta.assign(np.zeros(bn.beta.shape, "float32"))
    return added


def net_config_of(net: keras.Model) -> dict:
    """The :func:`net_config` that rebuilds ``net`` (a :func:`build_derain_net`)."""
    ca = [layer for layer in net.layers if isinstance(layer, L.ChannelAttention)]
    return net_config(len(_res_blocks(net)), bool(ca), ca[0].variant if ca else "released")


def interpolate(start: keras.Model, end: keras.Model, alpha: float) -> keras.Model:
    """A new net of ``end``'s architecture whose every weight (trainable or BN moving statistic) is
    ``(1 - alpha) * start + alpha * end``: a weight-space interpolation between a model and its fine-tuned
    descendant (WiSE-FT, Wortsman et al. 2022). ``alpha`` 0 gives ``start``'s function, 1 ``end``'s.

    ``start`` may have fewer residual blocks than ``end`` (``end`` grown from it by :func:`deepen`): it
    is then taken deepened, its identity blocks carrying ``end``'s own weights except the zero gamma and beta
    of their second BN (any such block is the identity, whatever its other weights), so that those blocks
    fade in with ``alpha`` and ``alpha == 0`` is still exactly ``start``'s function. ValueError if
    ``alpha`` is outside [0, 1] or the nets differ otherwise."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    config = net_config_of(end)
    origin = start
    if len(_res_blocks(start)) != len(_res_blocks(end)):
        origin = build_derain_net(**config)
        origin.set_weights(end.get_weights())
        deepen(start, origin)  # ValueError if they differ otherwise
    elif [w.shape for w in start.weights] != [w.shape for w in end.weights]:
        raise ValueError(f"cannot interpolate {start.name} and {end.name}: their weights differ in shape")
    out = build_derain_net(**config)
    out.set_weights([(1.0 - alpha) * a + alpha * b for a, b in zip(origin.get_weights(), end.get_weights())])
    return out


def split_at_channel_attention(net: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Two functional models that reuse ``net``'s own layers (shared weights, no copies), cut at the
    channel-attention block, for exact tiled inference of CA nets (``menet_tf.inference``):

    ``map_model``: rainy [B, H, W, 3] -> CA's pre-mean map [B, H/16, W/16, 64] (conv3's output, see
        ``ChannelAttention.pre_mean``); sigmoid(its mean over H, W) is the net's attention ``a``.
    ``fixed_model``: [rainy [B, H, W, 3], attention [B, 1, 1, 64]] -> derained [B, H, W, 3], the net with
        the CA block applying the given ``a`` (``ChannelAttention.apply``) instead of its own.

    So ``fixed_model([x, sigmoid(mean(map_model(x)))]) == net(x)``. H, W multiples of 16. The layers are
    taken by name in the order of :func:`build_derain_net`; a net of another architecture, or one without
    channel attention, raises ValueError.
    """
    names = [layer.name for layer in net.layers]
    if "channel_attention" not in names:
        raise ValueError(f"{net.name}: no 'channel_attention' layer (a net without channel attention)")
    blocks = _res_blocks(net)
    expected = ["rainy", "desubpixel1", "layer1", "layer1_relu", "desubpixel2", "layer2", "layer2_relu",
                "channel_attention", *blocks, "long_skip2", "layer3", "subpixel1", "long_skip1", "layer4",
                "layer5", "subpixel2", "global_residual"]
    if not blocks or sorted(names) != sorted(expected) or blocks != [f"res_block{i + 1}" for i in range(len(blocks))]:
        raise ValueError(f"{net.name}: not a build_derain_net architecture (layers {names})")
    get = net.get_layer
    ca = get("channel_attention")

    def trunk(rainy):
        net_1 = get("layer1")(get("desubpixel1")(rainy))
        net_2 = get("layer2")(get("desubpixel2")(get("layer1_relu")(net_1)))
        return net_1, net_2, get("layer2_relu")(net_2)

    rainy = keras.Input(shape=(None, None, 3), name="rainy", dtype="float32")
    map_model = keras.Model(rainy, ca.pre_mean(trunk(rainy)[2]), name=f"{net.name}_ca_map")

    rainy = keras.Input(shape=(None, None, 3), name="rainy", dtype="float32")
    attention = keras.Input(shape=(1, 1, ca.filters), name="attention", dtype="float32")
    net_1, net_2, x = trunk(rainy)
    x = ca.apply(x, attention)
    for name in blocks:
        x = get(name)(x)
    x = get("long_skip2")([x, net_2])
    x = get("long_skip1")([get("subpixel1")(get("layer3")(x)), net_1])
    residual = get("subpixel2")(get("layer5")(get("layer4")(x)))
    derained = get("global_residual")([rainy, residual])
    fixed_model = keras.Model([rainy, attention], derained, name=f"{net.name}_fixed_attention")
    return map_model, fixed_model
