r"""A local web page to de-rain photos: drop them in, compare before and after, download.

    pip install -e '.[app]'
    menet-app                           # = python -m experiments.app; prints the address to open
    menet-app --port=8080 --model=menet-lb-rain100l

Serves on 127.0.0.1 (this computer only) and a free port unless --port is given. ``--host=0.0.0.0`` makes
the page reachable from every machine that can reach this one: anyone there can then upload photos and
use this computer's CPU (no login, no encryption); do that only on a network you trust. The server
(menet_tf.webapp) loads the default model once at start, runs one photo at a time (others wait in a
queue of --max_queue), refuses uploads over --max_upload_mb or --max_megapixels (decompression bombs
included) and non-images with a message on the page, keeps uploads and results in a temporary folder
that it removes when it stops, and de-rains with the same code as ``derain`` (byte for byte the same PNG).
Ctrl-C stops it.
"""

from __future__ import annotations

import socket
import sys

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("host", "127.0.0.1", "address to listen on (0.0.0.0: every network interface; see above)")
flags.DEFINE_integer("port", 0, "port (0: a free one)", lower_bound=0, upper_bound=65535)
flags.DEFINE_string("model", None, "the model preselected on the page (a shipped model; default: the default one)")
flags.DEFINE_float("max_upload_mb", 40.0, "largest upload, MB", lower_bound=0.01)
flags.DEFINE_float("max_megapixels", 50.0, "largest photo, megapixels (read from the header before decoding)",
                   lower_bound=0.001)
flags.DEFINE_integer("max_queue", 16, "photos that may wait or run at once; more are refused with 'busy'",
                     lower_bound=1)
flags.DEFINE_float("keep_minutes", 60.0, "results are kept this long after they are done", lower_bound=1)
flags.DEFINE_integer("tile", 1024, "tile side for large photos (as derain --tile)", lower_bound=0)
flags.DEFINE_bool("self_ensemble", True, "the mean over 4 flips of each photo, as derain's default (4x the time); "
                  "--noself_ensemble: one pass")

PROG = "experiments.app"


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error(PROG, f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        cliutil.usage_error(PROG, "the web page needs Starlette and uvicorn, which are not installed: "
                                  "pip install 'menet-tf[app]'")
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from menet_tf import pretrained
    from menet_tf.webapp.server import AppConfig, create_app

    known = pretrained.names() + ["auto"]
    if FLAGS.model is not None and FLAGS.model not in known:
        cliutil.usage_error(PROG, f"--model={FLAGS.model}: unknown model; shipped models: {', '.join(known)}")
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in FLAGS.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((FLAGS.host, FLAGS.port))
        sock.listen(128)  # connections wait in the queue from now on, not refused while uvicorn starts
    except OSError as e:
        cliutil.usage_error(PROG, f"cannot listen on {FLAGS.host}:{FLAGS.port} ({e.strerror or e})")
    config = AppConfig(default_model=FLAGS.model, max_upload_mb=FLAGS.max_upload_mb,
                       max_megapixels=FLAGS.max_megapixels, max_queue=FLAGS.max_queue,
                       keep_minutes=FLAGS.keep_minutes, tile=FLAGS.tile, self_ensemble=FLAGS.self_ensemble)
    print("loading the model ...", flush=True)
    application = create_app(config)
    port = sock.getsockname()[1]
    shown = f"[{FLAGS.host}]" if ":" in FLAGS.host else FLAGS.host
    if FLAGS.host in ("0.0.0.0", "::"):
        print("note: listening on every network interface: anyone who can reach this machine can use the page",
              flush=True)
        shown = "127.0.0.1"
    print(f"uploads and results go to {application.state.store.root} (removed when the server stops)", flush=True)
    print(f"menet-app: open http://{shown}:{port}/  (model {application.state.store.default_model}; Ctrl-C stops)",
          flush=True)
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    sys.exit(0)


def console():
    """The ``menet-app`` console script: the same as ``python -m experiments.app``."""
    app.run(main)


if __name__ == "__main__":
    console()
