"""`odrun serve --model EXPORT_DIR [--host 127.0.0.1] [--port 8501]`: an HTTP inference service.

TensorFlow Serving's REST API (POST /v1/models/NAME:predict with "instances" (row format) or
"inputs" (columnar), base64 images as {"b64": ...}, every output of the signature; :classify and
:regress; GET /v1/models/NAME[/versions/1][/metadata]) and,
with --grpc-port, its gRPC API (PredictionService, ModelService), so
existing TF Serving clients work unchanged, plus POST /v1/detect (an image upload -> COCO-style
detections, with masks for Mask R-CNN exports), /healthz, /readyz and Prometheus /metrics.
Requests are batched dynamically (up to --max-batch images or --batch-timeout-ms), the queue is
bounded (503 + Retry-After when full). The port is bound first and opens only once the model is
loaded and warmed up (a model that fails to load: exit 2). SIGINT/SIGTERM stop accepting, let
in-flight requests finish, exit 130/143. The model runs through the export's fastest verified
runtime (onnx, tflite: no TensorFlow import; then frozen, saved_model), or --runtime. A classifier
export (odrun train --task classify) is served from its SavedModel's signatures: :predict, and
:classify with "signature_name": "classification".

Versions as TF Serving lays them out: --model MODEL with MODEL/1, MODEL/2 (each an odrun export)
serves the newest; a version folder moved in later is loaded, warmed up (its
assets.extra/tf_serving_warmup_requests) and then replaces the old one, which answers until then.
A --model-config-file is re-read on the same poll: models added or removed there are served or
unloaded without a restart.

example: odrun serve --model export/ --port 8501
         curl -F image=@photo.jpg http://127.0.0.1:8501/v1/detect
"""
import argparse

from odrun import runtimes, serve, tasks


def add_parser(sub):
    p = sub.add_parser("serve", help="serve an exported model over HTTP (TF Serving REST + /v1/detect)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="EXPORT_DIR", help="output of `odrun export`, or a folder of version folders "
                   "(MODEL/1, MODEL/2, ...: the newest is served, a new one is picked up while serving)")
    p.add_argument("--model-config-file", metavar="FILE",
                   help="several models: TF Serving's models.config (ModelServerConfig text format: name, "
                        "base_path, model_version_policy, version_labels) instead of --model")
    p.add_argument("--file-system-poll-wait-seconds", type=float, metavar="SECONDS",
                   help="how often the base paths are checked for new versions and a --model-config-file "
                        "is re-read (0: only at start)")
    p.add_argument("--host", help="address to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, help="TCP port, TF Serving's REST port")
    p.add_argument("--grpc-port", type=int, default=None,
                   help="also serve TF Serving's gRPC API (PredictionService, ModelService) on this port "
                        "(TF Serving's is 8500; needs tensorflow-serving-api)")
    p.add_argument("--name", help="model name in /v1/models/NAME (default: the export folder's name)")
    p.add_argument("--runtime", choices=("auto",) + runtimes.RUNTIMES, default="auto",
                   help="inference runtime (default auto: onnx, tflite, frozen, saved_model - the first the export has)")
    p.add_argument("--max-batch", type=int, help="images per model call (1 = no batching)")
    p.add_argument("--batch-timeout-ms", type=float,
                   help="the longest a batch waits for requests still being received (a lone request "
                        "is never held back)")
    p.add_argument("--queue", type=int, help="requests waiting at most; more get 503")
    p.add_argument("--max-body-mb", type=float, help="request body limit in MB")
    p.add_argument("--max-pixels", type=int, help="largest image accepted (default 4096*4096 = %(default)s)")
    p.add_argument("--max-request-pixels", type=int,
                   help="decoded pixels of one request and of one model call at most; more is 413 "
                        "(default 2*4096*4096 = %(default)s)")
    p.add_argument("--threshold", type=float, help="/v1/detect min score when a request gives none")
    p.add_argument("--access-log", metavar="FILE", help="access log file (- : stderr; default %(default)s)")
    p.add_argument("--log", metavar="FILE",
                   help="where TensorFlow's, TFLite's and absl's own lines go, appended (default: a new "
                        "/tmp/odrun-serve-*.log); named on the terminal at start; -v: the terminal instead")
    p.add_argument("--shutdown-timeout", type=float,
                   help="seconds in-flight requests get after SIGTERM/SIGINT")
    p.add_argument("--delay-ms", type=float,
                   help="add this much to every model call, to rehearse a slow model (drills; default %(default)s)")
    tasks.file_defaults(p, "serve")  # defaults: odrun/data/defaults.yaml
    p.set_defaults(func=run)
    return p


def run(args):
    return serve.from_args(args)
