"""The routes of `odrun serve`, one module-level function each, reading `request.app[keys.*]`.

TF Serving's REST API (tensorflow.org/tfx/serving/api_rest; texts and codes in rest.json with
their sources in tensorflow/serving): predict in row ("instances" -> "predictions") and columnar
("inputs" -> "outputs") format, `signature_name` checked, model status for the model, a version
or a label, model metadata (the export's SignatureDefs). Plus /v1/detect (COCO rows), /healthz, /readyz, /metrics.
"""
import asyncio
import json
import os
import time

from aiohttp import BodyPartReader, web

from odrun.serve import codecs, jsonout, keys, profile, signature, tfjson

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "rest.json"), encoding="utf-8") as _f:
    REST = {k: v for k, v in json.load(_f).items() if not k.startswith("_")}


class RestError(Exception):
    """A TF Serving error: the message of rest.json's entry `fact`, its status code."""

    def __init__(self, fact, **fields):
        Exception.__init__(self, REST[fact]["value"].format(**fields))
        self.status = REST["status_of_code"]["value"][REST[fact]["code"]]


def json_error(status, message, headers=None):
    return web.json_response({"error": message}, status=status, headers=headers)


def _route(request):
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def errors_and_metrics(request, handler):
    t0 = time.time()
    try:
        response = await handler(request)
    except (codecs.BadRequest, RestError) as exc:
        response = json_error(exc.status, str(exc), {"Retry-After": "1"} if exc.status == 503 else None)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[keys.OPTIONS].max_body
        response = json_error(413, "request body over the limit of {} bytes (--max-body-mb)".format(limit))
    except web.HTTPMethodNotAllowed:  # TF Serving routes by method and path together: 400 (rest.json)
        response = malformed(request)
    except web.HTTPException as exc:
        response = json_error(exc.status, exc.reason)
    metrics = request.app[keys.METRICS]
    metrics.requests.labels(_route(request), str(response.status)).inc()
    metrics.latency.labels(_route(request)).observe(time.time() - t0)
    return response


def malformed(request):
    return json_error(REST["status_of_code"]["value"][REST["malformed"]["code"]],
                      REST["malformed"]["value"].format(method=request.method, path=request.path))


async def no_model_name(request):
    """GET /v1/models: TF Serving parses it, then wants a name."""
    raise RestError("no_model_name")


async def unrouted(request):
    """Any other method/path under /v1/: TF Serving's handler answers every /v1/.* request."""
    return malformed(request)


def servable(request):
    """The AVAILABLE version NAME, /versions/N or /labels/L names (odrun.serve.models: TF Serving's
    ServerCore lookup and its errors), the newest without either."""
    info = request.match_info
    return request.app[keys.STATE].registry.find(info["name"], info.get("version"), info.get("label"))


def arrival(request, version):
    """`with arrival(request, version):` around reading and decoding: the batcher waits for it, and
    the version is not unloaded until its job is queued (odrun.serve.models.Version.hold)."""
    return version.hold()


async def infer(request, images, version, marks=profile.OFF):
    """images through `version`'s batcher -> (detections, None) or (None, a 503 response)."""
    state, options = request.app[keys.STATE], request.app[keys.OPTIONS]
    if version.classifier is not None:
        raise codecs.BadRequest("this export is a classifier, not a detector: use /v1/models/{0}:predict or "
                                "/v1/models/{0}:classify".format(version.model_name))
    if not state.ready or version.batcher is None:
        return None, json_error(503, "model is loading", {"Retry-After": "1"})
    try:
        future = version.batcher.submit(images, marks, state.lone())
    except asyncio.QueueFull:
        request.app[keys.METRICS].rejected.inc()
        return None, json_error(503, "server busy: request queue full ({})".format(options.queue_size),
                                {"Retry-After": "1"})
    return await future, None


def predict_body(body, signatures=None):
    """A predict request body -> (instances, columnar), `signature_name` checked against the
    version's image signatures (serving_default; encoded_image_string_tensor where exported: the
    same model fed encoded images, which odrun decodes itself)."""
    default = REST["default_signature"]["value"]
    signature_name = tfjson.signature_name(body, default)
    if signature_name not in (signatures or (default,)):
        raise RestError("no_signature", signature=signature_name)
    instances, columnar = tfjson.instances_or_inputs(body)
    if isinstance(instances, dict) and len(instances) == 1:
        instances = list(instances.values())[0]  # {"input_tensor": [...]}: the one named input
    return instances, columnar


async def predict(request):
    """POST ...:predict, :classify, :regress (TF Serving's kPredictionApiGegex, case-insensitive)."""
    verb = request.match_info["verb"].lower()
    if verb not in ("predict", "classify", "regress"):
        return malformed(request)
    if verb != "predict":
        return await classify_or_regress(request, verb)
    version = servable(request)
    if version.classifier is not None:
        with arrival(request, version):  # held across the body read and the call: no unload between
            return await predict_signature(request, version)
    marks = profile.start()
    with arrival(request, version):
        raw = await request.read()
        marks.mark("read_body")
        instances, columnar = predict_body(codecs.parse_json(raw), version.signature_names)
        marks.mark("parse_json")
        images = codecs.decode_instances(instances, request.app[keys.OPTIONS])
        marks.mark("b64_and_decode")
    dets, error = await infer(request, images, version, marks)
    if error is not None:
        return error
    marks.mark("wake_after_model")
    answer = codecs.predict_answer(dets, columnar)
    marks.mark("build_answer")
    response = web.Response(body=jsonout.dumps(answer), content_type="application/json")
    marks.mark("json_dumps")
    return response


async def run_classifier(request, version, method, *args):
    """A classifier version's signature call on its own model thread (503 while loading); the
    version is held (not unloaded by a hot reload) until the call returns."""
    if not request.app[keys.STATE].ready or version.executor is None:
        raise codecs.NoMemory("model is loading")
    with version.hold():
        return await asyncio.get_event_loop().run_in_executor(version.executor, method, *args)


async def predict_signature(request, version):
    """:predict on a classifier export: any of its signatures, TF Serving's JSON <-> tensors."""
    rt = version.classifier
    body = codecs.parse_json(await request.read())
    name = tfjson.signature_name(body, REST["default_signature"]["value"])
    if name not in version.signature_names:
        raise RestError("no_signature", signature=name)
    arrays, columnar = tfjson.request_tensors(body, rt.specs(name))
    out = await run_classifier(request, version, rt.run, name, arrays)
    return web.json_response(tfjson.response_json(out, columnar))


async def classify_or_regress(request, verb):
    """:classify / :regress as TF Serving answers them: the JSON examples first, then the model, then
    the signature's shape (classifier.cc / regressor.cc with the default flags)."""
    body = codecs.parse_json(await request.read())
    name = tfjson.signature_name(body, REST["default_signature"]["value"])
    context, rows = tfjson.examples(body)
    version = servable(request)
    sig = signature.find(await signatures_of(version, request.match_info["name"]), name, codecs.BadRequest, REST)
    (signature.check_classify if verb == "classify" else signature.check_regress)(sig, codecs.BadRequest, REST)
    rt = version.classifier
    if rt is None:  # a detector's signatures never pass the checks above; the OD API has no others
        raise codecs.BadRequest("this export has no {} model".format(verb))
    method = rt.classify if verb == "classify" else rt.regress
    return web.json_response(await run_classifier(request, version, method, name, context, rows))


async def model_status(request):
    """GetModelStatus as TF Serving's REST API prints it: every version seen, newest first."""
    info = request.match_info
    versions = request.app[keys.STATE].registry.status(info["name"], info.get("version"), info.get("label"))
    return web.json_response({"model_version_status": [v.status_json() for v in versions]})


async def signatures_of(version, name):
    """The version's SignatureDefs, read once (imports TensorFlow's protos), off the event loop."""
    if version.signatures is None:
        version.signatures = await asyncio.get_event_loop().run_in_executor(
            None, signature.signature_defs, version.folder)
    if not version.signatures:
        raise RestError("no_metadata", name=name)
    return version.signatures


async def model_metadata(request):
    """GetModelMetadata as TF Serving's REST API prints it: the version's SignatureDefs."""
    version, name = servable(request), request.match_info["name"]
    sigs = await signatures_of(version, name)
    return web.json_response(signature.metadata_json(name, version.number, sigs))


async def detect(request):
    options = request.app[keys.OPTIONS]
    try:
        thr = float(request.query.get("threshold", options.threshold))
    except ValueError:
        raise codecs.BadRequest("threshold must be a number in 0..1")
    if not 0.0 <= thr <= 1.0:
        raise codecs.BadRequest("threshold must be in 0..1 (got {})".format(thr))
    name = request.query.get("model", options.name)
    version = request.app[keys.STATE].registry.find(name, request.query.get("version"))
    with arrival(request, version):
        image = codecs.decode_image(await upload_bytes(request), options)
    dets, error = await infer(request, [image], version)
    if error is not None:
        return error
    h, w = image.shape[:2]
    return web.json_response({"model": name, "version": version.number, "runtime": version.runtime_name,
                              "threshold": thr, "image": {"id": 1, "width": w, "height": h},
                              "detections": codecs.coco_detections(dets[0], w, h, thr, version.names)})


async def upload_bytes(request):
    """The image of a /v1/detect request: multipart field "image"/"file" (or the first file
    part), or the raw body. A malformed multipart body is a 400, never a 500."""
    if request.content_type.startswith("multipart/"):
        try:
            data = await _multipart_file(request)
        except codecs.BadRequest:
            raise
        except Exception as exc:  # noqa: BLE001 - aiohttp raises ValueError/AssertionError/... on bad framing
            raise codecs.BadRequest("multipart body is malformed ({}: {}); send one file part named \"image\" "
                                    "with a boundary and its closing line".format(type(exc).__name__, exc))
    else:
        data = await request.read()
    if not data:
        raise codecs.BadRequest("empty body: send an image (multipart field \"image\" or the raw bytes)")
    return data


async def _multipart_file(request):
    reader = await request.multipart()
    part = await reader.next()
    while part is not None:
        if not isinstance(part, BodyPartReader):
            raise codecs.BadRequest("multipart body: a nested multipart part is not an image; "
                                    "send the file as a plain part named \"image\"")
        if part.filename or part.name in ("image", "file"):
            data = await part.read()
            await reader.release()  # reads to the closing boundary: a body without one fails here
            return data
        await part.release()
        part = await reader.next()
    raise codecs.BadRequest('multipart body has no file part (send it as field "image")')


async def healthz(request):
    return web.json_response({"status": "ok"})


async def readyz(request):
    """200 once every model's initial versions are loaded and their warmup replayed."""
    state = request.app[keys.STATE]
    if state.ready:
        served = {name: {"version": m.available()[-1], "runtime": m.versions[m.available()[-1]].runtime_name}
                  for name, m in state.registry.models.items() if m.available()}
        first = served.get(request.app[keys.OPTIONS].name, {})
        return web.json_response({"ready": True, "runtime": first.get("runtime"), "models": served})
    return web.json_response({"ready": False, "error": state.error}, status=503)


async def metrics_view(request):
    return web.Response(body=request.app[keys.METRICS].text(), content_type="text/plain", charset="utf-8")
