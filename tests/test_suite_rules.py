"""Issue 23, "every test, every time": under CI=true a skipped test fails and a deselected one
refuses the run (tests/suite_plugin.py), `make test` / `.ci/run` deselect nothing, and xdist keeps
each module on one worker, longest first (tests/durations.yaml). Each check runs a throw-away suite
in a real pytest subprocess that loads the same plugin."""
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

TESTS = ROOT / "tests"
CONFTEST = "import sys\nsys.path.insert(0, {!r})\npytest_plugins = ['suite_plugin']\n".format(str(TESTS))
SKIPPY = """\
import pytest
def test_ok(): pass
@pytest.mark.skip(reason="marked skip")
def test_marked(): pass
@pytest.mark.skipif(True, reason="condition true")
def test_skipif_true(): pass
@pytest.mark.skipif(False, reason="condition false")
def test_skipif_false(): pass
@pytest.mark.long
def test_skips_at_run_time(): pytest.skip("skipped at run time")
"""


def pytest_in(folder, *args, ci=True):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(folder)] +
                          list(args), capture_output=True, text=True, cwd=str(folder), env=env, timeout=300)


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_skippy.py").write_text(SKIPPY)
    return tmp_path


def test_ci_fails_every_kind_of_skip(suite):
    proc = pytest_in(suite)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for name, why in (("test_marked", "marked skip"), ("test_skipif_true", "condition true"),
                      ("test_skips_at_run_time", "skipped at run time")):
        assert re.search(r"(FAILED|ERROR) test_skippy.py::{} - CI=true runs every test: a skip is a failure "
                         r"\(Skipped: {}\)".format(name, why), proc.stdout), proc.stdout
    assert "PASSED test_skippy.py::test_skipif_false" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]


def test_without_ci_a_skip_stays_a_skip(suite):
    proc = pytest_in(suite, ci=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"2 passed, 3 skipped", proc.stdout), proc.stdout


@pytest.mark.parametrize("args", [["-m", "not long"], ["-k", "ok"], ["--deselect", "test_skippy.py::test_ok"]])
def test_ci_refuses_a_deselection(suite, args):
    proc = pytest_in(suite, *args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "CI=true runs every test; {} {!r} would deselect some".format(*args) in proc.stderr
    assert "make test-quick" in proc.stderr


def test_ci_refuses_a_deselection_by_a_plugin(suite):
    """Deselection that no flag shows (a conftest hook) is caught at the end of collection."""
    (suite / "conftest.py").write_text(CONFTEST + (
        "def pytest_collection_modifyitems(config, items):\n"
        "    gone = [i for i in items if 'marked' in i.name]\n"
        "    config.hook.pytest_deselected(items=gone)\n"
        "    items[:] = [i for i in items if i not in gone]\n"))
    proc = pytest_in(suite)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "CI=true runs every test; 1 deselected" in proc.stderr and "test_skippy.py::test_marked" in proc.stderr


def test_make_test_and_ci_select_everything():
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)
    dry = subprocess.run(["make", "-n", "test"], cwd=str(ROOT), capture_output=True, text=True, check=True).stdout
    line, = [l for l in dry.splitlines() if "-m pytest" in l]
    assert " tests " in line and "--durations=25" in line and "--dist loadfile --no-loadscope-reorder" in line, line
    assert not re.search(r"\s(-m|-k|--deselect|--ignore\S*)\s", line.split(" pytest ", 1)[1]), line
    import tomllib
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert not re.search(r"(^|\s)(-m|-k|--deselect|--ignore)", addopts), addopts
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(d.startswith("pytest-xdist") for d in dev) and "filelock" in dev


def test_durations_name_real_modules():
    seconds = yaml.safe_load((TESTS / "durations.yaml").read_text())["seconds"]
    modules = {p.stem for p in TESTS.glob("test_*.py")}
    assert set(seconds) <= modules, set(seconds) - modules
    assert seconds["test_export_serve"] > max(v for k, v in seconds.items() if k != "test_export_serve") and \
        seconds["test_train_tf2"] < 60  # the builder of the shared SSD run first; its other reader late


def test_xdist_keeps_a_module_on_one_worker_longest_first(tmp_path):
    """make test's --dist loadfile --no-loadscope-reorder: each module on one worker; the modules
    queued by tests/durations.yaml (test_export_serve 480 s, test_multiworker 420, test_train_tf2
    30, unlisted 0), whatever their order on disk."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    names = ("test_aaa", "test_train_tf2", "test_multiworker", "test_export_serve")
    for name in names:
        (tmp_path / (name + ".py")).write_text("".join("def test_{}(): pass\n".format(i) for i in range(3)))
    xdist = ["--dist", "loadfile", "--no-loadscope-reorder", "-v"]
    proc = pytest_in(tmp_path, "-n", "2", *xdist, ci=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = re.findall(r"\[(gw\d)\] \[[ \d]+%\] PASSED (test_\w+)\.py::test_\d", proc.stdout)
    assert len(ran) == 12, proc.stdout
    for name in names:
        assert len({w for w, m in ran if m == name}) == 1, (name, ran)
    proc = pytest_in(tmp_path, "-n", "1", *xdist, ci=False)
    ran = re.findall(r"\] PASSED (test_\w+)\.py::test_\d", proc.stdout)
    assert ran == [m for m in ("test_export_serve", "test_multiworker", "test_train_tf2", "test_aaa")
                   for _ in range(3)], proc.stdout
