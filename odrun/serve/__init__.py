"""`odrun serve --model EXPORT_DIR [--host 127.0.0.1] [--port 8501]`: an HTTP inference service.

TensorFlow Serving's REST API (POST /v1/models/NAME:predict with "instances" (row format) or
"inputs" (columnar), base64 images as {"b64": ...}; GET /v1/models/NAME[/versions/1]), so
existing TF Serving clients work unchanged, plus POST /v1/detect (an image upload -> COCO-style
detections, with masks for Mask R-CNN exports), /healthz, /readyz and Prometheus /metrics.
Requests are batched dynamically (up to --max-batch images or --batch-timeout-ms), the queue is
bounded (503 + Retry-After when full). The port is bound first and opens only once the model is
loaded and warmed up (a model that fails to load: exit 2). SIGINT/SIGTERM stop accepting, let
in-flight requests finish, exit 130/143. The model runs through the export's fastest verified
runtime (onnx, tflite: no TensorFlow import; then frozen, saved_model), or --runtime.

example: odrun serve --model export/ --port 8501
         curl -F image=@photo.jpg http://127.0.0.1:8501/v1/detect
"""
import argparse
import math
import socket

from odcore.errors import UserError
from odcore.paths import check_output_file
from odrun import runtimes

DEFAULTS = {"host": "127.0.0.1", "port": 8501, "max_batch": 8, "batch_timeout_ms": 5.0, "queue": 64,
            "max_body_mb": 16.0, "max_pixels": 4096 * 4096, "max_request_pixels": 2 * 4096 * 4096,
            "threshold": 0.4, "shutdown_timeout": 30.0}


def add_parser(sub):
    p = sub.add_parser("serve", help="serve an exported model over HTTP (TF Serving REST + /v1/detect)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    p.add_argument("--model", metavar="EXPORT_DIR", required=True, help="output of `odrun export`")
    p.add_argument("--host", default=d["host"], help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=d["port"], help="TCP port (default 8501, TF Serving's REST port)")
    p.add_argument("--name", help="model name in /v1/models/NAME (default: the export folder's name)")
    p.add_argument("--runtime", choices=("auto",) + runtimes.RUNTIMES, default="auto",
                   help="inference runtime (default auto: onnx, tflite, frozen, saved_model - the first the export has)")
    p.add_argument("--max-batch", type=int, default=d["max_batch"], help="images per model call (default 8; 1 = no batching)")
    p.add_argument("--batch-timeout-ms", type=float, default=d["batch_timeout_ms"],
                   help="the longest a batch waits for requests still being received (default 5; "
                        "a lone request is never held back)")
    p.add_argument("--queue", type=int, default=d["queue"], help="requests waiting at most; more get 503 (default 64)")
    p.add_argument("--max-body-mb", type=float, default=d["max_body_mb"], help="request body limit (default 16 MB)")
    p.add_argument("--max-pixels", type=int, default=d["max_pixels"], help="largest image accepted (default 4096*4096)")
    p.add_argument("--max-request-pixels", type=int, default=d["max_request_pixels"],
                   help="decoded pixels of one request and of one model call at most; more is 413 "
                        "(default 2*4096*4096)")
    p.add_argument("--threshold", type=float, default=d["threshold"], help="/v1/detect default min score (default 0.4)")
    p.add_argument("--access-log", metavar="FILE", default="-", help="access log file (default - : stderr)")
    p.add_argument("--shutdown-timeout", type=float, default=d["shutdown_timeout"],
                   help="seconds in-flight requests get after SIGTERM/SIGINT (default 30)")
    p.add_argument("--delay-ms", type=float, default=0,
                   help="add this much to every model call, to rehearse a slow model (drills; default 0)")
    p.set_defaults(func=run)
    return p


def _number_checks(args):
    finite = lambda v: isinstance(v, (int, float)) and not math.isnan(v) and not math.isinf(v)  # noqa: E731
    return [("--port", 0 <= args.port <= 65535, "0..65535", 8501), ("--max-batch", args.max_batch >= 1, ">= 1", 8),
            ("--batch-timeout-ms", finite(args.batch_timeout_ms) and args.batch_timeout_ms >= 0, ">= 0", 5),
            ("--queue", args.queue >= 1, ">= 1", 64),
            ("--max-body-mb", finite(args.max_body_mb) and args.max_body_mb > 0, "> 0", 16),
            ("--max-pixels", args.max_pixels > 0, "> 0", 4096 * 4096),
            ("--max-request-pixels", args.max_request_pixels > 0, "> 0", 2 * 4096 * 4096),
            ("--threshold", finite(args.threshold) and 0.0 <= args.threshold <= 1.0, "in 0..1", 0.4),
            ("--shutdown-timeout", finite(args.shutdown_timeout) and args.shutdown_timeout >= 0,
             "a number of seconds >= 0", 30),
            ("--delay-ms", finite(args.delay_ms) and args.delay_ms >= 0, "a number of milliseconds >= 0", 0)]


def validate(args):
    for flag, ok, rule, example in _number_checks(args):
        if not ok:
            raise UserError("{} must be {}".format(flag, rule), where=flag, fix="e.g. {} {}".format(flag, example))
    if args.access_log and args.access_log != "-":
        access_log_path(args.access_log, args.model)
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise UserError("odrun serve needs {} (not installed)".format(exc.name),
                        fix="pip install 'odstack[serve]'  (aiohttp, prometheus_client)")


def access_log_path(path, model):
    """--access-log: the output guard for files (odcore.paths.check_output_file): never inside the
    export, a regular file (not a symlink, folder, device or FIFO) in a folder that exists."""
    check_output_file(path, [("model folder (--model)", model)], flag="--access-log")


def bind(host, port):
    """A socket bound to host:port (not listening yet): a bad address or a port in use is exit 2
    in a second, before the model loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError("cannot listen on host {!r}: {}".format(host, exc), where="--host",
                        fix="an address of this machine, e.g. --host 127.0.0.1 (0.0.0.0: every interface)")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what asyncio's create_server sets
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError("cannot listen on {}:{} ({})".format(host, port, exc.strerror or exc), where="--port",
                        fix="another port (--port {}), or stop what is listening there".format(port + 1 if port else 8501))
    return sock


def run(args):
    validate(args)
    from odrun.serve import app  # aiohttp (the serve extra): imported once validate found it
    options = app.Options(args.model, name=args.name, runtime_name=args.runtime, max_batch=args.max_batch,
                          batch_timeout_ms=args.batch_timeout_ms, queue_size=args.queue,
                          max_body=int(args.max_body_mb * 1024 * 1024), max_pixels=args.max_pixels,
                          max_request_pixels=args.max_request_pixels, threshold=args.threshold,
                          delay_ms=args.delay_ms)  # metadata.json read (exit 2 when damaged)
    runtimes.choose(args.model, options.runtime_name, options.meta)  # a missing form/runtime: exit 2
    sock = bind(args.host, args.port)
    try:
        return app.serve(options, sock, access_log=args.access_log, shutdown_timeout=args.shutdown_timeout)
    finally:
        sock.close()
