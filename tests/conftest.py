"""Shared test plumbing.

`require(ok, why)`: a test that needs TensorFlow, the Docker engine, debootstrap or Ansible
skips on a developer machine without them, but FAILS under CI=true (a skip there is a failure).
tests/suite_plugin.py: the CI rules (nothing skipped or deselected) and the xdist queue order;
tests/_shared.py: the trained runs/exports shared by several modules (session fixtures).
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["suite_plugin", "_shared"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # as suite_plugin.IN_CI (imported there
# by pytest_plugins; an import here too would keep pytest from rewriting its asserts)
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def require(ok, why):
    if ok:
        return
    if IN_CI:
        pytest.fail("CI=true and a required part is missing: " + why, pytrace=False)
    pytest.skip(why)


def have_module(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def sigint_default():
    """Popen preexec_fn for tests that press Ctrl-C: a job started in the background by a
    non-interactive shell (`cmd &`, nohup) inherits SIGINT *ignored*, and so would the command
    under test; a user at a terminal has it at its default."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bin_path(name):
    """A console script of this venv (or PATH)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def tree(folder):
    """{relative path: sha256} of every file under folder (symlinks not followed): a before/after
    snapshot for "nothing was touched" assertions."""
    import hashlib
    out = {}
    for root, _dirs, files in os.walk(str(folder)):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, str(folder))] = hashlib.sha256(fh.read()).hexdigest()
    return out


def walk_parsers(parser, path):
    """(path of verb names, parser) for a parser and every sub-command below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk_parsers(sub, path + [name])


def help_examples(text, pattern):
    """(physical lines, command) for each example line of a rendered --help (usage excluded):
    PATTERN matches an example's first line, group 1 the command; a trailing \\ continues it."""
    lines = text.split("\n\n", 1)[1].splitlines() if "\n\n" in text else []
    out, i = [], 0
    while i < len(lines):
        m = pattern.match(lines[i])
        if m:
            phys = [lines[i]]
            while phys[-1].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                phys.append(lines[i])
            out.append((phys, m.group(1).strip() if len(phys) == 1 else
                        " ".join([m.group(1).rstrip(" \\")] + [p.strip().rstrip(" \\") for p in phys[1:]])))
        i += 1
    return out


def run_cli(prog, *args, check=None, timeout=600, env=None, cwd=None):
    """Run `provision`/`odrun` as a user would, returning CompletedProcess (text)."""
    exe = bin_path(prog)
    assert exe, prog + " console script not installed (pip install -e .)"
    proc = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)
    if check is not None:
        assert proc.returncode == check, "exit {} != {}\nstdout:\n{}\nstderr:\n{}".format(
            proc.returncode, check, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def tf_required():
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
