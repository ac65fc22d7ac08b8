"""Issue #24: explain finds nothing wrong in the project's own healthy logs (recorded on this machine by
`odrun demo`, the TF2 verbs one by one, the TF1 path on TF 2.15 and `odrun serve`; see
tests/fixtures/explain/healthy/SOURCE.md): no finding, only harmless notices, shown by title."""
import pytest

from conftest import FIXTURES, run_cli

from odcore import explain as core

HEALTHY = sorted((FIXTURES / "explain" / "healthy").glob("*.log"))


def test_the_recorded_logs_are_there():
    names = {p.name for p in HEALTHY}
    assert {"demo-tf2.log", "demo-tf1.log", "train.log", "eval.log", "export.log", "serve.log"} <= names, names


@pytest.mark.parametrize("log", HEALTHY, ids=[p.name for p in HEALTHY])
def test_healthy_log_has_no_finding(log):
    findings = [m for m in core.explain_file(str(log)) if not m["harmless"]]
    assert findings == [], [(m["id"], m["line"]) for m in findings]
    # the same text pasted whole (the short-text path) finds nothing either
    assert [m["id"] for m in core.explain(log.read_text(encoding="utf-8")) if not m["harmless"]] == []


@pytest.mark.parametrize("log", HEALTHY[:2], ids=[p.name for p in HEALTHY[:2]])
def test_cli_says_informational_by_title(log):
    r = run_cli("provision", "explain", "--log", str(log))
    assert r.returncode == 1, r.stdout  # 1: nothing (or only harmless notices) matched
    assert "kind:" not in r.stdout and "not recognised" not in r.stdout
    out = " ".join(r.stdout.split())
    assert "none of these is an error" in out or "No known signature matched" in out, r.stdout


def test_matched_shows_the_line_that_matched_not_its_neighbour():
    """A match found through a neighbouring candidate line names its own line (issue #24: `matched:`
    showed the oneDNN line for the AVX notice)."""
    log = ("2026-12-07 14:39:08.588388: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.\n"
           "2026-12-07 14:39:08.624242: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary "
           "is optimized to use available CPU instructions in performance-critical operations.\n")
    by_id = {m["id"]: m for m in core.explain_lines(log)}
    assert "cpu_feature_guard" in by_id["cpu-instructions-not-compiled"]["line"]
    assert "oneDNN" in by_id["onednn-notice"]["line"]
