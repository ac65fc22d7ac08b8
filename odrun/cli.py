"""`odrun` entry point: one verb per pipeline stage. Each stage lives in its own module,
which defines `add_parser(subparsers)` (registering its flags and `func`) and keeps heavy
imports (TensorFlow) inside its functions so `odrun --help` stays fast."""
import argparse
import importlib
import sys

from odrun import __version__
from odrun.errors import EXIT_INTERRUPTED, UserError

# verb -> module; the order is the order of the pipeline.
COMMANDS = [
    ("convert", "odrun.convert"),
    ("train", "odrun.train"),
    ("eval", "odrun.evaluate"),
    ("export", "odrun.export"),
    ("detect", "odrun.detect"),
    ("demo", "odrun.demo"),
]


def build_parser(commands=COMMANDS, prog="odrun",
                 description="TF Object Detection API pipeline: convert -> train -> eval -> export -> detect."):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version="{} {}".format(prog, __version__))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _verb, module_name in commands:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name != module_name:  # a real import error inside the module: show it
                raise
            continue  # stage not built yet
        module.add_parser(sub)
    return parser


def run(parser, argv):
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        sys.stderr.write(exc.render() + "\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED


def main(argv=None):
    sys.exit(run(build_parser(), argv))


if __name__ == "__main__":
    main()
