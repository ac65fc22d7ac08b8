"""Suite-wide rules (loaded by conftest.py's pytest_plugins; imports none of our modules, so a
throw-away suite in tests/test_suite_rules.py can load it too).

- Under CI=true nothing is skipped and nothing deselected (issue 23: every test, every time):
  `-m`/`-k`/`--deselect`, or any other deselection, is a usage error, and a skipped test (a skip or
  skipif mark, pytest.skip() at run time, conftest.require) is reported as failed.
- pytest-xdist (`--dist loadfile`: a module runs on one worker, so one Slurm, one dockerd client and
  each module fixture serve its tests): the longest modules are queued first (tests/durations.yaml).
  Not xdist_group/loadgroup: with pytest 9.2, xdist 3.8's loadgroup is a no-op (it renames
  item._nodeid, which pytest 9 no longer reads: marked tests were seen on two workers here).
"""
import os
from pathlib import Path

import pytest
import yaml

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DURATIONS = Path(__file__).resolve().parent / "durations.yaml"
_deselected = []


def _seconds():
    with open(str(DURATIONS)) as fh:
        return (yaml.safe_load(fh) or {}).get("seconds", {})


def pytest_collection_modifyitems(session, config, items):
    """Under xdist, queue the modules longest first (stable: the rest keep their order)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    seconds = _seconds()
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda it: (-seconds.get(Path(str(it.fspath)).stem, 0), order[id(it)]))


def pytest_configure(config):
    """Refuse -m/-k/--deselect under CI before any worker starts (a worker's error is less clear)."""
    if not IN_CI or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    given = [(flag, value) for flag, value in (("-m", config.option.markexpr), ("-k", config.option.keyword),
                                               ("--deselect", config.option.deselect)) if value]
    if given:
        raise pytest.UsageError("CI=true runs every test; {} would deselect some (remove it; `make test-quick` "
                                "is the subset for the edit loop)".format(
                                    ", ".join("{} {!r}".format(f, " ".join(v) if isinstance(v, list) else v) for f, v in given)))


def pytest_deselected(items):
    _deselected.extend(items)


def pytest_collection_finish(session):
    if IN_CI and _deselected:
        names = sorted(i.nodeid for i in _deselected)
        raise pytest.UsageError("CI=true runs every test; {} deselected (by -m, -k or --deselect):\n{}".format(
            len(names), "\n".join("  " + n for n in names[:20])))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if IN_CI and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = "CI=true runs every test: a skip is a failure ({})".format(reason)
