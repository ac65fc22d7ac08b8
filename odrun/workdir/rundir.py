"""A run directory (`odrun train --workdir RUN_DIR`): its layout and its identity, in one place.

Layout:
    RUN_DIR/pipeline.config           the config training used (written by train)
    RUN_DIR/checkpoint                TF's checkpoint-state text file (TF1 and TF2 write the same)
    RUN_DIR/ckpt-N.{index,data-*}     TF2 checkpoints;  RUN_DIR/model.ckpt-N.*  TF1 checkpoints
    RUN_DIR/run.json                  what made the run (identity) + settings a --resume keeps
    RUN_DIR/logs/                     library output (TensorFlow, absl) kept out of the terminal
    RUN_DIR/results.csv               per-step losses / eval metrics
    RUN_DIR/train/, RUN_DIR/eval/     TensorBoard events

Identity: run.json records the model (template name or config file), the OD API code path,
a hash of the config's `model { }` block (what the checkpoints' variables depend on) and a
hash of the label map. A later `odrun train` into the same RUN_DIR with a different model,
model block or label map is refused (exit 2) unless `--new-run` is given, which moves the old
run aside to RUN_DIR.old-<time> (nothing is deleted). Damaged state (run.json that is not JSON,
a non-UTF-8 `checkpoint` file, a truncated ckpt-*.index) is reported with the file and the fix.
"""
import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from odcore.errors import UserError
from odcore.fileio import sha256_file, write_json
from odcore.paths import check_output, check_writable_dir
from odrun import DATA_DIR
from odrun.ui.quiet import terminal  # the real stderr, also while library noise goes to logs/

CONFIG = "pipeline.config"
RUN_JSON = "run.json"
STATE = "checkpoint"
LOGS = "logs"
RESULTS = "results.csv"
BEST = "best"  # RUN_DIR/best/: the best evaluated checkpoint (`odrun train --eval-every`)
IDENTITY_KEYS = ("api", "model", "model_sha256", "label_map_sha256")
NEW_RUN_FLAG = "--new-run"
CHECKPOINT_ARCH = os.path.join(DATA_DIR, "checkpoint_arch.yaml")

# A TF checkpoint's .index is a table file (tensorflow/core/lib/io/format.h): its last 8 bytes
# are kTableMagicNumber 0xdb4775248b80fb57, little-endian, in a 48-byte footer.
INDEX_MAGIC = bytes.fromhex("57fb808b247547db")
INDEX_FOOTER = 48
# Temps a kill -9 leaves in a run directory: TF's sharded save writes `<prefix>_temp/` then merges
# (tensorflow/python/checkpoint/functional_saver.py, training/saver.py); file_io's atomic writes
# (the `checkpoint` state file, TF1's .meta/graph.pbtxt) use `<name>.tmp<uuid4 hex>`
# (tensorflow/python/lib/io/file_io.py); ours are `.<name>.XXXXXXXX.tmp` (odcore.fileio).
_TF_TEMP_DIR = re.compile(r"^(?:ckpt|model\.ckpt)-\d+_temp(?:_[0-9a-f]+)?$")
_TF_TEMP_FILE = re.compile(r"\.tmp[0-9a-f]{32}$")
_OUR_TEMP = re.compile(r"^\.(?:pipeline\.config|run\.json|train\.json|eval\.json|results\.csv|losses\.csv|checkpoint)\..+\.tmp$")
_STEP = re.compile(r"(?:^|[-_.])(?:ckpt|model\.ckpt)-(\d+)$")
_CKPT_INDEX = re.compile(r"^(?:ckpt|model\.ckpt)-(\d+)\.index$")


def step_of(prefix):
    """Step number in a checkpoint prefix (`.../ckpt-12`, `.../model.ckpt-12`), or None."""
    if not prefix:
        return None
    m = _STEP.search(os.path.basename(str(prefix)))
    return int(m.group(1)) if m else None


def index_problem(index_path):
    """Why a checkpoint .index cannot be used (a message), or None if it looks complete."""
    try:
        size = os.path.getsize(index_path)
        with open(index_path, "rb") as f:
            if size < INDEX_FOOTER:
                return "is truncated ({} bytes; a checkpoint index ends with a {}-byte footer)".format(
                    size, INDEX_FOOTER)
            f.seek(size - len(INDEX_MAGIC))
            tail = f.read(len(INDEX_MAGIC))
    except OSError as exc:
        return "cannot be read ({})".format(exc.strerror or exc)
    if tail != INDEX_MAGIC:
        return "is truncated or damaged (it does not end with TensorFlow's table magic number)"
    return None


def _inside(name):
    """A read-only RunDir attribute: the path of NAME inside the run directory."""
    return property(lambda self: os.path.join(self.path, name))


class RunDir(object):
    """One run directory; cheap to create (reads nothing until asked)."""

    def __init__(self, path):
        self.path = str(path)

    # ----------------------------------------------------------- layout
    config_path = _inside(CONFIG)
    run_json_path = _inside(RUN_JSON)
    state_path = _inside(STATE)
    logs_dir = _inside(LOGS)
    results_csv = _inside(RESULTS)

    def exists(self):
        return os.path.isdir(self.path)

    def has_state(self):
        """Anything a previous training left (config, run.json, checkpoints)."""
        return any(os.path.exists(p) for p in (self.config_path, self.run_json_path, self.state_path)) \
            or bool(self.checkpoints())

    # ----------------------------------------------------------- run.json
    def read_json(self):
        """run.json as a dict ({} if absent); a damaged one is a UserError naming it."""
        path = self.run_json_path
        if not os.path.exists(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError("run.json is damaged ({}: {})".format(type(exc).__name__, _short(exc)),
                            where=path, fix="delete {} (it is rewritten by the next `odrun train`), or start "
                                            "a new run with {}".format(path, NEW_RUN_FLAG))
        if not isinstance(data, dict):
            raise UserError("run.json must hold a JSON object, not {}".format(type(data).__name__), where=path,
                            fix="delete {} (it is rewritten by the next `odrun train`)".format(path))
        return data

    def write_json(self, data):
        write_json(self.run_json_path, data)

    def identity(self):
        """The recorded identity (api/model/hashes), or None for a run without one."""
        ident = self.read_json().get("identity")
        return ident if isinstance(ident, dict) else None

    # ----------------------------------------------------------- checkpoints
    def checkpoints(self):
        """[(step, prefix)] of the checkpoint files on disk (TF2 ckpt-N, TF1 model.ckpt-N), by step."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return []
        found = []
        for name in names:
            m = _CKPT_INDEX.match(name)
            if m:
                found.append((int(m.group(1)), os.path.join(self.path, name[:-len(".index")])))
        return sorted(found)

    def newest_checkpoint(self, check=True):
        """Prefix named in RUN_DIR/checkpoint if its .index exists, else None.

        check=True: a non-UTF-8 state file or a truncated .index is a UserError (exit 2).
        """
        path = self.state_path
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError:
            if not check:
                return None
            raise UserError("the checkpoint-state file is not UTF-8 text (damaged)", where=path,
                            fix=self._state_fix())
        except OSError as exc:
            raise UserError("cannot read the checkpoint-state file: {}".format(exc.strerror or exc), where=path,
                            fix="check its permissions")
        m = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', text, re.M)
        if not m:
            if check and text.strip():
                raise UserError("the checkpoint-state file names no model_checkpoint_path (damaged)",
                                where=path, fix=self._state_fix())
            return None
        prefix = m.group(1) if os.path.isabs(m.group(1)) else os.path.join(self.path, m.group(1))
        if not os.path.exists(prefix + ".index"):
            return None
        if check:
            problem = index_problem(prefix + ".index")
            if problem:
                raise UserError("checkpoint index {}".format(problem), where=prefix + ".index",
                                fix="remove the damaged checkpoint ({}.*) and edit {} to name an older one, "
                                    "or start again with {}".format(os.path.basename(prefix), path, NEW_RUN_FLAG))
        return prefix

    def clean_stale(self):
        """Remove the temps an interrupted (kill -9) training left (see _TF_TEMP_* / _OUR_TEMP);
        called before a run starts, when no other process of ours writes here. -> removed paths."""
        import shutil
        removed = []
        try:
            names = os.listdir(self.path)
        except OSError:
            return removed
        for name in names:
            path = os.path.join(self.path, name)
            if _TF_TEMP_DIR.match(name) and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif (_TF_TEMP_FILE.search(name) or _OUR_TEMP.match(name)) and os.path.isfile(path):
                os.unlink(path)
            else:
                continue
            removed.append(path)
        return removed

    def _state_fix(self):
        ckpts = self.checkpoints()
        if ckpts:
            return "rewrite it as one line: model_checkpoint_path: \"{}\" (the newest checkpoint on disk)".format(
                os.path.basename(ckpts[-1][1]))
        return "delete it (there is no checkpoint to resume from)"

    # ----------------------------------------------------------- identity checks
    def check_checkpoints_fit(self, config):
        """Checkpoints but neither run.json's identity nor pipeline.config: the checkpoints are the
        only evidence of the model that made them. Read the newest one's variable names and refuse
        (exit 2) a model of another meta-architecture, instead of "resuming" it."""
        if self.identity() or os.path.exists(self.config_path) or not self.checkpoints():
            return
        prefix = self.newest_checkpoint() or self.checkpoints()[-1][1]
        found = checkpoint_arch(prefix)
        from odrun.tasks.detect.config import pipeline as pc
        wanted = pc.arch(config)
        if found is None or found == wanted:
            return
        raise UserError(
            "{} holds checkpoints of a {} model ({} names its variables so), but this training builds a {} "
            "model; its variables cannot be restored from them; nothing was written".format(
                self.path, found, os.path.basename(prefix), wanted),
            where=prefix, fix="use another --workdir for the new training, or pass {} to move the old "
                              "checkpoints aside to {}.old-<time>".format(NEW_RUN_FLAG, self.path))

    def check_same(self, new, new_run=False):
        """Refuse training `new` (an identity dict) into a run made by something else."""
        old = self.identity()
        if old is None:
            old = self._legacy_identity(new)
        if not old:
            return
        diffs = [k for k in IDENTITY_KEYS if k in old and k in new and old[k] != new[k] and
                 old[k] is not None and new[k] is not None]
        if "model" in diffs and any(str(x.get("model")).startswith("config:") for x in (old, new)):
            diffs.remove("model")  # a --config run: the model block's hash is what counts
        if not diffs or new_run:
            return
        what = []
        for k in diffs:
            if k.endswith("_sha256"):
                what.append("{} differs (sha256 {}… vs {}…)".format(k[:-len("_sha256")].replace("_", " "),
                                                                     old[k][:12], new[k][:12]))
            else:
                what.append("{} {!r} vs {!r}".format(k, old[k], new[k]))
        raise UserError(
            "this run directory was made by a different training ({}); continuing would mix checkpoints "
            "and overwrite its pipeline.config".format("; ".join(what)),
            where=self.path,
            fix="use another --workdir for the new training, or pass {} to move the old run aside to "
                "{}.old-<time> and start fresh".format(NEW_RUN_FLAG, self.path))

    def _legacy_identity(self, new):
        """A run from before run.json had an identity: compare with its pipeline.config."""
        if not os.path.exists(self.config_path) or not self.checkpoints():
            return None
        try:
            from odrun.tasks.detect.config import pipeline as pc
            config = pc.load(self.config_path)
        except UserError:
            return None
        return {"model_sha256": model_hash(config)}

    def move_aside(self):
        """`--new-run`: rename the old run to RUN_DIR.old-<time> (one atomic rename); returns it."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = "{}.old-{}".format(self.path.rstrip(os.sep), stamp)
        n = 1
        while os.path.exists(target):
            n += 1
            target = "{}.old-{}-{}".format(self.path.rstrip(os.sep), stamp, n)
        os.replace(self.path, target)
        return target


CHOICES = ("newest", "best")  # `--checkpoint` of eval/export, besides a step number


def add_checkpoint_flags(p):
    """`--workdir RUN_DIR --checkpoint newest|best|STEP`: what `odrun eval` and `odrun export` read."""
    p.add_argument("--workdir", metavar="RUN_DIR", required=True, help="the run directory of `odrun train`")
    p.add_argument("--checkpoint", default="newest", metavar="newest|best|STEP",
                   help="which checkpoint: newest (default), best (RUN_DIR/best/, kept by `odrun train "
                        "--eval-every`) or a step number (one of RUN_DIR/ckpt-STEP)")


def resolve_checkpoint(run_dir, which=None):
    """`--checkpoint newest|best|STEP` -> the checkpoint prefix (a UserError naming what exists)."""
    rd = RunDir(run_dir)
    which = str(which or "newest").strip().lower()
    fix_train = "train first: odrun train --workdir " + rd.path
    if which == "newest":
        prefix = rd.newest_checkpoint()
        if not prefix:
            raise UserError("no checkpoint yet", where=rd.path, fix=fix_train)
        return prefix
    if which == "best":
        prefix = RunDir(os.path.join(rd.path, BEST)).newest_checkpoint()
        if not prefix:
            raise UserError("no best checkpoint: {}/ is written by `odrun train --eval-every N`".format(BEST),
                            where="--checkpoint best",
                            fix="train with --eval-every N (it keeps the best evaluated checkpoint), "
                                "or pass --checkpoint newest")
        return prefix
    if not which.isdigit():
        raise UserError("unknown checkpoint {!r}".format(which), where="--checkpoint",
                        fix="use newest, best or a step number")
    found = dict(rd.checkpoints())
    if int(which) not in found:
        raise UserError("no checkpoint at step {}".format(int(which)), where=rd.path,
                        fix="use one of the steps on disk: {}, or newest/best".format(
                            ", ".join(str(s) for s in sorted(found)) or "(none: " + fix_train + ")"))
    problem = index_problem(found[int(which)] + ".index")
    if problem:
        raise UserError("checkpoint index {}".format(problem), where=found[int(which)] + ".index",
                        fix="use another --checkpoint")
    return found[int(which)]


class checkpoint_dir(object):
    """`with checkpoint_dir(prefix) as d:` a temp directory whose `checkpoint` state file names
    `prefix` (absolute), for library calls that take a directory and use its latest checkpoint."""

    def __init__(self, prefix):
        self.prefix = os.path.abspath(prefix)
        self.path = None

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="odrun-ckpt-")
        with open(os.path.join(self.path, STATE), "w", encoding="utf-8") as f:
            f.write('model_checkpoint_path: "{0}"\nall_model_checkpoint_paths: "{0}"\n'.format(self.prefix))
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


def newest_checkpoint(run_dir):
    """Prefix named in RUN_DIR/checkpoint (TF1 and TF2 write the same text file), or None;
    a damaged state file or a truncated .index is a UserError."""
    return RunDir(run_dir).newest_checkpoint()


def guard_workdir(args):
    """The output guard (odcore.paths) for `odrun train --workdir`: not, not containing and not
    inside --data, --config or a local --pretrained; writable. Called first thing by train."""
    pretrained = getattr(args, "pretrained", None)
    check_output(args.workdir, [("--data folder", getattr(args, "data", None)),
                                ("--config file", getattr(args, "config", None)),
                                ("--pretrained checkpoint", pretrained if pretrained and os.path.exists(str(pretrained))
                                 else None)], flag="--workdir")
    check_writable_dir(args.workdir, flag="--workdir")


def prepare_train(args, api, config, model=None):
    """Everything `odrun train` checks about RUN_DIR before it writes there (in order):

    1. the run directory is not, does not contain and is not inside --data/--config;
    2. run.json and the checkpoint state are readable (damaged ones: exit 2, nothing written);
    3. the run was made by the same api/model/model block/label map, or --new-run moves it aside;
    4. --resume without a checkpoint says it starts from step 0.
    `model`: the run's model as its identity names it (odrun.tasks.detect.train.identity_model;
    default: "config:FILE" or --model); on --resume the one run.json recorded counts.
    Returns (newest checkpoint prefix or None, the run.json dict to write).
    """
    rd = RunDir(args.workdir)
    guard_workdir(args)
    settings = rd.read_json()
    new_run = bool(getattr(args, "new_run", False))
    if args.resume:
        model = (settings.get("identity") or {}).get("model") or settings.get("model")
    elif model is None:
        model = "config:" + os.path.basename(args.config) if args.config else args.model
    ident = identity(api, model, config)
    if rd.exists() and rd.has_state():
        if new_run and not args.resume:
            moved = rd.move_aside()
            terminal().write("{}: the previous run was moved to {}\n".format(NEW_RUN_FLAG, moved))
            settings = {}
        else:
            rd.newest_checkpoint()  # damaged state is an error before anything is written
            rd.check_same(ident)
            rd.check_checkpoints_fit(config)  # no identity, no config: the variables decide
    rd.clean_stale()  # what a killed run left: <ckpt>_temp/, checkpoint.tmp<hex>, .run.json.*.tmp
    previous = rd.newest_checkpoint() if rd.exists() else None
    if args.resume and previous is None:
        terminal().write("--resume: no checkpoint in {} yet, so training starts from step 0\n".format(rd.path))
    settings = dict(settings, identity=ident)
    return previous, settings


def checkpoint_arch(prefix):
    """The meta-architecture that wrote checkpoint `prefix` (odrun/data/checkpoint_arch.yaml), or None."""
    import yaml
    import tensorflow as tf
    with open(CHECKPOINT_ARCH, encoding="utf-8") as f:
        signatures = yaml.safe_load(f)
    try:
        names = [name for name, _shape in tf.train.list_variables(prefix)]
    except (tf.errors.OpError, ValueError) as exc:
        raise UserError("cannot read the checkpoint's variables ({})".format(_short(exc)), where=prefix,
                        fix="remove the damaged checkpoint files, or start a new run with " + NEW_RUN_FLAG)
    for arch, prefixes in signatures.items():
        if any(n.startswith(tuple(prefixes)) for n in names):
            return arch
    return None


def model_hash(config):
    """sha256 of the config's `model { }` block as protobuf text (what checkpoints depend on)."""
    from google.protobuf import text_format
    return hashlib.sha256(text_format.MessageToString(config.model).encode("utf-8")).hexdigest()


def identity(api, model, config, label_map_path=None):
    """The identity dict a run records: api, model, model-block hash, label map hash."""
    lm = label_map_path or config.train_input_reader.label_map_path
    return {"api": api, "model": model, "model_sha256": model_hash(config),
            "label_map_sha256": sha256_file(lm) if lm and os.path.isfile(lm) else None}


def _short(exc, limit=120):
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"
