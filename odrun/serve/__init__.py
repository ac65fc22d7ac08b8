"""`odrun serve`'s service (the flags: odrun.verbs.serve): TF Serving's REST API plus /v1/detect,
/healthz, /readyz and /metrics over an export's fastest verified runtime. Here: the flag checks and
the socket bound before the model loads; app.py wires the aiohttp app, handlers.py answers."""
import math
import os
import socket

from odcore.errors import UserError
from odcore.paths import check_output_file
from odrun import option_defaults
from odrun.ui import quiet

DEFAULTS = option_defaults("serve")  # odrun/data/defaults.yaml's serve section


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
    if args.grpc_port is not None:
        grpc_needs(args.grpc_port, args.port)
    model_source(args)
    if args.access_log and args.access_log != "-":
        access_log_path(args.access_log, args.model or os.path.dirname(os.path.abspath(args.model_config_file)))
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise UserError("odrun serve needs {} (not installed)".format(exc.name),
                        fix="pip install 'odstack[serve]'  (aiohttp, prometheus_client)")


def model_source(args):
    """--model EXPORT_DIR (one model, its version folders) or --model-config-file (TF Serving's list)."""
    if bool(args.model) == bool(args.model_config_file):
        raise UserError("give --model or --model-config-file (one of them)", where="--model",
                        fix="odrun serve --model EXPORT_DIR, or --model-config-file models.config (TF Serving's "
                        "ModelServerConfig text format)")
    if args.model_config_file and args.name:
        raise UserError("--name names the one --model; a models.config names its models itself", where="--name",
                        fix="drop --name, or set name: in the config entry")
    if args.model_config_file and not os.path.isfile(args.model_config_file):
        raise UserError("no such file", where=args.model_config_file, fix="--model-config-file PATH of a models.config")
    if args.model and not os.path.isdir(args.model):
        raise UserError("no such folder", where=args.model, fix="--model EXPORT_DIR (the output of odrun export), "
                        "or a folder of version folders (MODEL/1, MODEL/2)")
    if not (math.isfinite(args.file_system_poll_wait_seconds) and args.file_system_poll_wait_seconds >= 0):
        raise UserError("--file-system-poll-wait-seconds must be a number of seconds >= 0",
                        where="--file-system-poll-wait-seconds", fix="e.g. --file-system-poll-wait-seconds 1 "
                        "(0: load the versions once, never poll)")


def grpc_needs(grpc_port, port):
    if not 1 <= grpc_port <= 65535 or grpc_port == port:
        raise UserError("--grpc-port must be 1..65535 and not the REST --port", where="--grpc-port",
                        fix="e.g. --grpc-port 8500")
    try:
        import grpc  # noqa: F401
        from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401
    except ImportError as exc:
        raise UserError("odrun serve --grpc-port needs {} (not installed)".format(exc.name),
                        fix="pip install grpcio; pip install --no-deps tensorflow-serving-api")


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


def from_args(args):
    """`odrun serve` (flags: odrun.verbs.serve): validate, bind, load, serve until a signal; the exit code."""
    validate(args)
    from odrun.serve import app, models  # aiohttp (the serve extra): imported once validate found it
    options = app.Options(args.model, name=args.name, runtime_name=args.runtime, max_batch=args.max_batch,
                          batch_timeout_ms=args.batch_timeout_ms, queue_size=args.queue,
                          max_body=int(args.max_body_mb * 1024 * 1024), max_pixels=args.max_pixels,
                          max_request_pixels=args.max_request_pixels, threshold=args.threshold,
                          delay_ms=args.delay_ms, model_config=args.model_config_file,
                          poll_seconds=args.file_system_poll_wait_seconds)  # models.config read (exit 2 when bad)
    models.check_runtimes(options.specs, options.runtime_name)  # a missing form/runtime: exit 2 before the bind
    sock = bind(args.host, args.port)
    if quiet.log_path():  # TFLite's and TensorFlow's own lines (XNNPACK, grappler) stay off the terminal
        quiet.terminal().write("library output (TensorFlow, TFLite, absl): {}\n".format(quiet.log_path()))
        quiet.terminal().flush()
    try:
        return app.serve(options, sock, access_log=args.access_log, shutdown_timeout=args.shutdown_timeout,
                         grpc_port=args.grpc_port)
    finally:
        sock.close()
