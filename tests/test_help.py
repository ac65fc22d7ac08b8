"""The help audit: every option of every verb of both CLIs has a sentence, and states its default.

An option with a default other than "off" (None/False) must say it in its help ("default ..." or
%(default)s), so a user never has to read the code to know what happens without it.
"""
import argparse

import pytest

from conftest import walk_parsers


def _parsers():
    from odrun.cli import build_parser as odrun_parser
    from provision.cli import build_parser as provision_parser
    return [odrun_parser(), provision_parser()]




def _all_actions():
    out = []
    for top in _parsers():
        for path, parser in walk_parsers(top, [top.prog]):
            for action in parser._actions:
                if isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                       argparse._SubParsersAction)):
                    continue
                out.append((" ".join(path), action))
    return out


def _has_default_to_state(action):
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
                           argparse._CountAction)):
        return False
    return action.default not in (None, False, argparse.SUPPRESS, [], ())


def test_every_option_has_help_and_its_default():
    missing_help, missing_default = [], []
    for where, action in _all_actions():
        name = "/".join(action.option_strings) or action.dest
        text = action.help or ""
        if not text.strip() or text == argparse.SUPPRESS:
            missing_help.append("{}: {}".format(where, name))
        elif _has_default_to_state(action) and "default" not in text.lower():
            missing_default.append("{}: {} (default {!r})".format(where, name, action.default))
    assert not missing_help, "options without help:\n" + "\n".join(missing_help)
    assert not missing_default, "options whose help does not state the default:\n" + "\n".join(missing_default)


def test_the_audit_covers_nested_verbs():
    wheres = {where for where, _ in _all_actions()}
    for expected in ("odrun convert", "odrun train", "odrun detect", "provision matrix recommend",
                     "provision doctor", "provision host", "provision image build", "provision run"):
        assert expected in wheres, expected


@pytest.mark.parametrize("prog", ["odrun", "provision"])
def test_the_audit_can_fail(prog):
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--no-help")
    parser.add_argument("--batch", type=int, default=8, help="images per call")
    actions = [a for a in parser._actions if a.option_strings and a.option_strings[0] != "-h"]
    assert not (actions[0].help or "").strip()
    assert _has_default_to_state(actions[1]) and "default" not in actions[1].help
