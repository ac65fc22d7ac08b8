"""The HTTP service behind `odrun serve` (aiohttp): routes, dynamic batching, metrics.

Routes (NAME = --name, default the export folder's name):
  POST /v1/models/NAME:predict            TensorFlow Serving REST predict: {"instances": [...]} with
  POST /v1/models/NAME/versions/1:predict each instance {"b64": "<image bytes>"}, {"<input>": {"b64": ...}}
                                          or an HxWx3 list of pixel values; or {"inputs": [...]}.
                                          -> {"predictions": [{num_detections, detection_boxes,
                                              detection_classes, detection_scores}]}
  GET  /v1/models/NAME                    TF Serving model status (LOADING until warmed up, then AVAILABLE)
  POST /v1/detect[?threshold=0.4]         one image (multipart upload or raw body) -> COCO-style detections
  GET  /healthz  /readyz  /metrics        liveness, readiness (model loaded + warm-up done), Prometheus text

Batching: requests wait in a bounded queue; one worker takes what is queued (up to --max-batch
images), runs one model call and answers each request. It waits up to --batch-timeout-ms for more
only while other requests are being received or decoded, so a lone client never pays the window
and under load the batches fill while the model runs. A full queue answers 503 with Retry-After.
Errors are JSON: {"error": "..."} with 400 (bad JSON, not an image, bad field), 404 (unknown
model/route), 413 (body over --max-body-mb), 503 (full queue / not ready).
"""
import asyncio
import base64
import io
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

LOG = logging.getLogger("odrun.serve")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_INSTANCES = 64


class BadRequest(Exception):
    pass


class Metrics(object):
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        self.registry = CollectorRegistry()
        self.requests = Counter("odrun_requests", "HTTP requests", ["route", "code"], registry=self.registry)
        self.latency = Histogram("odrun_request_seconds", "request latency", ["route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch = Histogram("odrun_batch_size", "images per model call", buckets=BATCH_BUCKETS,
                               registry=self.registry)
        self.inference = Histogram("odrun_inference_seconds", "model call time", buckets=LATENCY_BUCKETS,
                                   registry=self.registry)
        self.queue = Gauge("odrun_queue_depth", "requests waiting for the model", registry=self.registry)
        self.rejected = Counter("odrun_rejected", "requests refused with 503 (queue full)", registry=self.registry)
        self.ready = Gauge("odrun_ready", "1 when the model is loaded and warmed up", registry=self.registry)

    def text(self):
        from prometheus_client import generate_latest
        return generate_latest(self.registry)


class Job(object):
    __slots__ = ("images", "future")

    def __init__(self, images, future):
        self.images, self.future = images, future


class Batcher(object):
    """One model worker thread fed by a bounded asyncio queue."""

    def __init__(self, runtime, max_batch, timeout_ms, queue_size, metrics, delay_ms=0):
        self.runtime = runtime
        self.max_batch = max(1, min(max_batch, runtime.max_batch or max_batch))
        self.timeout = timeout_ms / 1000.0
        self.queue = asyncio.Queue(maxsize=queue_size)
        self.metrics = metrics
        self.delay = delay_ms / 1000.0
        self.executor = ThreadPoolExecutor(1)
        self.task = None
        self.arriving = 0  # requests received but not yet queued (body read / decode in progress)

    def arrival(self):
        """`with batcher.arrival():` around reading and decoding a request, so the worker knows
        more images are on their way and a short wait can batch them."""
        return _Arrival(self)

    def submit(self, images):
        """A future of the detections; raises asyncio.QueueFull when the queue is full."""
        future = asyncio.get_event_loop().create_future()
        self.queue.put_nowait(Job(images, future))
        self.metrics.queue.set(self.queue.qsize())
        return future

    def _run(self, images):
        if self.delay:
            time.sleep(self.delay)
        t0 = time.time()
        out = self.runtime.detect(images)
        self.metrics.inference.observe(time.time() - t0)
        self.metrics.batch.observe(len(images))
        return out

    async def loop(self):
        loop = asyncio.get_event_loop()
        while True:
            job = await self.queue.get()
            if job is None:
                return
            jobs, count, stop = [job], len(job.images), False
            deadline = loop.time() + self.timeout
            while count < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if self.arriving <= 0 or remaining <= 0:  # nobody else is coming: run now
                        break
                    try:
                        nxt = await asyncio.wait_for(self.queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
                count += len(nxt.images)
            self.metrics.queue.set(self.queue.qsize())
            images = [im for j in jobs for im in j.images]
            try:
                dets = await loop.run_in_executor(self.executor, self._run, images)
            except Exception as exc:  # noqa: BLE001 - reported to each waiting request as a 500
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
            else:
                at = 0
                for j in jobs:
                    if not j.future.done():
                        j.future.set_result(dets[at:at + len(j.images)])
                    at += len(j.images)
            if stop:
                return

    async def close(self):
        await self.queue.put(None)
        if self.task is not None:
            await self.task
        self.executor.shutdown(wait=True)


class _Arrival(object):
    def __init__(self, batcher):
        self.batcher = batcher

    def __enter__(self):
        self.batcher.arriving += 1

    def __exit__(self, *exc):
        self.batcher.arriving -= 1


# decoding ----------------------------------------------------------------------------------------

def decode_image(data, max_pixels, what="image"):
    import numpy as np
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise BadRequest("{}: {}x{} pixels is over the limit of {} (--max-pixels)".format(what, w, h, max_pixels))
            return np.asarray(im.convert("RGB"))
    except BadRequest:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for non-images
        raise BadRequest("{} is not a readable image ({})".format(what, type(exc).__name__))


def decode_instance(inst, max_pixels, index):
    import numpy as np
    what = "instances[{}]".format(index)
    if isinstance(inst, dict) and len(inst) == 1 and "b64" not in inst:
        inst = list(inst.values())[0]  # {"input_tensor": {...}} (a named single input)
    if isinstance(inst, dict):
        if set(inst) != {"b64"} or not isinstance(inst["b64"], str):
            raise BadRequest("{}: expected {{\"b64\": \"<base64 image>\"}}".format(what))
        try:
            data = base64.b64decode(inst["b64"], validate=True)
        except ValueError:
            raise BadRequest("{}.b64 is not valid base64".format(what))
        return decode_image(data, max_pixels, what)
    if isinstance(inst, list):
        try:
            arr = np.asarray(inst, dtype=np.float32)
        except (ValueError, TypeError):
            raise BadRequest("{}: a pixel array must be a regular HxWx3 list of numbers".format(what))
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] * arr.shape[1] > max_pixels or arr.size == 0:
            raise BadRequest("{}: expected an HxWx3 pixel array, got shape {}".format(what, list(arr.shape)))
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise BadRequest("{}: expected {{\"b64\": ...}} or an HxWx3 list".format(what))


def tf_serving_prediction(det):
    return {"num_detections": float(len(det["scores"])),
            "detection_boxes": [[float(v) for v in b] for b in det["boxes"]],
            "detection_classes": [float(c) for c in det["classes"]],
            "detection_scores": [float(s) for s in det["scores"]]}


def coco_detections(det, width, height, threshold, names, image_id=1):
    """Same numbers as `odrun detect`'s detections.json (bbox [x, y, w, h] pixels, 2 decimals)."""
    out = []
    for box, cls, score in zip(det["boxes"], det["classes"], det["scores"]):
        if score < threshold:
            continue
        ymin, xmin, ymax, xmax = [float(v) for v in box]
        x, y, bw, bh = xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height
        out.append({"image_id": image_id, "category_id": int(cls), "category_name": names.get(int(cls), str(int(cls))),
                    "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)], "score": round(float(score), 5)})
    return out


# the app -----------------------------------------------------------------------------------------

def make_app(export_dir, name, runtime_name=None, max_batch=8, batch_timeout_ms=5, queue_size=64,
             max_body=16 * 1024 * 1024, max_pixels=4096 * 4096, threshold=0.4, delay_ms=0):
    from aiohttp import web
    from odrun import runtimes
    meta = runtimes.read_metadata(export_dir)
    names = {int(c["id"]): c["name"] for c in meta.get("classes", [])}
    metrics = Metrics()
    state = {"ready": False, "error": None, "batcher": None, "runtime": None}

    def json_error(status, message, headers=None):
        return web.json_response({"error": message}, status=status, headers=headers)

    @web.middleware
    async def errors_and_metrics(request, handler):
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        t0 = time.time()
        try:
            response = await handler(request)
        except BadRequest as exc:
            response = json_error(400, str(exc))
        except web.HTTPRequestEntityTooLarge:
            response = json_error(413, "request body over the limit of {} bytes (--max-body-mb)".format(max_body))
        except web.HTTPException as exc:
            response = json_error(exc.status, exc.reason)
        metrics.requests.labels(route, str(response.status)).inc()
        metrics.latency.labels(route).observe(time.time() - t0)
        return response

    async def infer(images):
        if not state["ready"]:
            if state["error"]:
                return None, json_error(503, "model failed to load: " + state["error"])
            return None, json_error(503, "model is loading", {"Retry-After": "1"})
        try:
            future = state["batcher"].submit(images)
        except asyncio.QueueFull:
            metrics.rejected.inc()
            return None, json_error(503, "server busy: request queue full ({})".format(queue_size),
                                    {"Retry-After": "1"})
        return await future, None

    def check_name(request):
        if request.match_info["name"] != name:
            raise web.HTTPNotFound(reason="Servable not found for request: Latest({})".format(request.match_info["name"]))

    def arrival():
        import contextlib
        return state["batcher"].arrival() if state["batcher"] is not None else contextlib.suppress()

    async def predict(request):
        check_name(request)
        with arrival():
            images = await predict_images(request)
        dets, error = await infer(images)
        if error is not None:
            return error
        return web.json_response({"predictions": [tf_serving_prediction(d) for d in dets]})

    async def predict_images(request):
        try:
            body = json.loads((await request.read()).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("body is not valid JSON: {}".format(exc))
        if not isinstance(body, dict) or not ({"instances", "inputs"} & set(body)):
            raise BadRequest('expected a JSON object with "instances" (row format) or "inputs" (columnar)')
        instances = body.get("instances", body.get("inputs"))
        if isinstance(instances, dict) and len(instances) == 1:
            instances = list(instances.values())[0]
        if not isinstance(instances, list) or not instances:
            raise BadRequest('"instances" must be a non-empty list')
        if len(instances) > MAX_INSTANCES:
            raise BadRequest("at most {} instances per request".format(MAX_INSTANCES))
        return [decode_instance(inst, max_pixels, i) for i, inst in enumerate(instances)]

    async def model_status(request):
        check_name(request)
        state_name = "AVAILABLE" if state["ready"] else ("END" if state["error"] else "LOADING")
        status = {"error_code": "OK", "error_message": ""} if not state["error"] else \
            {"error_code": "UNKNOWN", "error_message": state["error"]}
        return web.json_response({"model_version_status": [{"version": "1", "state": state_name, "status": status}]})

    async def detect(request):
        try:
            thr = float(request.query.get("threshold", threshold))
        except ValueError:
            raise BadRequest("threshold must be a number in 0..1")
        if not 0.0 <= thr <= 1.0:
            raise BadRequest("threshold must be in 0..1 (got {})".format(thr))
        with arrival():
            image = await upload_image(request)
        dets, error = await infer([image])
        if error is not None:
            return error
        h, w = image.shape[:2]
        return web.json_response({"model": name, "runtime": state["runtime"], "threshold": thr,
                                  "image": {"id": 1, "width": w, "height": h},
                                  "detections": coco_detections(dets[0], w, h, thr, names)})

    async def upload_image(request):
        data = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and not part.filename and part.name not in ("image", "file"):
                part = await reader.next()
            if part is None:
                raise BadRequest('multipart body has no file part (send it as field "image")')
            data = await part.read()
        else:
            data = await request.read()
        if not data:
            raise BadRequest("empty body: send an image (multipart field \"image\" or the raw bytes)")
        return decode_image(data, max_pixels)

    async def healthz(request):
        return web.json_response({"status": "ok"})

    async def readyz(request):
        if state["ready"]:
            return web.json_response({"ready": True, "runtime": state["runtime"]})
        return web.json_response({"ready": False, "error": state["error"]}, status=503)

    async def metrics_view(request):
        return web.Response(body=metrics.text(), content_type="text/plain", charset="utf-8")

    def load_and_warm():
        import numpy as np
        rt = runtimes.load(export_dir, runtime_name, meta)
        size = meta.get("image_size") or 320
        size = size if isinstance(size, (list, tuple)) else [size, size]
        rt.detect([np.zeros((int(size[0]), int(size[1]), 3), dtype=np.uint8)])  # warm-up: first call traces
        return rt

    async def start(app):
        loop = asyncio.get_event_loop()
        try:
            rt = await loop.run_in_executor(None, load_and_warm)
        except Exception as exc:  # noqa: BLE001 - /readyz reports it; the process stays up for /healthz
            LOG.error("model failed to load: %s", exc)
            state["error"] = "{}: {}".format(type(exc).__name__, exc)
            return
        batcher = Batcher(rt, max_batch, batch_timeout_ms, queue_size, metrics, delay_ms)
        batcher.task = asyncio.ensure_future(batcher.loop())
        state.update(batcher=batcher, runtime=rt.name, ready=True)
        metrics.ready.set(1)
        LOG.info("ready: %s via %s (max batch %d, %d ms)", name, rt.name, batcher.max_batch, batch_timeout_ms)

    async def on_startup(app):
        app["loader"] = asyncio.ensure_future(start(app))

    async def on_cleanup(app):  # after in-flight requests finished (aiohttp: sites stop, then handlers drain)
        app["loader"].cancel()
        if state["batcher"] is not None:
            await state["batcher"].close()

    app = web.Application(middlewares=[errors_and_metrics], client_max_size=max_body)
    app.router.add_post("/v1/models/{name}:predict", predict)
    app.router.add_post("/v1/models/{name}/versions/{version}:predict", predict)
    app.router.add_get("/v1/models/{name}", model_status)
    app.router.add_post("/v1/detect", detect)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app["state"] = state
    return app


def serve(export_dir, host="127.0.0.1", port=8501, name=None, access_log=None, shutdown_timeout=30, **kwargs):
    from aiohttp import web
    name = name or os.path.basename(os.path.abspath(export_dir).rstrip("/")) or "model"
    try:
        from odrun.quiet import terminal  # the real stderr while library noise goes to the verb's log
    except ImportError:
        terminal = lambda: sys.stderr  # noqa: E731
    handler = logging.FileHandler(access_log) if access_log and access_log != "-" else \
        logging.StreamHandler(terminal())
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("aiohttp.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    # own handlers: absl (imported by other verbs) owns the root logger and drops INFO
    info = logging.StreamHandler(terminal())
    info.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    LOG.addHandler(info)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    app = make_app(export_dir, name, **kwargs)
    web.run_app(app, host=host, port=port, shutdown_timeout=shutdown_timeout, access_log=access,
                access_log_format='%a "%r" %s %b %Tfs', print=lambda text: LOG.info(
                    "serving %s on http://%s:%d (TF Serving REST: /v1/models/%s:predict)", name, host, port, name))
