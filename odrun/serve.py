"""`odrun serve --model EXPORT_DIR [--host 127.0.0.1] [--port 8501]`: an HTTP inference service.

TensorFlow Serving's REST API (POST /v1/models/NAME:predict with "instances", base64 images as
{"b64": ...}; GET /v1/models/NAME), so existing TF Serving clients work unchanged, plus
POST /v1/detect (an image upload -> COCO-style detections), /healthz, /readyz (after the model is
loaded and warmed up) and Prometheus /metrics. Requests are batched dynamically (up to
--max-batch images or --batch-timeout-ms), the queue is bounded (503 + Retry-After when full),
SIGTERM stops accepting and lets in-flight requests finish. The model runs through the export's
fastest verified runtime (onnx, tflite: no TensorFlow import; then frozen, saved_model), or --runtime.

example: odrun serve --model export/ --port 8501
         curl -F image=@photo.jpg http://127.0.0.1:8501/v1/detect
"""
import argparse

from odcore.errors import UserError

DEFAULTS = {"host": "127.0.0.1", "port": 8501, "max_batch": 8, "batch_timeout_ms": 5.0, "queue": 64,
            "max_body_mb": 16.0, "max_pixels": 4096 * 4096, "threshold": 0.4, "shutdown_timeout": 30.0}


def add_parser(sub):
    from odrun.runtimes import RUNTIMES
    p = sub.add_parser("serve", help="serve an exported model over HTTP (TF Serving REST + /v1/detect)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    p.add_argument("--model", metavar="EXPORT_DIR", required=True, help="output of `odrun export`")
    p.add_argument("--host", default=d["host"], help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=d["port"], help="TCP port (default 8501, TF Serving's REST port)")
    p.add_argument("--name", help="model name in /v1/models/NAME (default: the export folder's name)")
    p.add_argument("--runtime", choices=("auto",) + RUNTIMES, default="auto",
                   help="inference runtime (default auto: onnx, tflite, frozen, saved_model - the first the export has)")
    p.add_argument("--max-batch", type=int, default=d["max_batch"], help="images per model call (default 8; 1 = no batching)")
    p.add_argument("--batch-timeout-ms", type=float, default=d["batch_timeout_ms"],
                   help="the longest a batch waits for requests still being received (default 5; "
                        "a lone request is never held back)")
    p.add_argument("--queue", type=int, default=d["queue"], help="requests waiting at most; more get 503 (default 64)")
    p.add_argument("--max-body-mb", type=float, default=d["max_body_mb"], help="request body limit (default 16 MB)")
    p.add_argument("--max-pixels", type=int, default=d["max_pixels"], help="largest image accepted (default 4096*4096)")
    p.add_argument("--threshold", type=float, default=d["threshold"], help="/v1/detect default min score (default 0.4)")
    p.add_argument("--access-log", metavar="FILE", default="-", help="access log file (default - : stderr)")
    p.add_argument("--shutdown-timeout", type=float, default=d["shutdown_timeout"],
                   help="seconds in-flight requests get after SIGTERM (default 30)")
    p.add_argument("--delay-ms", type=float, default=0,
                   help="add this much to every model call, to rehearse a slow model (drills; default 0)")
    p.set_defaults(func=run)
    return p


def validate(args):
    import os
    if not os.path.isfile(os.path.join(args.model, "metadata.json")):
        raise UserError("no metadata.json: not an `odrun export` directory", where=args.model,
                        fix="odrun export --workdir RUN_DIR --out " + args.model)
    checks = [("--port", 0 <= args.port <= 65535, "0..65535"), ("--max-batch", args.max_batch >= 1, ">= 1"),
              ("--batch-timeout-ms", args.batch_timeout_ms >= 0, ">= 0"), ("--queue", args.queue >= 1, ">= 1"),
              ("--max-body-mb", args.max_body_mb > 0, "> 0"), ("--max-pixels", args.max_pixels > 0, "> 0"),
              ("--threshold", 0.0 <= args.threshold <= 1.0, "in 0..1")]
    for flag, ok, rule in checks:
        if not ok:
            raise UserError("{} must be {}".format(flag, rule), where=flag)
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise UserError("odrun serve needs {} (not installed)".format(exc.name),
                        fix="pip install 'odstack[serve]'  (aiohttp, prometheus_client)")


def run(args):
    validate(args)
    from odrun import runtimes, serve_app
    runtimes.choose(args.model, args.runtime)  # a missing form/runtime fails here, exit 2, before listening
    serve_app.serve(args.model, host=args.host, port=args.port, name=args.name, access_log=args.access_log,
                    shutdown_timeout=args.shutdown_timeout, runtime_name=args.runtime, max_batch=args.max_batch,
                    batch_timeout_ms=args.batch_timeout_ms, queue_size=args.queue,
                    max_body=int(args.max_body_mb * 1024 * 1024), max_pixels=args.max_pixels,
                    threshold=args.threshold, delay_ms=args.delay_ms)
    return 0
