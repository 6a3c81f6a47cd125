"""The web page's server: a small ASGI app (Starlette) around :class:`menet_tf.derainer.Derainer`.

    app = create_app(AppConfig())        # then any ASGI server; experiments.app runs it with uvicorn

HTTP interface (JSON unless said otherwise; every error is ``{"error": "..."}`` with a 4xx/5xx status, and
the server goes on serving):

* ``GET /`` the page (``static/index.html``, ``app.js``, ``app.css``); ``GET /api/config``: the shipped
  models (name, one-line summary, default), the options (``self_ensemble``: the default), and the limits.
* ``POST /api/jobs`` (multipart: ``file``, ``model``, ``rain_scale``, ``precision``, ``self_ensemble``: ``1`` the
  mean over 4 flips, ``0`` one pass; absent: the server's default, ``AppConfig.self_ensemble``): checks the upload
  (bytes, pixels read from the header before decoding, an image at all), keeps it under a random name
  in the server's temporary folder and queues it -> ``{"id", "name", "width", "height", "state"}``.
  413: too many bytes or pixels (decompression bombs included); 415: not an image; 400: a bad option;
  503: the queue is full.
* ``GET /api/jobs/ID``: ``{"state": queued|running|done|error, "done", "total" (net calls: tiles),
  "position" (in the queue), "seconds", "error"}``.
* ``GET /api/jobs/ID/input.png`` (the photo as the net saw it: EXIF orientation applied) and
  ``/result.png`` (``?download=1``: as an attachment named after the upload); ``GET /api/zip?ids=A,B``:
  the results as one zip.

One de-rainer per (model, precision), each loaded once (the default at start); one job runs at a time
(one worker thread), at most ``max_queue`` wait. The result is de-rained by the same code as ``derain``
(:class:`~menet_tf.derainer.Derainer`, its default tiles) and written by the same PNG writer, so it is
byte for byte the CLI's output. A client's file name is only ever shown and used, sanitised, as a
download name; never as a path. Uploads and results live in one temporary folder, jobs are forgotten
after ``keep_minutes`` and the folder is removed when the server stops.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile

__all__ = ["AppConfig", "JobStore", "create_app"]

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PRECISIONS = ("float32", "bfloat16")


@dataclasses.dataclass
class AppConfig:
    default_model: str | None = None  # None: menet_tf.pretrained.DEFAULT
    max_upload_mb: float = 40.0
    max_megapixels: float = 50.0  # 50 MP: a 8660x5773 photo; decoded it takes 150 MB, the net ~1 GB in tiles
    max_queue: int = 16
    keep_minutes: float = 60.0
    tile: int = 1024
    self_ensemble: bool = True  # as `derain`: the mean over 4 flips (--noself_ensemble of experiments.app: one pass)


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _flag(value, name: str) -> bool | None:
    """A form's yes/no field: None when absent or empty (the server's default)."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise HTTPError(400, f"{name} must be 1 or 0, not {str(value)[:40]!r}")


def _safe_name(name: str) -> str:
    stem = os.path.splitext(os.path.basename(name.replace("\\", "/")))[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "photo"
    return stem[:80]


@dataclasses.dataclass
class Job:
    id: str
    name: str  # sanitised stem of the client's file name (display and download name only)
    folder: str
    model: str
    rain_scale: str
    precision: str
    self_ensemble: bool
    width: int
    height: int
    created: float
    state: str = "queued"
    done: int = 0
    total: int = 1
    seconds: float | None = None
    error: str | None = None

    def public(self, position: int | None) -> dict:
        return {"id": self.id, "name": self.name, "model": self.model, "rain_scale": self.rain_scale,
                "precision": self.precision, "self_ensemble": self.self_ensemble, "width": self.width,
                "height": self.height, "state": self.state,
                "done": self.done, "total": self.total, "position": position, "seconds": self.seconds,
                "error": self.error}


class JobStore:
    """Uploads, the queue, the one worker thread and the loaded de-rainers."""

    def __init__(self, config: AppConfig):
        from menet_tf import pretrained

        self.config = config
        self.auto_rule = self._auto_rule()  # menet_tf/pretrained/auto.json, read once (None: no auto model)
        self.default_model = config.default_model or pretrained.DEFAULT
        if self.default_model not in self.model_names():
            raise ValueError(f"unknown model {self.default_model!r}; shipped models: {', '.join(self.model_names())}")
        self.root = tempfile.mkdtemp(prefix="menet-app-")
        self.jobs: dict[str, Job] = {}
        self.order: list[str] = []  # queued job ids, oldest first
        self.lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="derain")
        self.derainers: dict = {}
        self.load_lock = threading.Lock()
        self.derainer(self.default_model, "float32")  # loaded once, at start

    # -- models ---------------------------------------------------------------------------------------

    def derainer(self, model: str, precision: str):
        key = (model, precision)
        with self.load_lock:
            if key not in self.derainers:
                from menet_tf import pretrained
                from menet_tf.auto import AUTO, AutoDerainer
                from menet_tf.derainer import Derainer

                options = dict(mixed_precision=precision == "bfloat16", tile=self.config.tile,
                               self_ensemble=self.config.self_ensemble)  # each job then sets its own
                self.derainers[key] = (AutoDerainer.load(**options) if model == AUTO
                                       else Derainer.load(model_dir=pretrained.model_dir(model), **options))
            return self.derainers[key]

    def models(self) -> list[dict]:
        from menet_tf import pretrained

        models = [{"name": n, "summary": pretrained.card(n)["summary"], "default": n == self.default_model}
                  for n in pretrained.names()]
        if self.auto_rule is not None:
            r = self.auto_rule
            models.append({"name": "auto", "default": self.default_model == "auto",
                           "summary": f"{r.light}, or {r.heavy} when the photo has heavy rain (a measured rule, menet_tf.auto)"})
        return models

    @staticmethod
    def _auto_rule():
        from menet_tf import auto

        try:
            return auto.rule()
        except ValueError:
            return None

    def model_names(self) -> list[str]:
        from menet_tf import pretrained

        return pretrained.names() + (["auto"] if self.auto_rule is not None else [])

    # -- jobs -----------------------------------------------------------------------------------------

    def check_options(self, model: str, rain_scale: str, precision: str) -> None:
        if model not in self.model_names():
            raise HTTPError(400, f"unknown model {model!r}")
        if precision not in PRECISIONS:
            raise HTTPError(400, f"precision must be one of {', '.join(PRECISIONS)}")
        if rain_scale != "auto":
            try:
                ok = 1.0 <= float(rain_scale) <= 8.0
            except ValueError:
                ok = False
            if not ok:
                raise HTTPError(400, f"rain scale {rain_scale!r}: give a number from 1 to 8, or 'auto'")

    def add(self, data: bytes, client_name: str, model: str, rain_scale: str, precision: str,
            self_ensemble: bool | None = None) -> Job:
        from PIL import Image, UnidentifiedImageError

        self.check_options(model, rain_scale, precision)
        self_ensemble = self.config.self_ensemble if self_ensemble is None else bool(self_ensemble)
        limit = self.config.max_upload_mb * 1e6
        if len(data) > limit:
            raise HTTPError(413, f"{len(data) / 1e6:.1f} MB is more than the {self.config.max_upload_mb:g} MB limit")
        if not data:
            raise HTTPError(415, "an empty file is not an image")
        max_pixels = self.config.max_megapixels * 1e6
        try:  # the header only: the size is known before a single pixel is decoded
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
            if isinstance(e, Image.DecompressionBombError):
                m = re.search(r"\((\d+) pixels\)", str(e))
                declared = f"{int(m.group(1)) / 1e6:.0f} megapixels" if m else "too many pixels"
                raise HTTPError(413, f"a decompression bomb: {declared} declared, more than the "
                                     f"{self.config.max_megapixels:g} megapixel limit") from None
            raise HTTPError(415, "not an image (PNG, JPEG, BMP, TIFF or WebP), or a corrupt one") from None
        if width * height > max_pixels:
            raise HTTPError(413, f"{width}x{height} is {width * height / 1e6:.1f} megapixels, more than the "
                                 f"{self.config.max_megapixels:g} megapixel limit")
        with self.lock:
            self._expire()
            waiting = sum(1 for j in self.jobs.values() if j.state in ("queued", "running"))
            if waiting >= self.config.max_queue:
                raise HTTPError(503, f"busy: {waiting} photos are waiting; try again in a moment")
            job_id = uuid.uuid4().hex
            folder = os.path.join(self.root, job_id)
            os.makedirs(folder)
            with open(os.path.join(folder, "upload"), "wb") as f:
                f.write(data)
            job = Job(job_id, _safe_name(client_name), folder, model, rain_scale, precision, self_ensemble, width, height,
                      time.time())
            self.jobs[job_id] = job
            self.order.append(job_id)
        self.pool.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        from menet_tf.derainer import set_self_ensemble
        from menet_tf.imageio import ImageError, read_image, write_image

        with self.lock:
            job.state = "running"
            if job.id in self.order:
                self.order.remove(job.id)
        t0 = time.perf_counter()
        try:
            derainer = self.derainer(job.model, job.precision)
            # one job at a time: the worker owns the de-rainer and sets its options for this job
            derainer.rain_scale = job.rain_scale
            set_self_ensemble(derainer, job.self_ensemble)
            rainy = read_image(os.path.join(job.folder, "upload"), exif_transpose=True)
            plan = derainer.plan(*rainy.shape[:2])
            job.total = plan.net_calls
            write_image(os.path.join(job.folder, "input.png"), rainy)

            def progress(done, total):
                job.done, job.total = done, total

            derained = derainer.derain(rainy, progress=progress)
            write_image(os.path.join(job.folder, "result.png"), derained)
            job.done, job.seconds, job.state = job.total, time.perf_counter() - t0, "done"
        except ImageError as e:
            job.state, job.error = "error", e.problem
        except Exception as e:  # noqa: BLE001 - the page shows it; the server goes on
            job.state, job.error = "error", f"{type(e).__name__}: {e}"

    def _expire(self) -> None:
        limit = time.time() - self.config.keep_minutes * 60
        for job_id in [j.id for j in self.jobs.values() if j.created < limit and j.state in ("done", "error")]:
            shutil.rmtree(self.jobs.pop(job_id).folder, ignore_errors=True)

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id or "") else None
        if job is None:
            raise HTTPError(404, "no such job (it may have expired)")
        return job

    def position(self, job: Job) -> int | None:
        with self.lock:
            return self.order.index(job.id) + 1 if job.id in self.order else None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)


def create_app(config: AppConfig | None = None, store: JobStore | None = None):
    """The Starlette app; ``store`` (default: a new :class:`JobStore`) is ``app.state.store``."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    config = config or AppConfig()
    store = store or JobStore(config)

    def error(e: HTTPError) -> JSONResponse:
        return JSONResponse({"error": e.message}, status_code=e.status)

    async def app_config(request: Request):
        return JSONResponse({"models": store.models(), "precisions": list(PRECISIONS),
                             "self_ensemble": config.self_ensemble,
                             "limits": {"max_upload_mb": config.max_upload_mb, "max_megapixels": config.max_megapixels,
                                        "max_queue": config.max_queue}})

    async def add_job(request: Request):
        limit = int(config.max_upload_mb * 1e6)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit + 64 * 1024:
            return error(HTTPError(413, f"{int(length) / 1e6:.1f} MB is more than the {config.max_upload_mb:g} MB limit"))
        try:
            form = await request.form(max_files=1, max_fields=8, max_part_size=limit + 1)
        except Exception as e:  # noqa: BLE001 - Starlette's multipart errors: too large, malformed
            text = str(e) or type(e).__name__
            status = 413 if "exceed" in text.lower() or "too large" in text.lower() else 400
            return error(HTTPError(status, f"upload refused: {text}"))
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPError(400, "no file in the upload (field 'file')")
            data = await upload.read(limit + 1)
            job = store.add(data, upload.filename or "photo", str(form.get("model") or store.default_model),
                            str(form.get("rain_scale") or "1"), str(form.get("precision") or "float32"),
                            _flag(form.get("self_ensemble"), "self_ensemble"))
        except HTTPError as e:
            return error(e)
        finally:
            await form.close()
        return JSONResponse(job.public(store.position(job)), status_code=202)

    async def job_status(request: Request):
        try:
            job = store.get(request.path_params["job_id"])
        except HTTPError as e:
            return error(e)
        return JSONResponse(job.public(store.position(job)))

    async def job_file(request: Request):
        try:
            job = store.get(request.path_params["job_id"])
            kind = request.path_params["kind"]
            if kind not in ("input", "result"):
                raise HTTPError(404, "no such file")
            path = os.path.join(job.folder, f"{kind}.png")
            if not os.path.isfile(path):
                raise HTTPError(409, f"not ready: the job is {job.state}")
        except HTTPError as e:
            return error(e)
        name = f"{job.name}{'_input' if kind == 'input' else ''}.png"
        download = request.query_params.get("download") == "1"
        return FileResponse(path, media_type="image/png", filename=name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    async def zip_results(request: Request):
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not ids:
            return error(HTTPError(400, "give ids=ID,ID,..."))
        buf = io.BytesIO()
        used: set = set()
        try:
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # PNGs are compressed already
                for job_id in ids:
                    job = store.get(job_id)
                    path = os.path.join(job.folder, "result.png")
                    if not os.path.isfile(path):
                        raise HTTPError(409, f"{job.name}: not ready (the job is {job.state})")
                    name, k = f"{job.name}.png", 1
                    while name in used:
                        k += 1
                        name = f"{job.name}_{k}.png"
                    used.add(name)
                    z.write(path, name)
        except HTTPError as e:
            return error(e)
        return Response(buf.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="derained.zip"'})

    async def index(request: Request):
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        store.close()

    app = Starlette(routes=[
        Route("/", index),
        Route("/api/config", app_config),
        Route("/api/jobs", add_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_status),
        Route("/api/jobs/{job_id}/{kind}.png", job_file),
        Route("/api/zip", zip_results),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ], lifespan=lifespan)
    app.state.store = store
    return app
