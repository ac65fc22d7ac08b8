"""The verb dispatcher both CLIs use: one module per verb, each defining `add_parser(subparsers)`
(registering its flags and `func`); heavy imports (TensorFlow, docker, ansible) stay inside the
verbs' functions so `--help` stays fast."""
import argparse
import importlib
import re
import sys
import textwrap

from odcore import failures
from odcore.errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError


class ExampleFormatter(argparse.HelpFormatter):
    """Prose is wrapped to the terminal as usual, but a description/epilog line indented by two or
    more spaces (an example command) is printed as written: a command broken mid-argument at 80
    columns no longer pastes. Blank lines separate paragraphs (argparse's default merges them)."""

    def _fill_text(self, text, width, indent):
        out = []
        for para in re.split(r"\n[ \t]*\n", text.strip("\n")):
            prose = []
            for line in para.splitlines() + [None]:
                if line is None or line.startswith("  "):
                    if prose:
                        out.append(textwrap.fill(" ".join(prose), width, initial_indent=indent,
                                                 subsequent_indent=indent))
                        prose = []
                    if line is not None:
                        out.append(indent + line.rstrip())
                else:
                    prose.append(line.strip())
            out.append("")
        return "\n".join(out).rstrip("\n")


class ExampleParser(argparse.ArgumentParser):
    """An ArgumentParser whose help keeps example lines unbroken (ExampleFormatter), nested verbs too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", ExampleFormatter)
        argparse.ArgumentParser.__init__(self, *args, **kwargs)


def build_parser(commands, prog, version, description, keep_examples=False):
    """An argparse parser with `--version` (`PROG VERSION`) and one sub-command per (verb, module).

    A verb module that cannot be imported is an error, not a silently missing verb.
    keep_examples: every verb's help is formatted by ExampleFormatter.
    """
    cls = ExampleParser if keep_examples else argparse.ArgumentParser
    parser = cls(prog=prog, description=description)
    parser.add_argument("--version", action="version", version="{} {}".format(prog, version))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=cls)
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
