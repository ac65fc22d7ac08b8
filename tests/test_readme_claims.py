"""Issue 25: the README matches what the commands do. Every command line of its code blocks parses
with the real parsers (and the task takes its flags), every flag it names exists, and the numbers
it states as defaults (demo steps and images, picture sizes, --checkpoint, the progress interval,
the image flavours, the templates) are the data files' values. (The measured numbers themselves,
timings and mAPs, come from the runs named beside them: docs/measured-here.md.)"""
import argparse
import contextlib
import io
import re
import shlex

import pytest
import yaml

from conftest import ROOT, walk_parsers

from odrun import option_defaults, tasks
from odrun.cli import build_parser as odrun_parser
from odrun.ui import progress
from provision.cli import build_parser as provision_parser

README = (ROOT / "README.md").read_text(encoding="utf-8")
# flags of other programs the README quotes (the COCO tutorial's script)
FOREIGN = {"--include_masks"}


def _parsers():
    return {"odrun": odrun_parser(), "provision": provision_parser()}


def _commands():
    """The README's command lines: indented code lines starting with odrun/provision, the comment
    cut off, `[optional parts]` kept, `a && b` split; lines with `...` (elided arguments) left out."""
    out = []
    for line in README.splitlines():
        m = re.match(r"^ {4}((odrun|provision) .*)$", line)
        if not m or "..." in m.group(1):
            continue
        command = re.sub(r"\[([^\]]*)\]", r"\1", m.group(1).split("  #")[0].strip())
        out.extend(part.strip() for part in command.split("&&"))
    return out


def _parse(parser, words):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(words)
    except SystemExit:
        pytest.fail("{}: {}".format(" ".join(words), err.getvalue().strip()[-500:]), pytrace=False)


@pytest.mark.parametrize("command", _commands())
def test_every_readme_command_parses(command):
    words = shlex.split(command)
    parsers = _parsers()
    args = _parse(parsers[words[0]], words[1:])
    odrun_words = words[1:] if words[0] == "odrun" else (words[words.index("--") + 1:] if "--" in words else [])
    if words[0] == "provision" and odrun_words:  # provision run/submit ... -- ODRUN ARGS
        args = _parse(parsers["odrun"], odrun_words)
    verb = odrun_words[0] if odrun_words else None
    if verb in ("convert", "train", "demo"):  # verbs with --task: the task takes each flag given
        tasks.stage_for(verb, args)


def test_there_are_commands_to_check():
    assert len(_commands()) > 30


def test_every_flag_the_readme_names_exists():
    known = set(FOREIGN)
    for name, top in _parsers().items():
        for _path, p in walk_parsers(top, [name]):
            for action in p._actions:
                known.update(action.option_strings)
    spans = re.findall(r"`([^`]+)`", README) + [line for line in README.splitlines() if line.startswith("    ")]
    named = {flag for span in spans for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", span)}
    assert len(named) > 40
    assert sorted(named - known) == []


def _squash(text):
    return " ".join(text.split())


def test_demo_numbers_are_the_defaults():
    text = _squash(README)
    detect, segment = option_defaults("demo", "detect"), option_defaults("demo", "segment")
    demo = yaml.safe_load((ROOT / "odrun" / "data" / "demo.yaml").read_text())
    assert "SSD MobileNet V2 ({} px) from scratch for {} steps on {} generated pictures".format(
        demo["detect"]["synth"]["width"], detect["steps"], detect["images"]) in text
    assert "`odrun demo --task segment`: {} steps from scratch on {} generated {} px pictures".format(
        segment["steps"], segment["images"], demo["segment"]["synth"]["width"]) in text
    assert "`odrun demo --task segment` runs {} steps, the box demo {}".format(segment["steps"], detect["steps"]) in text
    assert "(template `{}`".format(demo["segment"]["model"]) in text


def test_stated_defaults_are_the_parsers():
    text = _squash(README)
    verbs = {name: p for name, p in [(a, b) for act in odrun_parser()._actions
                                     if isinstance(act, argparse._SubParsersAction) for a, b in act.choices.items()]}
    for verb in ("eval", "export"):
        assert verbs[verb].get_default("checkpoint") == "newest"
    assert "`--checkpoint newest|best|STEP` (default newest" in text
    assert "`${}` s (default {:g})".format(progress.ENV_EVERY, float(progress.DEFAULT_EVERY)) in text


def test_named_image_flavours_and_templates_exist():
    flavours = re.search(r"# images/: ([\w.,\- ]+)", README).group(1).split(", ")
    assert sorted(flavours) == sorted(p.name for p in (ROOT / "images").iterdir() if (p / "Dockerfile").exists())
    templates = {p.stem for p in (ROOT / "odrun" / "data" / "templates").glob("*/*.config")}
    for name in re.findall(r"--model ([a-z]\w+)(?![\w/])", README) + ["mask_rcnn_resnet50_small", "mask_rcnn_inception_v2_coco"]:
        assert name in templates, name
    zoo = yaml.safe_load((ROOT / "odrun" / "data" / "zoo.yaml").read_text())
    for name in re.findall(r"--pretrained ([a-z]\w+)(?![\w/])", README):
        assert any(name in section for section in zoo.values() if isinstance(section, dict)), name


def test_augment_names_and_serve_log_as_the_help_says():
    augment = yaml.safe_load((ROOT / "odrun" / "data" / "augment.yaml").read_text())
    names = re.search(r"`--augment ([\w,]+),\.\.\.`", README).group(1).split(",")
    assert all(name in augment for name in names), names
    verbs = [act for act in odrun_parser()._actions if isinstance(act, argparse._SubParsersAction)][0].choices
    serve_help = _squash(verbs["serve"].format_help())
    assert "--log FILE" in serve_help and "/tmp/odrun-serve-*.log" in serve_help
    assert "serve: a new temp file it names at start, or `--log FILE`" in _squash(README)
