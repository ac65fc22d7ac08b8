"""`provision` entry point. Each command family lives in its own module defining
`add_parser(subparsers)`; heavy imports (docker, ansible_runner, pynvml) stay inside functions."""
import sys

from odcore.cli import build_parser as _build, run
from provision import __version__

COMMANDS = [
    ("matrix", "provision.matrix"),
    ("doctor", "provision.doctor"),
    ("explain", "provision.explain"),
    ("host", "provision.host"),
    ("cluster", "provision.cluster"),
    ("image", "provision.image"),
    ("run", "provision.run"),
    ("submit", "provision.submit"),
]


def build_parser():
    return _build(COMMANDS, prog="provision", version=__version__,
                  description="Set up and diagnose GPU hosts for the TF Object Detection API.",
                  keep_examples=True)  # example lines in the verbs' help stay unbroken at 80 columns


def main(argv=None):
    sys.exit(run(build_parser(), argv))


if __name__ == "__main__":
    main()
