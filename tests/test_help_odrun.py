"""Issue #21 (defaults as data) and #25 (odrun --help): every option of every odrun verb has its
commented line in odrun/data/defaults.yaml and the parser's default is the file's value; every example
in `odrun ... --help` is an unbroken, pasteable command at 80 columns."""
import argparse
import re
import shlex

import pytest

from conftest import ROOT, help_examples, walk_parsers

from odrun import DEFAULTS_FILE, option_defaults
from odrun.cli import build_parser

EXAMPLE = re.compile(r"^\s*(odrun \S.*)$")
LINE = re.compile(r"^  (\w+): .*  # \((int|float|str|bool|list)\) \S")


def _verbs():
    top = build_parser()
    sub = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)][0]
    return top, sub.choices


def test_every_option_has_a_typed_line_and_the_parser_default_is_the_files():
    with open(DEFAULTS_FILE, encoding="utf-8") as f:
        text = f.read()
    top, verbs = _verbs()
    missing, differ = [], []
    for verb, parser in verbs.items():
        section = text.split("\n" + verb + ":\n", 1)[1].split("\n\n", 1)[0]
        typed = {m.group(1) for m in map(LINE.match, section.splitlines()) if m}
        values = option_defaults(verb)
        for path, p in walk_parsers(parser, ["odrun", verb]):
            for action in p._actions:
                if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.dest == "verbose":
                    continue
                if action.dest not in typed:
                    missing.append("{}: {}".format(" ".join(path), action.dest))
                elif p.get_default(action.dest) != values[action.dest]:
                    differ.append("{}: {} {!r} != {!r}".format(" ".join(path), action.dest,
                                                               p.get_default(action.dest), values[action.dest]))
    assert not missing, "options without a typed line in defaults.yaml:\n" + "\n".join(missing)
    assert not differ, "parser defaults that are not the file's:\n" + "\n".join(differ)


def test_per_task_defaults_reach_the_help_and_the_stage(monkeypatch):
    from odrun import tasks

    monkeypatch.setenv("COLUMNS", "80")
    top, verbs = _verbs()
    text = " ".join(verbs["demo"].format_help().split())
    assert "training steps (default: detect 300, classify 300, segment 700)" in text
    for task, steps in (("segment", 700), ("detect", 300), ("classify", 300)):
        args = top.parse_args(["demo", "--task", task])
        tasks.stage_for("demo", args)
        assert args.steps == steps == option_defaults("demo", task)["steps"]
    args = top.parse_args(["demo", "--task", "segment", "--steps", "7"])
    tasks.stage_for("demo", args)
    assert args.steps == 7
    args = top.parse_args(["convert", "x", "--out", "y", "--task", "classify"])
    tasks.stage_for("convert", args)
    assert (args.shards, args.seed) == (5, 0)


def test_train_help_shows_defaults_and_lists_models_and_zoo_names(monkeypatch):
    import os

    from odrun.tasks.detect import pretrained

    monkeypatch.setenv("COLUMNS", "80")
    _top, verbs = _verbs()
    text = " ".join(verbs["train"].format_help().split())
    for flag in ("--batch BATCH", "--image-size IMAGE_SIZE", "--gpus N"):
        assert "default" in text.split(flag, 2)[2][:200], flag
    for api in ("tf1", "tf2"):
        for f in os.listdir(os.path.join(ROOT, "odrun", "data", "templates", api)):
            assert f[:-len(".config")] in text, f
        for name in pretrained.zoo(api):
            assert name in text, name


def test_cache_help_keeps_its_usage_lines(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _top, verbs = _verbs()
    lines = verbs["cache"].format_help().splitlines()
    assert any(ln.startswith("  odrun cache list   ") for ln in lines)  # not run into the prose
    assert any(ln.startswith("  odrun cache clear zoo   ") for ln in lines)


def _commands(text):
    return help_examples(text, EXAMPLE)


def test_every_odrun_example_is_an_unbroken_command_at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    top = build_parser()
    seen = []
    for path, parser in walk_parsers(top, ["odrun"]):
        for phys, command in _commands(parser.format_help()):
            seen.append(command)
            assert all(len(p) <= 80 for p in phys), (path, phys)
            words = shlex.split(command, comments=True)
            try:
                top.parse_args(words[1:])
            except SystemExit:
                pytest.fail("{}: example does not parse: {}".format(" ".join(path), command))
    joined = "\n".join(seen)
    assert "--set train_config.optimizer.momentum_optimizer.momentum_optimizer_value=0.8" in joined
    assert "odrun cache clear" in joined


def test_predict_prints_one_unbroken_line_per_image(monkeypatch, capsys):
    """#25: `odrun predict` printed a 10-line table per image with its path broken mid-word at 80
    columns. The summary has predict()'s shape (tests/test_classify.py checks predict itself)."""
    from odrun.tasks.classify import predict

    monkeypatch.setenv("COLUMNS", "80")
    files = ["/data/some/rather/long/folder/name/for/test/images/class_{}/image_{:05d}.jpg".format(c, i)
             for c, i in (("cat", 1), ("dog", 2))]
    summary = {"predictions": [{"file": f, "top_k": [{"class": "cat", "score": 0.9}, {"class": "dog", "score": 0.1}]}
                               for f in files], "images": 2, "out_dir": "predictions", "contact_sheet": None}
    predict.print_tables(summary)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f + "  cat 0.9000  dog 0.1000" for f in files]
    assert len(lines) == 3 and lines[2] == "2 images -> predictions"
