"""`odrun` entry point: one verb per pipeline stage, each in its own module under odrun/verbs/
(argparse + printing; the work is the task's, see odrun.tasks and odcore.cli)."""
import atexit
import os
import sys

from odcore.cli import build_parser as _build, run
from odrun import __version__
from odrun.ui import quiet

# verb -> module; the order is the order of the pipeline.
COMMANDS = [
    ("convert", "odrun.verbs.convert"),
    ("inspect", "odrun.verbs.inspect"),  # check records from any tool
    ("train", "odrun.verbs.train"),
    ("eval", "odrun.verbs.evaluate"),
    ("export", "odrun.verbs.export"),
    ("detect", "odrun.verbs.detect"),
    ("predict", "odrun.verbs.predict"),  # classifiers (odrun.tasks.classify)
    ("serve", "odrun.verbs.serve"),
    ("demo", "odrun.verbs.demo"),
    ("cache", "odrun.verbs.cache"),  # not a stage: list/clear the caches
]


def build_parser(commands=COMMANDS):
    parser = _build(commands, prog="odrun", version=__version__,
                    description="TF Object Detection API pipeline: convert -> train -> eval -> export -> detect.",
                    keep_examples=True)  # example lines stay unbroken at 80 columns (odcore.cli)
    quiet.install(parser)  # -v on every verb; library noise -> RUN/logs/VERB.log
    return parser


def main(argv=None):
    leave(run(build_parser(), argv))


def leave(rc):
    """Exit with `rc`. After a verb that imported TensorFlow the interpreter's teardown (its graphs,
    eager context and thread pools destroyed one by one) took 3-9 s after the last line (the
    segment demo's summary): run the atexit handlers, flush, and leave at once. Every file of ours
    is closed by then, checkpoints are written synchronously and summary writers are flushed."""
    if "tensorflow" not in sys.modules:
        sys.exit(rc)
    atexit._run_exitfuncs()  # logging.shutdown, weakref.finalize (temp dirs), multiprocessing
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc if isinstance(rc, int) else (0 if rc is None else 1))  # sys.exit's rules


if __name__ == "__main__":
    main()
