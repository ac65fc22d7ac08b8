"""The verb dispatcher both CLIs use: one module per verb, each defining `add_parser(subparsers)`
(registering its flags and `func`); heavy imports (TensorFlow, docker, ansible) stay inside the
verbs' functions so `--help` stays fast."""
import argparse
import importlib
import sys

from odcore import failures
from odcore.errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError


def build_parser(commands, prog, version, description):
    """An argparse parser with `--version` (`PROG VERSION`) and one sub-command per (verb, module).

    A verb module that cannot be imported is an error, not a silently missing verb.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version="{} {}".format(prog, version))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _verb, module_name in commands:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def run(parser, argv):
    """Parse `argv`, call the verb's `func`; a UserError becomes its message and exit code."""
    try:
        args = parser.parse_args(argv)  # odcore.argtypes' range checks raise UserError here
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        rc = int(args.func(args) or 0)
        if rc:
            failures.failed(args, rc)
        return rc
    except UserError as exc:
        sys.stderr.write(exc.render() + "\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - an unexpected failure: explain it (odcore.failures)
        return failures.crash(locals().get("args"), exc, prog=parser.prog)
