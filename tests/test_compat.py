"""compat_matrix.yaml facts, checked against the primary sources they came from.

Sources (cited per block below):
  [tested]  TensorFlow "Tested build configurations", Linux GPU table
            (https://www.tensorflow.org/install/source#gpu, tensorflow/docs site/en/install/source.md)
  [wheel]   the wheels' own Requires-Dist, recorded from PyPI in tests/fixtures/matrix/wheel_requires.json
  [cuda]    NVIDIA CUDA Toolkit release notes, "CUDA Toolkit and Corresponding Driver Versions"
            (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html)
  [gpus]    https://developer.nvidia.com/cuda-gpus
  [ngc]     NGC TensorFlow release notes 23.03 ("based on CUDA 12.1.0, which requires NVIDIA Driver
            release 530 or later"; "supports CUDA compute capability 6.0 and later")
  [bazelrc] TF_CUDA_COMPUTE_CAPABILITIES of TF's release builds (.bazelrc / ci_build release scripts)
"""
import json
import re

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from conftest import FIXTURES, ROOT

from provision import compat
from odcore.errors import UserError

MATRIX = ROOT / "compat_matrix.yaml"


@pytest.fixture(scope="module")
def m():
    return compat.load(MATRIX)


# ------------------------------------------------------------------ TensorFlow  [tested]
@pytest.mark.parametrize("tf, cuda, cudnn", [
    ("1.0", "8.0", "5.1"), ("1.2", "8.0", "5.1"), ("1.3", "8.0", "6.0"), ("1.4", "8.0", "6.0"),
    ("1.5", "9.0", "7.0"), ("1.12", "9.0", "7.0"), ("1.13", "10.0", "7.4"), ("1.14", "10.0", "7.4"),
    ("1.15", "10.0", "7.4"), ("1.15.5", "10.0", "7.4"), ("2.0", "10.0", "7.4"), ("2.1", "10.1", "7.6"),
    ("2.3", "10.1", "7.6"), ("2.4", "11.0", "8.0"), ("2.5", "11.2", "8.1"), ("2.11", "11.2", "8.1"),
    ("2.12", "11.8", "8.6"), ("2.13", "11.8", "8.6"), ("2.14", "11.8", "8.7"), ("2.15", "12.2", "8.9"),
    ("2.15.1", "12.2", "8.9"), ("2.16", "12.3", "8.9"), ("2.17", "12.3", "8.9"), ("2.18", "12.5", "9.3"),
])
def test_tf_cuda_cudnn_from_tested_build_table(m, tf, cuda, cudnn):
    row = m.tf(tf)
    assert (row["cuda"], row["cudnn"]) == (cuda, cudnn)


def test_every_release_line_1_0_to_2_20_present(m):
    lines = ["1.{}".format(i) for i in range(16)] + ["2.{}".format(i) for i in range(21)]
    assert sorted(m.tf_versions(), key=Version) == lines


@pytest.mark.parametrize("tf, ok, bad", [
    ("1.12", ["2.7", "3.6"], ["3.7"]), ("1.15", ["2.7", "3.6", "3.7"], ["3.8"]),
    ("2.1", ["2.7", "3.7"], ["3.8"]), ("2.2", ["3.8"], ["2.7", "3.9"]), ("2.5", ["3.9"], ["3.5"]),
    ("2.12", ["3.11"], ["3.7"]), ("2.15", ["3.11"], ["3.12"]), ("2.16", ["3.12"], ["3.8"]),
    ("2.20", ["3.13"], ["3.8"]),
])
def test_python_ranges_from_tested_build_table(m, tf, ok, bad):
    spec = SpecifierSet(m.tf(tf)["python"])
    assert all(Version(v) in spec for v in ok) and not any(Version(v) in spec for v in bad)


@pytest.mark.parametrize("tf, ok, bad", [
    ("1.15", ["1.16.0", "1.18.5"], ["1.15.4", "1.19.0"]),   # seeds: 1.15 wants numpy 1.16
    ("2.0", ["1.16.4"], ["1.19.0"]), ("2.4", ["1.19.5"], ["1.20.0"]), ("2.12", ["1.24.3"], ["1.24.4"]),
    ("2.15", ["1.26.4"], ["2.0.0", "1.23.4"]), ("2.18", ["2.0.2"], ["2.1.0"]), ("2.20", ["2.3.0"], ["1.25.0"]),
])
def test_numpy_ranges_from_wheel_metadata(m, tf, ok, bad):
    spec = SpecifierSet(m.tf(tf)["numpy"])
    assert all(Version(v) in spec for v in ok) and not any(Version(v) in spec for v in bad)


@pytest.mark.parametrize("tf, ok, bad", [
    ("1.15", ["3.6.1", "3.20.3"], ["3.6.0"]), ("2.10", ["3.19.6"], ["3.20.0"]),
    ("2.15", ["3.20.3", "4.25.3"], ["4.21.3", "5.26.0", "3.19.6"]), ("2.18", ["5.28.3"], ["6.0.0"]),
    ("2.20", ["5.28.0"], ["4.25.3"]),
])
def test_protobuf_ranges_from_wheel_metadata(m, tf, ok, bad):
    spec = SpecifierSet(m.tf(tf)["protobuf"])
    assert all(Version(v) in spec for v in ok) and not any(Version(v) in spec for v in bad)


def test_matrix_agrees_with_recorded_wheels(m):
    """numpy/protobuf are the newest wheel's Requires-Dist; from 2.14 on the [and-cuda] pins
    (nvidia-cuda-runtime-cu1X / nvidia-cudnn-cu1X) agree with the tested-build CUDA/cuDNN."""
    wheels = json.loads((FIXTURES / "matrix" / "wheel_requires.json").read_text())["wheels"]
    checked = 0
    for entry in m.data["tensorflow"]:
        key = "{}=={}".format("tensorflow-gpu" if entry["package"] == "tensorflow-gpu" else "tensorflow",
                              entry["latest"])
        reqs = wheels[key]["requires_dist"]
        for name in ("numpy", "protobuf"):
            specs = [SpecifierSet(re.sub(r"[()\s]", "", r.split(";")[0][len(name):])) for r in reqs
                     if re.match(name + r"\b", r) and "extra" not in r]
            assert SpecifierSet(entry[name]) in specs, (key, name, entry[name])
        pins = {r.split()[0]: re.search(r"(?:==|>=)\s*(\d+\.\d+)", r.split(";")[0]).group(1)
                for r in reqs if "and-cuda" in r and r.startswith(("nvidia-cuda-runtime", "nvidia-cudnn"))}
        if pins:
            runtime = [v for k, v in pins.items() if k.startswith("nvidia-cuda-runtime")][0]
            cudnn = [v for k, v in pins.items() if k.startswith("nvidia-cudnn")][0]
            assert (runtime, cudnn) == (entry["cuda"], entry["cudnn"]), key
        checked += 1
    assert checked == 37


def test_package_contrib_and_od_api(m):
    assert m.tf("1.15")["package"] == "tensorflow-gpu"
    assert m.tf("2.1")["package"] == "tensorflow"          # TF 2.1 RELEASE.md: GPU in `tensorflow`
    assert m.tf("2.15")["package"] == "tensorflow[and-cuda]"
    assert m.tf("1.15")["tf_contrib"] is True and m.tf("2.0")["tf_contrib"] is False
    assert m.tf("1.15")["od_api"] == "tf1" and m.tf("2.15")["od_api"] == "tf2"
    assert m.od_api("1.15.5")["train"].endswith("model_main.py")
    assert m.od_api("1.15")["export"].endswith("export_inference_graph.py")
    assert m.od_api("2.15.1")["train"].endswith("model_main_tf2.py")
    assert m.od_api("2.8")["export"].endswith("exporter_main_v2.py")


def test_compute_capabilities_from_release_builds(m):  # [wheel] fat binaries, see build_info.json
    assert m.tf("1.15")["compute_capabilities"]["sass"] == ["3.5", "3.7", "5.2", "6.0", "6.1", "7.0"]
    assert m.tf("1.15")["compute_capabilities"]["ptx"] == ["3.5", "3.7", "5.2", "6.0", "6.1", "7.0"]
    assert m.tf("2.3")["compute_capabilities"] == {"sass": ["3.5", "3.7", "5.2", "6.0", "6.1", "7.0"], "ptx": ["7.0"]}
    assert m.tf("2.4")["compute_capabilities"] == {"sass": ["3.5", "5.0", "6.0", "7.0", "7.5", "8.0"], "ptx": ["8.0"]}
    assert m.tf("2.15")["compute_capabilities"] == {"sass": ["5.0", "6.0", "7.0", "7.5", "8.0"], "ptx": ["8.0"]}
    # TF blog "What's new in TensorFlow 2.18" (covering 2.17): sm_89 kernels added, compute
    # capability 5.0 dropped, "For Maxwell support ... sticking with TensorFlow version 2.16"
    assert m.tf("2.16")["compute_capabilities"]["sass"][0] == "5.0"
    assert m.tf("2.17")["compute_capabilities"] == {"sass": ["6.0", "7.0", "8.0", "8.9", "9.0"], "ptx": ["9.0"]}
    assert m.cc_support(m.tf("2.17"), (5, 2))[0] == "none"
    assert m.cc_support(m.tf("1.15"), (8, 6))[0] == "none"            # CUDA 10.0 predates Ampere
    assert m.cc_support(m.tf("1.15"), (7, 5))[0] == "native"          # sm_70 SASS runs on 7.x, x >= 0
    assert m.cc_support(m.tf("1.15"), (5, 0))[0] == "ptx"             # below sm_52: JIT from compute_35
    assert m.cc_support(m.tf("2.15"), (8, 6))[0] == "native"          # sm_80 SASS runs on 8.6
    assert m.cc_support(m.tf("2.15"), (9, 0))[0] == "ptx"             # JIT from compute_80


# ------------------------------------------------------------------ CUDA  [cuda]
@pytest.mark.parametrize("cuda, driver", [
    ("8.0", "367.48"), ("8.0.61", "375.26"), ("9.0", "384.81"), ("9.2.148", "396.37"),
    ("10.0", "410.48"), ("10.0.130", "410.48"), ("10.1", "418.39"), ("10.2", "440.33"),
    ("11.0", "450.51.05"), ("11.0.1", "450.36.06"), ("11.0.3", "450.51.06"), ("11.1", "455.23"),
    ("11.2", "460.27.03"), ("11.8", "520.61.05"), ("12.0", "525.60.13"), ("12.1", "530.30.02"),
    ("12.2", "535.54.03"), ("12.2.2", "535.104.05"), ("12.3", "545.23.06"), ("12.5", "555.42.02"),
    ("12.8", "570.26"), ("13.0", "580.65.06"),
])
def test_cuda_min_driver_linux(m, cuda, driver):
    assert m.cuda(cuda)["min_driver"] == driver


def test_cuda_minor_version_compat_and_arch_range(m):
    assert m.cuda("11.4")["minor_compat_driver"] == "450.80.02"
    assert m.cuda("12.6")["minor_compat_driver"] == "525.60.13"
    assert m.cuda("10.0")["cc_max"] == "7.5" and m.cuda("11.1")["cc_max"] == "8.6"
    assert m.cuda("12.0")["cc_min"] == "5.0"   # Kepler removed in CUDA 12
    assert m.cuda("13.0")["cc_min"] == "7.5"   # Maxwell/Pascal/Volta removed in CUDA 13


# ------------------------------------------------------------------ GPUs  [gpus]
@pytest.mark.parametrize("name, cc", [
    ("NVIDIA GeForce RTX 3090", "8.6"), ("RTX 3090", "8.6"), ("GeForce RTX 3090 Ti", "8.6"),
    ("Tesla V100-SXM2-32GB", "7.0"), ("Tesla V100-PCIE-16GB", "7.0"), ("NVIDIA A100-SXM4-80GB", "8.0"),
    ("NVIDIA A100 80GB PCIe", "8.0"), ("NVIDIA H100 80GB HBM3", "9.0"), ("NVIDIA H100 PCIe", "9.0"),
    ("Tesla T4", "7.5"), ("Tesla K80", "3.7"), ("Tesla P100-PCIE-16GB", "6.0"), ("Tesla P4", "6.1"),
    ("GeForce GTX 1080 Ti", "6.1"), ("NVIDIA GeForce GTX 1660 SUPER", "7.5"), ("NVIDIA TITAN V", "7.0"),
    ("NVIDIA GeForce RTX 2080 Ti", "7.5"), ("NVIDIA GeForce RTX 4090", "8.9"), ("NVIDIA GeForce RTX 5090", "12.0"),
    ("NVIDIA B200", "10.0"), ("NVIDIA L4", "8.9"), ("NVIDIA A10G", "8.6"), ("NVIDIA RTX A6000", "8.6"),
    ("GeForce GTX 970", "5.2"), ("NVIDIA GeForce GTX 980 Ti", "5.2"), ("NVIDIA TITAN X (Pascal)", "6.1"),
    ("Quadro RTX 6000", "7.5"), ("NVIDIA RTX 6000 Ada Generation", "8.9"), ("nvidia geforce rtx 3080 laptop gpu", "8.6"),
])
def test_gpu_compute_capability(m, name, cc):
    assert m.gpu(name)["compute_capability"] == cc


def test_gpu_unknown_and_ambiguous_names(m):
    with pytest.raises(compat.UnknownKey) as exc:
        m.gpu("RTX 6000")   # Quadro RTX 6000 (7.5) or RTX 6000 Ada (8.9): do not guess
    assert "did you mean" in exc.value.fix
    with pytest.raises(compat.UnknownKey):
        m.gpu("Radeon RX 7900")


# ------------------------------------------------------------------ images  [ngc]
def test_images(m):
    assert [i["flavor"] for i in m.images()] == ["tf1.15-gpu", "tf1.15-ngc", "tf2-gpu", "cpu"]
    stock, ngc = m.image("tf1.15-gpu"), m.image("tf1.15-ngc")
    assert stock["image"] == "tensorflow/tensorflow:1.15.5-gpu-py3" and stock["cuda"] == "10.0"
    assert ngc["image"] == "nvcr.io/nvidia/tensorflow:23.03-tf1-py3"
    assert (ngc["tf"], ngc["cuda"], ngc["python"]) == ("1.15.5", "12.1", "3.8")
    assert Version(ngc["min_driver"]).major == 530 and "8.6" in ngc["compute_capabilities"]
    assert "5.2" not in ngc["compute_capabilities"]   # 23.03: compute capability 6.0 and later
    assert "8.6" not in stock["compute_capabilities"]
    with pytest.raises(compat.UnknownKey):
        m.image("tf1-gpu")


# ------------------------------------------------------------------ recommend / check
def test_recommend(m):
    r = m.recommend(gpu="NVIDIA GeForce RTX 3090")
    assert r["flavor"] == "tf1.15-ngc" and "CUDA 10.0" in r["reason"] and "8.6" in r["reason"]
    assert m.recommend(gpu="RTX 3090", tf_major=2)["flavor"] == "tf2-gpu"
    assert m.recommend(gpu="GeForce GTX 1080")["flavor"] == "tf1.15-gpu"
    assert m.recommend(cc="3.7")["flavor"] == "tf1.15-gpu"
    assert m.recommend(gpu="Tesla K80", tf_major=2)["flavor"] == "cpu"   # CUDA 12 has no Kepler
    assert m.recommend(gpu="NVIDIA H100 80GB HBM3")["flavor"] == "tf1.15-ngc"
    old = m.recommend(gpu="RTX 3090", driver="470.82.01")
    assert old["driver_ok"] is False and "530" in old["reason"]
    # [ngc] datacenter GPUs may use R470 >= 470.57 via forward compatibility; GeForce may not
    dc = m.recommend(gpu="NVIDIA A100-SXM4-40GB", driver="470.82.01")
    assert dc["flavor"] == "tf1.15-ngc" and dc["driver_ok"] is True and "forward-compat" in dc["reason"]
    assert m.recommend(gpu="NVIDIA A100", driver="470.42.01")["driver_ok"] is False
    assert m.recommend(gpu="NVIDIA A100", driver="460.91.03")["driver_ok"] is False
    b = m.recommend(gpu="NVIDIA GeForce RTX 5090")
    assert b["flavor"] == "cpu" and "CUDA_ERROR_INVALID_PTX" in b["reason"]
    assert m.recommend()["flavor"] == "cpu"


def test_check_finds_every_problem(m):
    problems = m.check(tf="1.15", python="3.8", cuda="11.2", cudnn="8.1", numpy="1.19.5",
                       protobuf="3.6.0", driver="400.1", gpu="RTX 3090")
    by = {p["component"]: p for p in problems}
    assert set(by) == {"python", "cuda", "cudnn", "numpy", "protobuf", "driver", "gpu"}
    assert by["cuda"]["expected"] == "10.0" and "libcudart.so.10.0" in by["cuda"]["fix"]
    assert by["driver"]["expected"] == ">= 410.48" and "provision host --tags driver" in by["driver"]["fix"]
    assert "tf1.15-ngc" in by["gpu"]["fix"]
    assert m.check(tf="1.15.5", python="3.6.9", cuda="10.0.130", cudnn="7.6.5", numpy="1.16.0",
                   protobuf="3.20.3", driver="440.82", gpu="GeForce GTX 1080 Ti") == []
    # cuDNN: same major and minor >= the build's (TF: "needs to have matching major version and
    # equal or higher minor version")
    assert m.check(tf="2.4", cudnn="8.0.4") == []
    assert [p["component"] for p in m.check(tf="2.5", cudnn="8.0.4")] == ["cudnn"]
    assert [p["component"] for p in m.check(tf="2.15", cc="3.7")] == ["gpu"]


@pytest.mark.parametrize("bad", ["1.x", "one", "", "10..0"])
def test_malformed_versions_are_user_errors(m, bad):
    with pytest.raises(UserError) as exc:
        m.tf(bad)
    assert "not a version" in exc.value.message


def test_unknown_release_has_did_you_mean(m):
    with pytest.raises(compat.UnknownKey) as exc:
        m.tf("2.21")
    assert "2.2" in exc.value.fix and "did you mean" in exc.value.fix
    with pytest.raises(compat.UnknownKey):
        m.cuda("7.5")


# ------------------------------------------------------------------ validation of the file itself
def test_every_entry_has_http_sources(m):
    for section in ("tensorflow", "cuda", "gpus", "images", "od_api", "known_issues"):
        for entry in m.data[section]:
            src = entry["source"] if isinstance(entry["source"], list) else [entry["source"]]
            assert src and all(s.startswith("https://") for s in src), entry


def _broken(tmp_path, old, new):
    text = MATRIX.read_text()
    assert old in text
    path = tmp_path / "matrix.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, where", [
    ('  - version: "2.19"\n    tested: null', '  - version: 2.19\n    tested: null', "tensorflow[1]"),
    ('    cuda: "12.5"\n    cudnn: "9.3"', '    cuda: "12.7"\n    cudnn: "9.3"', "tensorflow[0] (2.20).cuda"),
    ('    protobuf: ">=5.28.0"', '    protobuf: ">=5.28.0,,<"', "tensorflow[0] (2.20).protobuf"),
    ('    min_driver: "410.48"\n    updates', '    min_driver: "four-ten"\n    updates', "(10.0).min_driver"),
    ('compute_capability: "3.7"', 'compute_capability: 3.7', "gpus[0] (Tesla K80).compute_capability"),
    ('  - flavor: tf1.15-ngc', '  - flavor: tf1.15-nvidia', "images"),
    ('    min_driver: "530.30.02"\n    # datacenter', '    min_driver: "525.60.13"\n    # datacenter',
     "images[1] (tf1.15-ngc).min_driver"),
    ('    od_api: tf1\n', '    od_api: tf3\n', "tensorflow[21] (1.15).od_api"),
    ('source: &cudagpus [https://developer.nvidia.com/cuda-gpus]', 'source: &cudagpus [developer.nvidia.com]', "gpus[0] (Tesla K80).source"),
])
def test_malformed_matrix_names_the_bad_entry(tmp_path, old, new, where):
    with pytest.raises(compat.MatrixError) as exc:
        compat.load(_broken(tmp_path, old, new))
    assert where in exc.value.where, exc.value.where


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text("tensorflow:\n  - version: [1.15\n")
    with pytest.raises(compat.MatrixError) as exc:
        compat.load(path)
    assert re.search(r"matrix.yaml:\d+", exc.value.where)


def test_env_var_selects_matrix(tmp_path, monkeypatch):
    monkeypatch.setenv(compat.ENV_VAR, str(tmp_path / "nope.yaml"))
    with pytest.raises(compat.MatrixError) as exc:
        compat.load()
    assert "nope.yaml" in exc.value.where
    monkeypatch.setenv(compat.ENV_VAR, str(MATRIX))
    assert compat.load().tf("1.15")["cuda"] == "10.0"


# ------------------------------------------------------------------ the seed tutorial's tables
def _seed_rows():
    rows = []
    for line in (FIXTURES / "matrix" / "seed_tables.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.match(r"tensorflow", cells[0]):
            rows.append(cells)
    return rows


def test_seed_cuda_table_agrees(m):
    rows = _seed_rows()
    assert len(rows) == 17
    for name, python, _gcc, _bazel, cudnn, cuda in rows:
        entry = m.tf(name.split("-")[1])
        assert Version(entry["cuda"]) == Version(cuda), name
        assert Version(entry["cudnn"]) == Version(cudnn), name
        assert entry["python"].startswith(">=2.7") and python.startswith("2.7")
        top = python.split("-")[-1]   # '3.6' / '3.7': highest tested Python
        assert Version(top) in SpecifierSet(entry["python"])
        assert Version(top.split(".")[0] + "." + str(int(top.split(".")[1]) + 1)) not in SpecifierSet(entry["python"])


def test_seed_numpy_table_inside_wheel_ranges(m):
    text = (FIXTURES / "matrix" / "seed_tables.md").read_text()
    pairs = re.findall(r"^\|\s*(\d+\.\d+(?:\.\d+)?)\s*\|\s*(\d+\.\d+\.\d+)\s*\|$", text, re.M)
    assert len(pairs) == 4
    for tf, numpy in pairs:
        assert Version(numpy) in SpecifierSet(m.tf(tf)["numpy"]), (tf, numpy)


def test_recorded_nvidia_smi_names_resolve(m):
    """Names copied from real nvidia-smi outputs (fixture cites each); where the recording has the
    compute_cap column the matrix must say the same."""
    rows = [l.split(" | ") for l in (FIXTURES / "matrix" / "nvidia_smi_names.txt").read_text().splitlines()
            if l and not l.startswith("#")]
    assert len(rows) >= 10
    for name, cc, _source in rows:
        gpu = m.gpu(name)
        if cc != "-":
            assert gpu["compute_capability"] == cc, name


def test_numpy_markers_per_python(m):
    """TF 2.16/2.17 wheels: numpy >=1.23.5 on Python <= 3.11 but >=1.26.0 on 3.12 [wheel]."""
    assert m.check(tf="2.16", python="3.11", numpy="1.25.2") == []
    problems = m.check(tf="2.16", python="3.12", numpy="1.25.2")
    assert [p["component"] for p in problems] == ["numpy"] and problems[0]["expected"] == "<2.0.0,>=1.26.0"


def test_packaged_copy_and_repo_copy_are_found(tmp_path, monkeypatch):
    """In a wheel the matrix is package data (odcore/share/compat_matrix.yaml, see odcore.install);
    in a checkout at the repo top. The package copy wins."""
    from odcore import install

    monkeypatch.delenv(compat.ENV_VAR, raising=False)
    pkg = tmp_path / "share"
    pkg.mkdir()
    monkeypatch.setattr(install, "SHARE", str(pkg))
    monkeypatch.setattr(install, "CHECKOUT", str(tmp_path))
    (tmp_path / "compat_matrix.yaml").write_text(MATRIX.read_text())
    assert compat.default_path() == tmp_path / "compat_matrix.yaml"
    (pkg / "compat_matrix.yaml").write_text(MATRIX.read_text())
    assert compat.default_path() == pkg / "compat_matrix.yaml"
    assert compat.load().tf("2.15")["cudnn"] == "8.9"


def test_compute_capabilities_are_what_the_wheels_ship(m):
    """[wheel] build_info.json: the CUDA fat binaries inside each GPU wheel (record_wheels.py
    --build-info read kind SASS/PTX and arch of every entry) and TF's own build_info.py."""
    data = json.loads((FIXTURES / "matrix" / "build_info.json").read_text())["wheels"]
    seen = set()
    for key, wheel in data.items():
        line = ".".join(wheel["version"].split(".")[:2])
        entry = m.tf(line)
        if entry["latest"] != wheel["version"]:   # 1.12.0: recorded for the 1.12 note only
            assert line == "1.12" and wheel["fatbin"]["sass"][-1] == "7.0"
            continue
        if wheel["fatbin"]["sass"]:
            assert entry["compute_capabilities"] == {k: wheel["fatbin"][k] for k in ("sass", "ptx")}, key
            seen.add(line)
        info = wheel["build_info"].get("build_info", wheel["build_info"])
        cuda = info.get("cuda_version") or info.get("cuda_version_number")
        if cuda:   # '10' in 1.14-2.2 build_info means the 10.x the table names
            assert (compat.line_of(cuda) == entry["cuda"]) if "." in cuda else entry["cuda"].startswith(cuda + "."), key
        cudnn = info.get("cudnn_version") or info.get("cudnn_version_number")
        if cudnn:
            assert entry["cudnn"].split(".")[0] == cudnn.split(".")[0], key
    assert {"1.15", "2.0", "2.4", "2.15", "2.18"} <= seen


def test_stock_image_gpu_lists_follow_from_the_wheels(m):
    """The stock images' GPU lists are exactly what their TF wheel's kernels + CUDA allow."""
    for flavor in ("tf1.15-gpu", "tf2-gpu"):
        img = m.image(flavor)
        tf = m.tf(img["tf"])
        listed = {compat.cc_tuple(c) for c in img["compute_capabilities"]}
        for cc in listed:
            assert m.cc_support(tf, cc)[0] != "none", (flavor, cc)
        for gpu in m.gpus():
            cc = compat.cc_tuple(gpu["compute_capability"])
            if m.cc_support(tf, cc)[0] != "none":
                assert cc in listed, (flavor, gpu["name"])
