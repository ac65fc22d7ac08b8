"""`odrun` entry point: one verb per pipeline stage, each in its own module (see odcore.cli)."""
import sys

from odcore.cli import build_parser as _build, run
from odrun import __version__

# verb -> module; the order is the order of the pipeline.
COMMANDS = [
    ("convert", "odrun.convert"),
    ("inspect", "odrun.verbs.inspect"),  # check records from any tool
    ("train", "odrun.tasks.detect.train"),
    ("eval", "odrun.tasks.detect.evaluate"),
    ("export", "odrun.tasks.detect.export"),
    ("detect", "odrun.tasks.detect.detect"),
    ("predict", "odrun.verbs.predict"),  # classifiers (odrun.tasks.classify)
    ("serve", "odrun.serve"),
    ("demo", "odrun.tasks.detect.demo"),
    ("cache", "odrun.verbs.cache"),  # not a stage: list/clear the caches
]


def build_parser(commands=COMMANDS):
    from odrun.ui import quiet
    parser = _build(commands, prog="odrun", version=__version__,
                    description="TF Object Detection API pipeline: convert -> train -> eval -> export -> detect.")
    quiet.install(parser)  # -v on every verb; library noise -> RUN/logs/VERB.log
    return parser


def main(argv=None):
    sys.exit(run(build_parser(), argv))


if __name__ == "__main__":
    main()
