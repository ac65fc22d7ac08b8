"""`odrun` entry point: one verb per pipeline stage, each in its own module under odrun/verbs/
(argparse + printing; the work is the task's, see odrun.tasks and odcore.cli)."""
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
    sys.exit(run(build_parser(), argv))


if __name__ == "__main__":
    main()
