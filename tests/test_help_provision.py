"""Issue #25: every example in every `provision ... --help` is an unbroken, pasteable command at
80 columns; `image --help` lists the flavours, `matrix --help` names validate, `run --user` says what
root gets."""
import re
import shlex

import pytest

from conftest import help_examples, walk_parsers

from provision.cli import build_parser

EXAMPLE = re.compile(r"^\s*(?:example: |e\.g\. |\$ )?(provision \S.*)$")




def _helps(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse sizes its help from the terminal (shutil)
    top = build_parser()
    return [(" ".join(path), parser, parser.format_help()) for path, parser in walk_parsers(top, ["provision"])]


def _commands(text):
    return help_examples(text, EXAMPLE)


def test_every_example_is_an_unbroken_command_at_80_columns(monkeypatch):
    top = build_parser()
    seen = 0
    for where, parser, text in _helps(monkeypatch):
        rendered = [line.strip() for line in text.splitlines()]
        source = "\n".join(filter(None, [parser.description, parser.epilog]))
        for line in source.splitlines():  # what the author wrote is shown as one line
            if EXAMPLE.match(line):
                assert line.strip() in rendered, "{}: example broken at 80 columns: {!r}".format(where, line)
        for phys, command in _commands(text):
            seen += 1
            assert all(len(p) <= 80 for p in phys), (where, phys)
            assert any(p.strip() in line for p in phys for line in source.splitlines()), (where, phys)
            words = shlex.split(command, comments=True)
            try:
                top.parse_args(words[1:])  # a complete command line, as argparse reads it
            except SystemExit:
                pytest.fail("{}: example does not parse: {}".format(where, command))
    assert seen >= 20


def test_run_help_examples_paste(monkeypatch):
    text = dict((w, t) for w, _, t in _helps(monkeypatch))["provision run"]
    assert "  provision run --data ./dataset --runs ./runs \\\n      -- convert /data/annotations --out /runs/data" \
        in text


def test_image_help_lists_the_flavours_from_the_data_file(monkeypatch):
    from provision import compat
    from provision.image import flavors

    text = dict((w, t) for w, _, t in _helps(monkeypatch))["provision image"]
    for img in compat.load().images():
        if img["flavor"] in flavors():
            line = [ln for ln in text.splitlines() if ln.startswith("  " + img["flavor"] + " ")]
            assert line and img["image"] in line[0] and "TF " + img["tf"] in line[0], img["flavor"]
    assert set(flavors()) == {"cpu", "tf1.15-gpu", "tf1.15-ngc", "tf2-gpu"}


def test_matrix_help_names_every_action(monkeypatch):
    text = dict((w, t) for w, _, t in _helps(monkeypatch))["provision matrix"]
    first = text.split("\n\n")[1]
    for action in ("show", "check", "validate", "recommend"):
        assert action in first, action


def test_run_user_help_says_what_root_gets(monkeypatch):
    from provision.run_guard import IMAGE_USER

    text = " ".join(dict((w, t) for w, _, t in _helps(monkeypatch))["provision run"].split())
    assert "as root without sudo the images' own user {}".format(IMAGE_USER) in text
