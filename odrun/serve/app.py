"""The aiohttp application of `odrun serve`: wiring only (routes, middleware, the model's
lifetime), and `serve()`, which runs it on an already bound socket.

The models are loaded (and warmed up) by the app's cleanup context, before the socket listens:
a model that fails to load is exit 2 and the port never opens (odrun.serve.models: versions,
models.config, the poll for new versions). SIGINT/SIGTERM: stop listening,
let the requests in flight finish (--shutdown-timeout), unload, exit 130/143.
"""
import asyncio
import logging
import signal
import sys

from aiohttp import web

from odcore.errors import UserError
from odrun.serve import handlers, keys, models
from odrun.serve.metrics import Metrics

LOG = logging.getLogger("odrun.serve")
EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Options(object):
    """What the app serves and its limits (the flags of `odrun serve`, as a small object).
    specs: the models (odrun.serve.models.specs_of: --model, or --model-config-file's list)."""

    def __init__(self, export_dir=None, name=None, runtime_name=None, max_batch=8, batch_timeout_ms=5, queue_size=64,
                 max_body=16 * 1024 * 1024, max_pixels=4096 * 4096, max_request_pixels=2 * 4096 * 4096,
                 threshold=0.4, delay_ms=0, model_config=None, poll_seconds=1):
        self.specs = models.specs_of(export_dir, name, model_config)
        self.model_config = model_config  # re-read on every poll (models.Registry.reconfigure)
        self.name = self.specs[0].name  # /v1/detect's model unless ?model= names another
        self.runtime_name = runtime_name
        self.max_batch, self.batch_timeout_ms, self.queue_size = max_batch, batch_timeout_ms, queue_size
        self.max_body, self.max_pixels, self.max_request_pixels = max_body, max_pixels, max_request_pixels
        self.threshold, self.delay_ms, self.poll_seconds = threshold, delay_ms, poll_seconds


class State(object):
    def __init__(self):
        self.ready, self.error, self.registry = False, None, None
        self.http = None  # aiohttp's web.Server once listening: its open connections
        self.grpc_calls = 0  # gRPC Predict calls in progress

    def lone(self):
        """True when the request asking is the only one the server can see coming: one HTTP connection
        (its own) and no gRPC call, or one gRPC call (its own) and no connection. Only then may the
        batcher run the model on the event loop: with other clients it would keep their requests
        unread (in their sockets) for the whole call, and they could not batch or overlap it."""
        connections = len(self.http.connections) if self.http is not None else 0
        return connections + self.grpc_calls <= 1


async def model(app):
    """Cleanup context: every model's versions loaded + warmed up before the port listens (a
    failure is exit 2); then the base paths are polled for new versions; after the in-flight
    requests, everything is unloaded."""
    options, state = app[keys.OPTIONS], app[keys.STATE]
    state.registry = models.Registry(options.specs, options, app[keys.METRICS])
    await state.registry.refresh(first=True)
    state.ready = True
    app[keys.METRICS].ready.set(1)
    state.registry.start_polling(options.poll_seconds)
    LOG.info("ready: %s (max batch %d, %s ms)", ", ".join(
        "{} version {} via {}".format(m.name, m.available()[-1], m.versions[m.available()[-1]].runtime_name)
        for m in state.registry.models.values()), options.max_batch, options.batch_timeout_ms)
    yield
    state.ready = False
    await state.registry.close()


def make_app(options):
    """The application for `options` (an Options); nothing is loaded until it starts."""
    app = web.Application(middlewares=[handlers.errors_and_metrics], client_max_size=options.max_body)
    app[keys.OPTIONS], app[keys.STATE], app[keys.METRICS] = options, State(), Metrics()
    add = app.router
    model_path = "/v1/models/{name:[^/:]+}"
    # TF Serving's kPredictionApiGegex / kModelStatusApiRegex (http_rest_api_util.cc) take /versions/(\d+) only:
    # /versions/abc matches neither and is its "Malformed request: GET /v1/models/NAME/versions/abc" (400)
    for spec in ("", "/versions/{version:\\d+}", "/labels/{label:[^/:]+}"):
        add.add_post(model_path + spec + ":{verb:[A-Za-z]+}", handlers.predict)
        add.add_get(model_path + spec, handlers.model_status)
        add.add_get(model_path + spec + "/metadata", handlers.model_metadata)
    add.add_get("/v1/models", handlers.no_model_name)
    add.add_post("/v1/detect", handlers.detect)
    add.add_get("/healthz", handlers.healthz)
    add.add_get("/readyz", handlers.readyz)
    add.add_get("/metrics", handlers.metrics_view)
    add.add_route("*", "/v1/{tail:.*}", handlers.unrouted)  # last: TF Serving answers all of /v1/
    app.cleanup_ctx.append(model)
    return app


def log_handlers(access_log):
    """The access log (a file or the terminal) and the service's own INFO lines."""
    try:
        from odrun.ui.quiet import terminal  # the real stderr while library noise goes to the verb's log
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
    return access


def _runner(app, access, shutdown_timeout):
    kwargs = dict(handle_signals=False, access_log=access, access_log_format='%a "%r" %s %b %Tfs')
    try:
        return web.AppRunner(app, shutdown_timeout=shutdown_timeout, **kwargs), {}  # aiohttp >= 3.9
    except TypeError:
        return web.AppRunner(app, **kwargs), {"shutdown_timeout": shutdown_timeout}  # 3.8: the site's


def _grpc_server(app, sock, grpc_port):
    """The gRPC server (bound, not started) on the REST socket's host, or None without --grpc-port."""
    if grpc_port is None:
        return None
    from odrun.serve import grpc_service  # grpcio + tensorflow-serving-api: only with --grpc-port
    host = sock.getsockname()[0]
    try:
        return grpc_service.server(app, host, grpc_port)
    except (OSError, RuntimeError) as exc:
        raise UserError("cannot listen for gRPC on {}:{} ({})".format(host, grpc_port, exc), where="--grpc-port",
                        fix="another port (--grpc-port {}), or stop what is listening there".format(grpc_port + 1))


async def _serve(app, sock, access, shutdown_timeout, grpc_port=None):
    loop = asyncio.get_event_loop()
    stopped = asyncio.Event()
    got = []

    def on_signal(signum):
        got.append(signum)
        stopped.set()

    for signum in EXIT_ON_SIGNAL:
        loop.add_signal_handler(signum, on_signal, signum)
    runner, site_kwargs = _runner(app, access, shutdown_timeout)
    grpc_server = _grpc_server(app, sock, grpc_port)  # bound now: a port in use is exit 2 before the load
    try:
        await runner.setup()  # the cleanup context: the model loads here, before the socket listens
        if got:  # a signal during the load: never open the port
            return EXIT_ON_SIGNAL[got[0]]
        await web.SockSite(runner, sock, **site_kwargs).start()
        app[keys.STATE].http = getattr(runner, "server", None)
        if grpc_server is not None:
            await grpc_server.start()
        options = app[keys.OPTIONS]
        host, port = sock.getsockname()[:2]
        LOG.info("serving %s on http://%s:%d (TF Serving REST: /v1/models/%s:predict)%s", options.name, host, port,
                 options.name, "" if grpc_server is None else ", gRPC on port {}".format(grpc_port))
        await stopped.wait()
        LOG.info("stopping: finishing the requests in flight (at most %s s)", shutdown_timeout)
    finally:
        if grpc_server is not None:
            await grpc_server.stop(shutdown_timeout)  # in-flight RPCs finish within the grace period
        await runner.cleanup()  # stop listening, drain in-flight handlers, then unload the model
    return EXIT_ON_SIGNAL[got[0]] if got else 0


def serve(options, sock, access_log=None, shutdown_timeout=30, grpc_port=None):
    """Serve on `sock` (bound, not yet listening) until SIGINT/SIGTERM; -> the exit code."""
    access = log_handlers(access_log)
    app = make_app(options)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(app, sock, access, shutdown_timeout, grpc_port))
    finally:
        loop.close()
