"""Issue #24: the matrix holds the bounds users hit (protobuf >= 4.21 breaks every TF whose _pb2.py
files predate protoc 3.19; NumPy 2 breaks TF built against NumPy 1.x), and every knowledge-base fix
that names a numpy/protobuf/TensorFlow version agrees with `provision matrix check`."""
import json
import re

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from conftest import run_cli

from odcore import explain as core
from provision import compat

# Released versions (PyPI) a `<X` pin in a fix could resolve to: the test asks whether any of them
# satisfies both the pin and the matrix for each TensorFlow line the entry is about.
RELEASES = {
    "numpy": ["1.11.3", "1.13.3", "1.14.6", "1.16.6", "1.17.5", "1.18.5", "1.19.5", "1.20.3", "1.21.6",
              "1.22.4", "1.23.5", "1.24.4", "1.25.2", "1.26.4", "2.0.2", "2.1.3", "2.2.6"],
    "protobuf": ["3.1.0", "3.4.0", "3.6.1", "3.8.0", "3.9.2", "3.12.4", "3.17.3", "3.19.6", "3.20.3",
                 "4.21.12", "4.23.4", "4.25.3", "5.28.3", "5.29.3"],
}
PIN = re.compile(r"pip install (?:-U )?'(numpy|protobuf|tensorflow(?:-gpu|-cpu)?)\s*((?:[<>=!~]=?\s*[\d.]+\*?,?)+)'")
BARE = re.compile(r"\b(tensorflow(?:-gpu|-cpu)?)==(\d+\.\d+)\b")


def tf_lines(matrix, versions):
    """The matrix's TF lines inside an entry's `versions.tensorflow` ('A || B' is a union)."""
    specs = [SpecifierSet(s.strip()) for s in versions.split("||")] if versions else [SpecifierSet()]
    return [v for v in matrix.tf_versions() if any(Version(v) in s for s in specs)]


def test_tf115_with_protobuf_421_is_not_compatible():
    r = run_cli("provision", "matrix", "check", "--tf", "1.15", "--protobuf", "4.21.0", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["ok"] is False
    problem = out["problems"][0]
    assert problem["component"] == "protobuf" and "<4.21.0" in problem["expected"]
    assert "protobuf.dev/news/2022-05-06" in problem["fix"]
    r = run_cli("provision", "matrix", "check", "--tf", "1.15", "--protobuf", "3.20.3")
    assert r.returncode == 0 and "compatible" in r.stdout


def test_effective_bounds_only_narrow_and_cite_sources():
    m = compat.load()
    assert m.tf("1.15")["protobuf_effective"] == str(SpecifierSet(">=3.6.1,<4.21.0"))
    assert "protobuf_effective" not in m.tf("2.11")  # its wheel already pins < 3.20
    assert "protobuf_effective" not in m.tf("2.15")
    assert m.check("2.15", numpy="2.0.2") and not m.check("2.18", numpy="2.0.2")
    for bound in m.data["effective_bounds"]:
        assert all(s.startswith("https://") for s in bound["source"]), bound["id"]


def test_every_kb_fix_naming_versions_agrees_with_the_matrix():
    m = compat.load()
    checked, disagree = 0, []
    for sig in core.load():
        lines = tf_lines(m, (sig.versions or {}).get("tensorflow"))
        for pkg, spec in PIN.findall(sig.fix):
            if pkg.startswith("tensorflow"):
                continue  # handled below
            pin = SpecifierSet(spec.replace(" ", ""))
            for tf in lines:
                ok = [v for v in RELEASES[pkg] if v in pin and not m.check(tf, **{pkg: v})]
                checked += 1
                if not ok:
                    disagree.append((sig.id, pkg + spec, "TF " + tf, m.tf(tf).get(pkg + "_effective") or m.tf(tf)[pkg]))
        for pkg, line in BARE.findall(sig.fix):
            entry = m.tf(line)  # raises for a line the matrix does not know
            checked += 1
            if pkg == "tensorflow-gpu" and "gpu" not in entry["package"] and Version(line) >= Version("1.15"):
                disagree.append((sig.id, pkg + "==" + line, entry["package"]))
    assert disagree == []
    assert checked >= 40


def test_kb_pins_fail_against_a_line_they_do_not_fit():
    """The check above can fail: 'protobuf<4.21' cannot serve TF 2.20 (protobuf >= 5.28)."""
    m = compat.load()
    assert [v for v in RELEASES["protobuf"] if v in SpecifierSet("<4.21") and not m.check("2.20", protobuf=v)] == []
