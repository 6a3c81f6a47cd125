"""Training configuration: one dataclass, the absl flags that fill it, and flagfile loading.

The flags are defined by :func:`define_train_flags` on any ``absl.flags.FlagValues``, so the
``experiments.train`` CLI, the ablation driver, the benchmarks and the tests all read a flagfile
(``experiments/table1/lp_le_lb.flags`` ...) with the same parser and the same defaults: the paper's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field

from absl import flags

from experiments.cliutil import check_writable
from menet_tf import losses as losses_lib
from menet_tf import weighting as weighting_lib
from menet_tf.layers import CA_VARIANTS
from menet_tf.patch_source import CACHE_MODES

EXPERIMENTS_DIR = os.path.dirname(os.path.abspath(__file__))
LOSS_LETTERS = ("p", "e", "t")
DISTRIBUTIONS = ("default", "mirrored", "multi_worker")
PERCEPTUAL = ("sobel", "vgg19")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as model_dir/config.json)."""

    losses: tuple[str, ...] = ("p",)
    weighting: str = "fixed"
    fixed_weights: dict[str, float] = field(default_factory=dict)
    stable_weights: bool = False
    track_grad_norms: bool = False
    channel_attention: bool = False
    ca_variant: str = "released"
    num_res_blocks: int = 8
    texture_loss: str = "released"
    perceptual: str = "sobel"
    vgg19_weights: str | None = None
    data_dir: str | None = None
    rainy_glob: str | None = None
    clean_glob: str | None = None
    skip_bad_pairs: bool = False
    cache: str = "memory"
    cache_dir: str | None = None
    val_dir: str | None = None
    val_every: int = 10
    crop_size: int = 224
    batch_size: int = 20
    epochs: int = 100
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    lr_decay_epochs: int = 40
    seed: int = 0
    deterministic: bool = False
    jit_compile: bool | None = None
    mixed_precision: bool = False
    distribution: str = "default"
    model_dir: str | None = None
    init_from: str | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        """Trainer task names: "e" is the Sobel edge loss, or the VGG19 loss with --perceptual=vgg19."""
        return tuple("vgg" if (t == "e" and self.perceptual == "vgg19") else t for t in self.losses)

    def net_kwargs(self) -> dict:
        return {
            "num_res_blocks": self.num_res_blocks,
            "channel_attention": self.channel_attention,
            "ca_variant": self.ca_variant,
        }

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["losses"] = list(self.losses)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["losses"] = tuple(kwargs.get("losses", ("p",)))
        return cls(**kwargs)

    def validate(self) -> None:
        """Raise ValueError with a one-line message for any inconsistent setting (before any work)."""
        bad = [t for t in self.losses if t not in LOSS_LETTERS]
        if bad or not self.losses:
            raise ValueError(f"--losses: unknown loss name(s) {bad or self.losses}; use a comma list of p, e, t")
        if len(set(self.losses)) != len(self.losses):
            raise ValueError(f"--losses: a loss is named twice in {','.join(self.losses)}")
        try:
            weighting_lib.validate(self.weighting, self.tasks)
        except ValueError as e:
            raise ValueError(f"--weighting: {e}") from None
        unknown = [k for k in self.fixed_weights if k not in losses_lib.TASK_NAMES]
        if unknown:
            raise ValueError(f"--fixed_weights: unknown task(s) {unknown}; use p, e, t, vgg")
        if self.ca_variant not in CA_VARIANTS:
            raise ValueError(f"--ca_variant must be one of {CA_VARIANTS}")
        if self.texture_loss not in losses_lib.TEXTURE_FORMS:
            raise ValueError(f"--texture_loss must be one of {losses_lib.TEXTURE_FORMS}")
        if self.perceptual not in PERCEPTUAL:
            raise ValueError(f"--perceptual must be one of {PERCEPTUAL}")
        if self.perceptual == "vgg19" and "e" in self.losses:
            if not self.vgg19_weights:
                raise ValueError("--perceptual=vgg19 needs --vgg19_weights (a local VGG19 'notop' .h5 file)")
            if not os.path.isfile(self.vgg19_weights):
                raise ValueError(f"--vgg19_weights: {self.vgg19_weights}: no such file")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"--distribution must be one of {DISTRIBUTIONS}")
        if self.distribution == "multi_worker":
            for warning in check_tf_config():
                print(f"warning: {warning}", file=sys.stderr, flush=True)
        if self.cache not in CACHE_MODES:
            raise ValueError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {self.cache!r}")
        multiple = 16 if self.channel_attention else 4
        for name in ("num_res_blocks", "batch_size", "epochs", "crop_size", "lr_decay_epochs", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.crop_size % multiple:
            raise ValueError(f"--crop_size must be a multiple of {multiple}, got {self.crop_size}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"--steps_per_epoch must be >= 1, got {self.steps_per_epoch}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not self.data_dir:
            raise ValueError("--data_dir is required (a folder of rainy/clean pairs)")
        if not os.path.isdir(self.data_dir):
            raise ValueError(f"--data_dir: {self.data_dir}: no such directory")
        if self.val_dir and not os.path.isdir(self.val_dir):
            raise ValueError(f"--val_dir: {self.val_dir}: no such directory")
        if not self.model_dir:
            raise ValueError("--model_dir is required (where checkpoints, logs and config go)")
        check_writable(self.model_dir, "--model_dir")
        if self.init_from:
            self.init_weights_file()

    def init_weights_file(self) -> str:
        """The weights file ``init_from`` names (:meth:`init_source`)."""
        return self.init_source()[1]

    def init_source(self) -> tuple[str, str, bool]:
        """(model directory, weights file, deepen) of ``init_from`` (a shipped model's name or a model
        directory), checked to hold this run's net, or the same net with fewer residual blocks (``deepen``
        True: :func:`menet_tf.model.deepen` puts identity blocks in front): ValueError naming the flag and
        the difference otherwise."""
        from menet_tf import pretrained
        from menet_tf.model import NET_CONFIG_KEYS, WEIGHTS_FILE, read_config

        try:
            folder = pretrained.name_or_dir(self.init_from)
            if not os.path.isdir(folder):
                raise ValueError(f"{folder}: neither a shipped model ({', '.join(pretrained.names())}) "
                                 "nor a model directory")
            source = read_config(folder)
        except (ValueError, FileNotFoundError) as e:
            raise ValueError(f"--init_from: {e}") from None
        mine, defaults = self.net_kwargs(), TrainConfig()
        theirs = {k: source.get(k, getattr(defaults, k)) for k in NET_CONFIG_KEYS}
        deepen = theirs["num_res_blocks"] < mine["num_res_blocks"]
        diff = [f"{k} {theirs[k]!r} (this run: {mine[k]!r})" for k in NET_CONFIG_KEYS
                if theirs[k] != mine[k] and not (deepen and k == "num_res_blocks")]
        if diff:
            raise ValueError(f"--init_from: {self.init_from} holds another net: {'; '.join(diff)}")
        weights = os.path.join(folder, WEIGHTS_FILE)
        if not os.path.isfile(weights):
            raise ValueError(f"--init_from: {weights}: no such file (has that run finished an epoch?)")
        return folder, weights, deepen


def parse_fixed_weights(text: str | None) -> dict[str, float]:
    """"e=1e-2,t=1e-9" -> {"e": 0.01, "t": 1e-09}."""
    out = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--fixed_weights: {item!r} is not task=value (e.g. e=1e-2)") from None
    return out


def define_train_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Define the training flags (paper defaults) on ``fv``."""
    d = TrainConfig()
    flags.DEFINE_list("losses", list(d.losses), "Task losses: p (MSE), e (edge/perceptual), t (texture).", flag_values=fv)
    flags.DEFINE_enum("weighting", d.weighting, weighting_lib.WEIGHTINGS, "Task weighting.", flag_values=fv)
    flags.DEFINE_string("fixed_weights", "", "Fixed weights overrides, e.g. 'e=1e-2,t=1e-9'.", flag_values=fv)
    flags.DEFINE_bool("stable_weights", d.stable_weights, "GB/LB: the 'stable' (others/total) form instead of the literal float32 1 - x/total.", flag_values=fv)
    flags.DEFINE_bool("track_grad_norms", d.track_grad_norms, "Log per-task gradient norms on layer5 (always on for GB).", flag_values=fv)
    flags.DEFINE_bool("channel_attention", d.channel_attention, "Insert the channel-attention block.", flag_values=fv)
    flags.DEFINE_enum("ca_variant", d.ca_variant, CA_VARIANTS, "CA output: x + x*a (released) or x*a.", flag_values=fv)
    flags.DEFINE_integer("num_res_blocks", d.num_res_blocks, "Residual blocks: 8 shallow, 16 deep.", flag_values=fv)
    flags.DEFINE_enum("texture_loss", d.texture_loss, losses_lib.TEXTURE_FORMS, "L_t form.", flag_values=fv)
    flags.DEFINE_enum("perceptual", d.perceptual, PERCEPTUAL, "What task 'e' is: the Sobel edge loss or VGG19.", flag_values=fv)
    flags.DEFINE_string("vgg19_weights", None, "Local Keras VGG19 notop weights (.h5) for --perceptual=vgg19.", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Training pairs (any supported layout).", flag_values=fv)
    flags.DEFINE_string("rainy_glob", None, "Glob for rainy images, overriding layout discovery.", flag_values=fv)
    flags.DEFINE_string("clean_glob", None, "Glob for clean images, overriding layout discovery.", flag_values=fv)
    flags.DEFINE_bool("skip_bad_pairs", d.skip_bad_pairs, "Skip unusable pairs with one warning instead of stopping.", flag_values=fv)
    flags.DEFINE_enum("cache", d.cache, list(CACHE_MODES), "Training data: memory = decoded images in RAM "
                      "(crops cut on the fly), disk = a .npy file cache (--cache_dir, default MODEL_DIR/cache), "
                      "none = decode from the files every time. The batches are the same bytes in every mode.",
                      flag_values=fv)
    flags.DEFINE_string("cache_dir", d.cache_dir, "Folder of the --cache=disk files (default: MODEL_DIR/cache).",
                        flag_values=fv)
    flags.DEFINE_string("val_dir", None, "Optional validation pairs (paper protocol crops).", flag_values=fv)
    flags.DEFINE_integer("val_every", d.val_every, "Validate every N epochs (and after the last).", flag_values=fv)
    flags.DEFINE_integer("crop_size", d.crop_size, "Five-crop patch size.", flag_values=fv)
    flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size.", flag_values=fv)
    flags.DEFINE_integer("epochs", d.epochs, "Epochs.", flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", None, "Optional cap on steps per epoch (short runs).", flag_values=fv)
    flags.DEFINE_float("lr", d.lr, "Initial Adam learning rate.", flag_values=fv)
    flags.DEFINE_integer("lr_decay_epochs", d.lr_decay_epochs, "Staircase decay x0.1 every N epochs.", flag_values=fv)
    flags.DEFINE_integer("seed", d.seed, "Random seed (init and data order).", flag_values=fv)
    flags.DEFINE_bool("deterministic", d.deterministic, "Deterministic ops (reproducible, slower; Keras then runs without XLA).", flag_values=fv)
    flags.DEFINE_bool("jit_compile", None, "XLA-compile the train step (default: on with a GPU, off on CPU).", flag_values=fv)
    flags.DEFINE_bool("mixed_precision", d.mixed_precision, "mixed_float16 on GPU (loss scaling), mixed_bfloat16 on CPU.", flag_values=fv)
    flags.DEFINE_enum("distribution", d.distribution, DISTRIBUTIONS, "tf.distribute strategy.", flag_values=fv)
    flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, config.json, net weights.", flag_values=fv)
    flags.DEFINE_string("init_from", None, "Fine-tune: start from the net weights of a shipped model (its name, "
                        "see menet_tf.pretrained.names()) or a model directory with the same net, instead of a "
                        "random init; the optimizer starts afresh. A net with fewer residual blocks is deepened: "
                        "identity blocks in front of its own (menet_tf.model.deepen), the same function to start "
                        "from. Ignored when --model_dir resumes.", flag_values=fv)


def config_from_flags(fv: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    return TrainConfig(
        losses=tuple(s.strip() for s in fv.losses if s.strip()),
        weighting=fv.weighting,
        fixed_weights=parse_fixed_weights(fv.fixed_weights),
        stable_weights=fv.stable_weights,
        track_grad_norms=fv.track_grad_norms,
        channel_attention=fv.channel_attention,
        ca_variant=fv.ca_variant,
        num_res_blocks=fv.num_res_blocks,
        texture_loss=fv.texture_loss,
        perceptual=fv.perceptual,
        vgg19_weights=fv.vgg19_weights,
        data_dir=fv.data_dir,
        rainy_glob=fv.rainy_glob,
        clean_glob=fv.clean_glob,
        skip_bad_pairs=fv.skip_bad_pairs,
        cache=fv.cache,
        cache_dir=fv.cache_dir,
        val_dir=fv.val_dir,
        val_every=fv.val_every,
        crop_size=fv.crop_size,
        batch_size=fv.batch_size,
        epochs=fv.epochs,
        steps_per_epoch=fv.steps_per_epoch,
        lr=fv.lr,
        lr_decay_epochs=fv.lr_decay_epochs,
        seed=fv.seed,
        deterministic=fv.deterministic,
        jit_compile=fv.jit_compile,
        mixed_precision=fv.mixed_precision,
        distribution=fv.distribution,
        model_dir=fv.model_dir,
        init_from=fv.init_from,
    )


def load_flagfile(path: str, *extra_args: str) -> TrainConfig:
    """Parse a flagfile (plus extra ``--flag=value`` args) with the real flag parser -> TrainConfig."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such flagfile")
    fv = flags.FlagValues()
    define_train_flags(fv)
    fv(["load_flagfile", f"--flagfile={path}", *extra_args])
    return config_from_flags(fv)


TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:23456", "host2:23456"]}, '
                     '"task": {"type": "worker", "index": 0}}')


EPHEMERAL_PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def ephemeral_port_range(path: str = EPHEMERAL_PORT_RANGE_FILE) -> tuple[int, int] | None:
    """This machine's range of source ports for outgoing connections (Linux), or None."""
    try:
        with open(path) as f:
            low, high = (int(v) for v in f.read().split()[:2])
        return low, high
    except (OSError, ValueError):
        return None


def check_tf_config(environ=None, port_range: tuple[int, int] | None = None) -> list[str]:
    """--distribution=multi_worker needs TF_CONFIG naming the cluster and this process's task (or a Slurm
    job, whose SlurmClusterResolver gives them): ValueError with one line otherwise.

    Returns warnings (one line each): a port inside the ephemeral range (``port_range``, default this
    machine's) can be taken, before its worker listens on it, as the source port of another connection --
    on one host even by a peer's own connection attempts to it (a TCP self-connect) -- and the run then
    waits forever at start-up (seen twice in this project's two-worker tests on localhost, once in CI: the
    chief waited in the eager context's cluster start-up while the other worker could not bind its port)."""
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    if not raw:
        if "SLURM_PROCID" in environ:
            return []
        raise ValueError(f"--distribution=multi_worker: TF_CONFIG is not set (each worker needs e.g. "
                         f"TF_CONFIG='{TF_CONFIG_EXAMPLE}' with its own index; see docs/distributed.md)")
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"--distribution=multi_worker: TF_CONFIG is not valid JSON ({e}): {raw[:200]!r}") from None
    cluster = cfg.get("cluster") if isinstance(cfg, dict) else None
    task = cfg.get("task") if isinstance(cfg, dict) else None
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(v, list) and v and all(isinstance(a, str) and ":" in a for a in v) for v in cluster.values()):
        raise ValueError('--distribution=multi_worker: TF_CONFIG needs "cluster": {"worker": ["host:port", ...]} '
                         f"(got {raw[:200]!r})")
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(cluster[task["type"]]):
        raise ValueError('--distribution=multi_worker: TF_CONFIG needs "task": {"type": one of '
                         f'{sorted(cluster)}, "index": 0..n-1}} for this process (got {json.dumps(task)})')
    low, high = port_range or ephemeral_port_range() or (0, -1)
    warnings = []
    for kind, addresses in sorted(cluster.items()):
        for i, address in enumerate(addresses):
            port = address.rsplit(":", 1)[1]
            if port.isdigit() and low <= int(port) <= high:
                warnings.append(f"TF_CONFIG: {kind} {i} ({address}): port {port} is in this machine's ephemeral "
                                f"range {low}-{high}; another connection can take it before the worker listens "
                                f"(the run then hangs at start): prefer ports below {low}")
    return warnings


def row_flagfile(row: str, table: str = "table1") -> str:
    """Path of a table row's flagfile, e.g. row_flagfile("lp_le_lb")."""
    return os.path.join(EXPERIMENTS_DIR, table, f"{row}.flags")


def list_rows(table: str = "table1") -> list[str]:
    folder = os.path.join(EXPERIMENTS_DIR, table)
    return sorted(f[: -len(".flags")] for f in os.listdir(folder) if f.endswith(".flags"))


def save_config(config: TrainConfig, model_dir: str) -> None:
    """Write model_dir/config.json (the training config; it also carries the net's keys)."""
    from menet_tf.model import CONFIG_FILE

    from menet_tf import atomic

    os.makedirs(model_dir, exist_ok=True)
    atomic.write_text(os.path.join(model_dir, CONFIG_FILE), json.dumps(config.to_json(), indent=2, sort_keys=True))
