"""`odrun serve --model EXPORT_DIR [--host 127.0.0.1] [--port 8501]`: an HTTP inference service.

TensorFlow Serving's REST API (POST /v1/models/NAME:predict with "instances" (row format) or
"inputs" (columnar), base64 images as {"b64": ...}; GET /v1/models/NAME[/versions/1][/metadata]) and,
with --grpc-port, its gRPC API (PredictionService, ModelService), so
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

from odrun import runtimes
from odrun import serve
from odrun.serve import DEFAULTS


def add_parser(sub):
    p = sub.add_parser("serve", help="serve an exported model over HTTP (TF Serving REST + /v1/detect)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    p.add_argument("--model", metavar="EXPORT_DIR", required=True, help="output of `odrun export`")
    p.add_argument("--host", default=d["host"], help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=d["port"], help="TCP port (default 8501, TF Serving's REST port)")
    p.add_argument("--grpc-port", type=int, default=None,
                   help="also serve TF Serving's gRPC API (PredictionService, ModelService) on this port "
                        "(TF Serving's is 8500; needs tensorflow-serving-api)")
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


def run(args):
    return serve.from_args(args)
