"""The models `odrun serve` serves and their versions, laid out as TF Serving lays them out:
a model's base path holds numeric version folders (BASE/1, BASE/2, ...), the newest is served by
default, and several models come from a `--model-config-file` (TF Serving's text-format
ModelServerConfig: name, base_path, model_version_policy, version_labels).

A version folder is either an `odrun export` (its metadata.json: every runtime it carries) or a
bare SavedModel (saved_model.pb) inside an odrun export's folder, whose metadata.json then gives
the class names (runtime saved_model). EXPORT/1 of an export, the hard-linked copy of
EXPORT/saved_model, is served as EXPORT itself (onnx, tflite, frozen included).

Each version has TF Serving's ModelVersionStatus state (START, LOADING, AVAILABLE, UNLOADING, END);
a poll of the base paths (--file-system-poll-wait-seconds, TF Serving's flag) loads a new version
while the old one keeps answering, warms it up (its assets.extra/tf_serving_warmup_requests), makes
it AVAILABLE, then unloads the versions the policy no longer wants (availability preserving).
A classifier export's version runs its own signatures (odrun.serve.classifier) on one model
thread instead of a batcher.
"""
import asyncio
import contextlib
import filecmp
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from odcore.errors import UserError
from odrun import runtimes
from odrun.runtimes import saved_model
from odrun.serve import classifier, codecs, handlers, warmup
from odrun.serve.batcher import Batcher, model_threads
from odrun.tasks.classify.export import PIXELS_SIGNATURE
from odrun.tasks.detect.masks import output as seg_output
from odrun.workdir.metadata import export_metadata

LOG = logging.getLogger("odrun.serve")


class ModelSpec(object):
    """One model: its name, base path, version policy (latest N, all, specific) and labels."""

    def __init__(self, name, base_path, policy=("latest", 1), labels=None, where=None):
        self.name, self.base_path, self.policy = name, os.path.abspath(base_path), policy
        self.labels = dict(labels or {})
        self.where = where or base_path  # for errors: the config file and line, or the flag

    def wanted(self, found):
        """The version numbers to serve among `found` (the numbers present on disk)."""
        kind, arg = self.policy
        if kind == "all":
            return sorted(found)
        if kind == "specific":
            return sorted(v for v in found if v in arg)
        return sorted(found)[-arg:] if arg > 0 else []


def _config_error(path, line, what, fix):
    return UserError(what, where="{}:{}".format(path, line), fix=fix)


def _line_of(text, needle, default=1):
    """The 1-based line of the first `needle` in text (proto parsers do not keep field positions)."""
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else default


def read_config(path):
    """--model-config-file: TF Serving's ModelServerConfig text proto, parsed with its own proto
    (tensorflow_serving.config.model_server_config_pb2) -> [ModelSpec]. Anything TF Serving would
    refuse, and what odrun serve does not do (custom_model_config, other platforms), is exit 2
    naming the file and line. A relative base_path is read from the config file's folder."""
    try:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as exc:
        raise UserError("--model-config-file needs {} (not installed)".format(exc.name), where="--model-config-file",
                        fix="pip install --no-deps tensorflow-serving-api (and protobuf)")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError("cannot read the model config file ({})".format(exc), where=path,
                        fix="give a readable text file (TF Serving's models.config)")
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        line = exc.GetLine() if hasattr(exc, "GetLine") and exc.GetLine() else 1
        raise _config_error(path, line, "not a ModelServerConfig: {}".format(exc),
                            "write it as TF Serving documents: model_config_list { config { name: \"NAME\" "
                            "base_path: \"/models/NAME\" model_platform: \"tensorflow\" } }")
    if config.WhichOneof("config") != "model_config_list" or not config.model_config_list.config:
        raise _config_error(path, 1, "no model_config_list with a config entry",
                            "add model_config_list { config { name: \"NAME\" base_path: \"BASE\" } }")
    folder = os.path.dirname(os.path.abspath(path))
    specs = [_spec(path, text, entry, folder) for entry in config.model_config_list.config]
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise _config_error(path, _line_of(text, '"{}"'.format(spec.name), 1) , "model {} is listed twice".format(
                spec.name), "give each config entry its own name")
        seen.add(spec.name)
    return specs


def _spec(path, text, entry, folder):
    line = _line_of(text, '"{}"'.format(entry.name)) if entry.name else 1
    if not entry.name or not entry.base_path:
        raise _config_error(path, line, "a config entry without {}".format("name" if not entry.name else "base_path"),
                            "each config { } needs name: \"NAME\" and base_path: \"BASE\"")
    if entry.model_platform not in ("", "tensorflow"):
        raise _config_error(path, _line_of(text, entry.model_platform, line), "model_platform {!r} of model {}".format(
            entry.model_platform, entry.name), 'model_platform: "tensorflow" (or leave it out)')
    base = os.path.join(folder, entry.base_path)
    if not os.path.isdir(base):
        raise _config_error(path, _line_of(text, entry.base_path, line), "base_path {} of model {} is not a "
                            "folder".format(base, entry.name), "the folder holding the version folders (BASE/1, "
                            "BASE/2, ...) or an odrun export")
    kind = entry.model_version_policy.WhichOneof("policy_choice") or "latest"
    policy = entry.model_version_policy
    arg = {"latest": policy.latest.num_versions or 1, "all": None,
           "specific": set(policy.specific.versions)}[kind]
    if kind == "specific" and not arg:
        raise _config_error(path, _line_of(text, "specific", line), "model {}: specific {{}} lists no "
                            "versions".format(entry.name), "specific { versions: 1 versions: 2 }")
    spec = ModelSpec(entry.name, base, (kind, arg), dict(entry.version_labels), where="{}:{}".format(path, line))
    served = spec.wanted(discover(base))
    for label, number in sorted(spec.labels.items()):
        if number not in served:  # TF Serving: a label may only name a version it loads
            raise _config_error(path, _line_of(text, label, line), "label {} of model {} names version {}, "
                                "which is not served (served: {})".format(label, entry.name, number, served or "none"),
                                "point it at a served version, or change model_version_policy")
    return spec


def specs_of(model_dir=None, name=None, config_file=None):
    """The models to serve: --model-config-file's, or the one --model (named --name or its folder)."""
    if config_file:
        return read_config(config_file)
    name = name or os.path.basename(os.path.abspath(model_dir).rstrip("/")) or "model"
    return [ModelSpec(name, model_dir, where="--model")]


def version_folders(base):
    """{number: folder} of BASE's numeric children that hold a model (metadata.json or saved_model.pb).
    A folder still being copied in is left for a later poll (TF Serving: move it in in one rename)."""
    out = {}
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for name in names:
        folder = os.path.join(base, name)
        if name.isdigit() and os.path.isdir(folder) and any(
                os.path.isfile(os.path.join(folder, f)) for f in ("metadata.json", "saved_model.pb")):
            out[int(name)] = folder
    return out


def discover(base):
    """Versions of a --model folder: its version folders, or the export itself as version 1 (an
    export without a 1/ folder: onnx/tflite only, or written before odrun wrote one)."""
    found = version_folders(base)
    if not found and os.path.isfile(os.path.join(base, "metadata.json")):
        found = {1: base}
    return found


def _same_file(a, b):
    """The same file, or the same bytes (an export copied without its hard links: cp -r, docker cp)."""
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def locate(folder, base):
    """-> (export_dir, meta, names, bare): where the runtimes read a version folder from.
    bare: a SavedModel only, its classes from the base export's metadata.json (runtime saved_model)."""
    if os.path.isfile(os.path.join(folder, "metadata.json")):
        return (folder,) + tuple(export_metadata(folder)) + (False,)
    pb = os.path.join(folder, "saved_model.pb")
    if _same_file(pb, os.path.join(base, "saved_model", "saved_model.pb")):
        return (base,) + tuple(export_metadata(base)) + (False,)  # EXPORT/1 = EXPORT
    if os.path.isfile(os.path.join(base, "metadata.json")):
        meta, names = export_metadata(base)
        return folder, meta, names, True
    raise UserError("version folder {} is a SavedModel without an odrun export's metadata.json".format(folder),
                    where=folder, fix="export it with `odrun export --out {}` (the folder becomes the "
                    "version), or put it inside an odrun export folder".format(folder))


class Version(object):
    """One version of a model: its files, TF Serving state, and once AVAILABLE its batcher (a
    detector) or its classifier runtime and the one thread that runs it (a classifier export)."""

    def __init__(self, number, folder, model_name):
        self.number, self.folder, self.model_name = number, folder, model_name
        self.state, self.error = "START", None
        self.export_dir = self.meta = self.names = self.batcher = self.runtime_name = None
        self.classifier = self.executor = None  # a classifier export: classifier.Runtime, its model thread
        self.signatures = None  # {key: SignatureDef}, read on the first metadata request
        self.warmed = 0
        self.holders = 0  # requests that found this version and are still being read/decoded
        self.signature_names = (handlers.REST["default_signature"]["value"],)

    @contextlib.contextmanager
    def hold(self):
        """Around reading and decoding a request found for this version (TF Serving's ServableHandle):
        the version is not unloaded before its job is queued (no await between this and submit)."""
        self.holders += 1
        try:
            with self.batcher.arrival() if self.batcher is not None else contextlib.suppress():
                yield
        finally:
            self.holders -= 1

    def status_json(self):
        """TF Serving's REST print of one ModelVersionStatus (version as a string, enum names)."""
        code = "OK" if self.error is None else "UNKNOWN"
        return {"version": str(self.number), "state": self.state,
                "status": {"error_code": code, "error_message": self.error or ""}}


def is_classifier(meta):
    return meta.get("task") == "classify"


def classifier_runtime(runtime_name):
    """A classifier export is served from its SavedModel (it has no other form)."""
    if runtime_name not in (None, "auto", "saved_model"):
        raise UserError("a classifier export is served from its SavedModel, not --runtime {}".format(runtime_name),
                        where="--runtime", fix="omit --runtime (or --runtime saved_model)")
    return "saved_model"


def load_classifier(version, export_dir, meta, names, runtime_name):
    """A classifier version: its signatures loaded, one call of its pixel signature (the first traces)."""
    import numpy as np
    classifier_runtime(runtime_name)
    rt = classifier.Runtime(export_dir)
    rt.run(PIXELS_SIGNATURE, {"pixels": np.zeros((1, 32, 32, 3), dtype=np.uint8)})
    version.export_dir, version.meta, version.names = export_dir, meta, names
    version.signature_names = tuple(sorted(rt.fns))
    return rt


def load_version(spec, version, options):
    """Blocking (an executor thread): read, load, warm up -> the loaded runtime; raises on failure."""
    import numpy as np
    export_dir, meta, names, bare = locate(version.folder, spec.base_path)
    if is_classifier(meta):  # a bare SavedModel in a classifier export is one of its versions
        return load_classifier(version, version.folder if bare else export_dir, meta, names, options.runtime_name)
    runtime_name = "saved_model" if bare else seg_output.runtime_for(meta, options.runtime_name)
    if bare:
        rt = saved_model.Runtime(version.folder, meta)
    else:
        runtimes.choose(export_dir, runtime_name, meta)  # a missing form or runtime: a clear error
        rt = runtimes.load(export_dir, runtime_name, meta, threads=model_threads())
    version.export_dir, version.meta, version.names = export_dir, meta, names
    also = sorted(((meta.get("signature") or {}).get("also") or {}))  # odrun export's encoded_image_string_tensor
    version.signature_names = version.signature_names + tuple(also)
    records = warmup.read(version.folder if bare or version.folder != export_dir
                          else os.path.join(export_dir, "1"))
    images = [im for _, inputs in records for im in warmup_images(inputs, options)]
    if not images:  # no warmup file: one image of the model's size traces the first call
        size = meta.get("image_size") or 320
        size = size if isinstance(size, (list, tuple)) else [size, size]
        images = [np.zeros((int(size[0]), int(size[1]), 3), dtype=np.uint8)]
    for image in images:
        rt.detect([image])
    version.warmed = len(records)
    return rt


def warmup_images(inputs, limits):
    """A warmup request's one input -> HxWx3 uint8 images (pixel tensors or encoded images)."""
    import numpy as np
    out = []
    for value in inputs.values():
        if isinstance(value, list):
            out.extend(codecs.decode_image(v, limits, "a warmup image") for v in value)
        elif value.ndim == 4 and value.shape[-1] == 3:
            out.extend(np.clip(value, 0, 255).astype(np.uint8))
        else:
            raise warmup.BadWarmup("input of shape {} is not [N, H, W, 3] images".format(list(value.shape)))
    return out


class Model(object):
    def __init__(self, spec):
        self.spec, self.name = spec, spec.name
        self.versions = {}  # number -> Version, every one seen (END ones kept: TF Serving lists them)
        self.tried = {}  # number -> the folder's fingerprint when its load failed: retried once it changes

    def available(self):
        return sorted(n for n, v in self.versions.items() if v.state == "AVAILABLE")

    def find(self, version=None, label=None):
        """The Version a request names (None: the newest AVAILABLE), or TF Serving's error."""
        if label is not None:
            if label not in self.spec.labels:
                raise handlers.RestError("no_label", label=label)
            version = self.spec.labels[label]
        if version is None:
            numbers = self.available()
            if not numbers:
                raise handlers.RestError("no_servable", request="Latest({})".format(self.name))
            return self.versions[numbers[-1]]
        v = self.versions.get(int(version))
        if v is None or v.state != "AVAILABLE":
            raise handlers.RestError("no_servable", request="Specific({}, {})".format(self.name, int(version)))
        return v


def _policy_note(spec, found):
    return "; versions there: {}, the policy {} serves none of them".format(sorted(found), spec.policy[0]) \
        if found else ""


def fingerprint(folder):
    """What changes when a version folder is (re)written: its top files' sizes and mtimes."""
    try:
        return tuple(sorted((n, os.stat(os.path.join(folder, n)).st_mtime, os.stat(os.path.join(folder, n)).st_size)
                            for n in os.listdir(folder)))
    except OSError:
        return None


def version_number(version):
    """A path's /versions/N (digits: the route's regex) -> int, None kept; past int64 it is TF Serving's
    "Failed to convert version" (absl::SimpleAtoi fails, http_rest_api_util.cc ParseModelInfo)."""
    if version is None:
        return None
    if not str(version).isdigit() or int(version) > 2 ** 63 - 1:
        raise handlers.RestError("bad_version", version=version)
    return int(version)


class Registry(object):
    """Every model of this server: find() for requests, status() for GetModelStatus, refresh() to
    load what appeared and unload what the policy no longer wants."""

    def __init__(self, specs, options, metrics):
        self.models = {s.name: Model(s) for s in specs}
        self.options, self.metrics = options, metrics
        self.lock = asyncio.Lock()
        self.poller = None
        self.config_text = config_text(options.model_config)  # the models.config these models came from
        self.config_error = None  # why its latest text was not applied (logged once)

    def model(self, name, version=None):
        model = self.models.get(name)
        if model is None:
            raise handlers.RestError("no_servable", request="Latest({})".format(name) if version is None
                                     else "Specific({}, {})".format(name, int(version)))
        return model

    def find(self, name, version=None, label=None):
        """A request's servable (REST path or gRPC ModelSpec) -> an AVAILABLE Version or RestError."""
        version = version_number(version)
        return self.model(name, version).find(version, label)

    def status(self, name, version=None, label=None):
        """GetModelStatus: [Version], newest first (TF Serving's VersionMap order), or its 404s."""
        version = version_number(version)
        model = self.models.get(name)
        if model is None or not model.versions:
            raise handlers.RestError("no_model_status", name=name)
        if label is not None:
            if label not in model.spec.labels:
                raise handlers.RestError("no_label", label=label)
            version = model.spec.labels[label]
        if version is None:
            return [model.versions[n] for n in sorted(model.versions, reverse=True)]
        if int(version) not in model.versions:
            raise handlers.RestError("no_version_status", version=int(version), name=name)
        return [model.versions[int(version)]]

    def batchers(self):
        return [v.batcher for m in self.models.values() for v in m.versions.values() if v.batcher is not None]

    async def refresh(self, first=False):
        """Load the versions the policies want that are not loaded, then unload the others.
        first: a load failure is exit 2 (the port never opens); later it is that version's END status."""
        async with self.lock:
            for model in list(self.models.values()):
                found = discover(model.spec.base_path)
                wanted = model.spec.wanted(found)
                if first and not wanted:
                    raise UserError("no version of model {} to serve in {}: neither an export (metadata.json) "
                                    "nor version folders (N/ holding an odrun export's metadata.json or a "
                                    "saved_model.pb){}".format(model.name, model.spec.base_path, _policy_note(
                                        model.spec, found)), where=model.spec.where,
                                    fix="export into it: odrun export --workdir RUN_DIR --out {}".format(
                                        os.path.join(model.spec.base_path, "1")))
                for number in wanted:
                    await self._load(model, number, found[number], first)
                if any(model.versions[n].state == "AVAILABLE" for n in wanted if n in model.versions):
                    for number in model.available():
                        if number not in wanted:
                            await self._unload(model.versions[number])

    async def _load(self, model, number, folder, first):
        old = model.versions.get(number)
        if old is not None and (old.state in ("LOADING", "AVAILABLE") or model.tried.get(number) == fingerprint(folder)):
            return
        version = model.versions[number] = Version(number, folder, model.name)
        version.state = "LOADING"
        loop = asyncio.get_event_loop()
        t0 = time.time()
        try:
            rt = await loop.run_in_executor(None, load_version, model.spec, version, self.options)
        except asyncio.CancelledError:  # an Exception on Python < 3.8: the server stops during the load
            version.state = "END"
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure: exit 2 at start, END + error later
            version.state, version.error = "END", "{}: {}".format(type(exc).__name__, exc)
            model.tried[number] = fingerprint(folder)
            if first:
                raise UserError("model {} version {} failed to load ({})".format(model.name, number, version.error),
                                where=folder, fix="check it with `odrun detect --model {} IMAGE` or re-export it: "
                                "odrun export --workdir RUN_DIR --out {}".format(folder, folder))
            LOG.info("model %s version %d failed to load: %s (still serving %s)", model.name, number,
                     version.error, model.available() or "nothing")
            return
        o = self.options
        if isinstance(rt, classifier.Runtime):
            version.classifier, version.executor = rt, ThreadPoolExecutor(1)
        else:
            version.batcher = Batcher(rt, o.max_batch, o.batch_timeout_ms, o.queue_size, self.metrics, o.delay_ms,
                                      o.max_request_pixels)
            version.batcher.start()
        version.runtime_name, version.state = rt.name, "AVAILABLE"
        LOG.info("model %s version %d AVAILABLE via %s (loaded and warmed up with %d warmup records in %.1f s)",
                 model.name, number, rt.name, version.warmed, time.time() - t0)

    async def _unload(self, version, why="a newer one is AVAILABLE"):
        """UNLOADING: no new requests reach it (find() wants AVAILABLE); those queued finish."""
        version.state = "UNLOADING"
        while version.holders:  # requests being read for it: their jobs are queued before the stop
            await asyncio.sleep(0.01)
        if version.batcher is not None:
            await version.batcher.close()
        if version.executor is not None:  # its last calls finish (off the event loop)
            await asyncio.get_event_loop().run_in_executor(None, version.executor.shutdown, True)
        version.batcher, version.classifier, version.executor, version.state = None, None, None, "END"
        LOG.info("model %s version %d unloaded (%s)", version.model_name, version.number, why)

    async def reconfigure(self):
        """models.config re-read (TF Serving's --model_config_file_poll_wait_seconds; here on each poll)
        when its text changed: a model added is loaded by the refresh that follows, a model removed is
        unloaded and answers 404, a model's new policy or labels apply. A config that no longer
        reads keeps the models served and is logged (TF Serving: ReloadConfig fails, serving goes on)."""
        text = config_text(self.options.model_config)
        if text is None or text == self.config_text:
            return
        try:
            specs = read_config(self.options.model_config)
        except UserError as exc:  # tried again each poll (a version folder it names may be on its way)
            why = exc.render().replace("error: ", "", 1).replace("\n ", ";")
            if why != self.config_error:
                LOG.info("models.config not applied, still serving %s: %s", sorted(self.models), why)
            self.config_error = why
            return
        self.config_text, self.config_error = text, None
        async with self.lock:
            wanted = {s.name: s for s in specs}
            for name in [n for n in self.models if n not in wanted or wanted[n].base_path !=
                         self.models[n].spec.base_path]:
                model = self.models.pop(name)
                for number in model.available():
                    await self._unload(model.versions[number], "model {} left models.config".format(name))
            for name, spec in wanted.items():
                if name in self.models:
                    self.models[name].spec = spec  # its policy and labels: applied by refresh()
                else:
                    self.models[name] = Model(spec)
                    LOG.info("model %s added by models.config (%s)", name, spec.base_path)

    async def poll(self, seconds):
        """TF Serving's --file_system_poll_wait_seconds loop (0: never after the start), models.config
        re-read first."""
        while seconds > 0:
            await asyncio.sleep(seconds)
            try:
                if self.options.model_config:
                    await self.reconfigure()
                await self.refresh()
            except asyncio.CancelledError:  # an Exception on Python < 3.8: the server stops
                raise
            except Exception as exc:  # noqa: BLE001 - a poll never takes the serving versions down
                LOG.info("model poll failed: %s: %s", type(exc).__name__, exc)

    def start_polling(self, seconds):
        self.poller = asyncio.ensure_future(self.poll(seconds))

    async def close(self):
        if self.poller is not None:
            self.poller.cancel()
        async with self.lock:
            for model in self.models.values():
                for version in model.versions.values():
                    if version.state == "AVAILABLE":
                        await self._unload(version, "the server stops")


def config_text(path):
    """The text of the models.config at `path` (None: no config, or unreadable right now)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def check_runtimes(specs, runtime_name):
    """Each served version folder that is an odrun export: its --runtime form and the runtime
    installed (exit 2 in a second, before the port is bound and the models load)."""
    for spec in specs:
        found = discover(spec.base_path)
        for number in spec.wanted(found):
            try:
                export_dir, meta, _, bare = locate(found[number], spec.base_path)
            except UserError:
                continue  # reported by the load with the version's own message (exit 2 at start)
            if not bare and is_classifier(meta):
                classifier_runtime(runtime_name)
            elif not bare:
                runtimes.choose(export_dir, seg_output.runtime_for(meta, runtime_name), meta)
