"""Explained failures (issue #12): a verb that raises, or fails with the OD API's error text in
its log, gets the knowledge base's cause and fix printed under the error; the traceback goes to
a log file (stderr with -v)."""
import argparse
import os
import re

from odcore import cli, explain, failures

OOM = ("tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with "
       "shape[32,256,80,80] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc")


def _parser(func, verbose=False):
    parser = argparse.ArgumentParser(prog="odrun")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("train")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--workdir")
    p.set_defaults(func=func)
    return parser


def test_crash_is_explained_and_traceback_logged(capsys):
    def boom(args):
        raise RuntimeError(OOM)

    rc = cli.run(_parser(boom), ["train"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: RuntimeError: tensorflow.python.framework.errors_impl.ResourceExhaustedError")
    assert "likely cause:" in err and "[oom]" in err and "batch_size" in err
    assert "Traceback" not in err
    path = re.search(r"traceback: (\S+)", err).group(1)
    assert "RuntimeError" in open(path).read()
    os.unlink(path)

    rc = cli.run(_parser(boom), ["train", "-v"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback (most recent call last)" in err and "[oom]" in err


def test_unknown_crash_still_one_line(capsys):
    def boom(args):
        raise KeyError("zebra")

    assert cli.run(_parser(boom), ["train"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: KeyError: 'zebra'"


def test_failed_verb_explains_its_log(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()

    def fails(args):
        (logs / "train.log").write_text("I1201 step 1\nW1201 some warning\n" + OOM + "\n")
        return 1

    assert cli.run(_parser(fails), ["train", "--workdir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "train.log" in err and "[oom]" in err


def test_explain_text_api():
    assert explain.explain_text(OOM)["id"] == "oom"
    assert explain.explain_text("all good") is None
    # a harmless notice is never the answer
    assert explain.explain_text("I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is "
                                "optimized to use available CPU instructions in performance-critical operations.") is None
    assert failures.note_log(None) is None
