"""`provision matrix` CLI contract: JSON keys, exit codes, did-you-mean, rich output."""
import json
import os

import pytest

from conftest import ROOT, run_cli


def jrun(*args, check=0, env=None):
    proc = run_cli("provision", "matrix", *args, check=check, env=env)
    return json.loads(proc.stdout) if check in (0, 1) and "--json" in args else proc


def test_show_tf_json_keys_and_values():
    row = jrun("show", "tf", "1.15.5", "--json")
    for key in ("version", "python", "cuda", "cudnn", "numpy", "protobuf", "compute_capabilities", "sources"):
        assert key in row
    assert (row["version"], row["cuda"], row["cudnn"]) == ("1.15", "10.0", "7.4")
    assert all(s.startswith("https://") for s in row["sources"])


def test_show_cuda_gpu_image_json():
    assert jrun("show", "cuda", "10.0.130", "--json")["min_driver"] == "410.48"
    cuda = jrun("show", "cuda", "11.0", "--json")
    assert (cuda["version"], cuda["min_driver"]) == ("11.0", "450.51.05")
    gpu = jrun("show", "gpu", "NVIDIA A100-SXM4-80GB", "--json")
    assert (gpu["name"], gpu["compute_capability"]) == ("NVIDIA A100", "8.0")
    img = jrun("show", "image", "tf1.15-ngc", "--json")
    assert img["image"] == "nvcr.io/nvidia/tensorflow:23.03-tf1-py3"


def test_show_renders_a_table():
    out = run_cli("provision", "matrix", "show", "tf", "2.15", check=0).stdout
    assert "12.2" in out and "8.9" in out and "cudnn" in out and "┃" in out


@pytest.mark.parametrize("args, text", [
    (("show", "tf", "3.15"), "did you mean"),
    (("show", "tf", "1.x5"), "not a version"),
    (("show", "gpu", "RTX 3099"), "did you mean"),
    (("show", "image", "tf1"), "known: tf1.15-gpu"),
    (("check", "--tf", "1.15", "--cuda", "ten"), "not a version"),
    (("recommend", "--cc", "eight"), "X.Y"),
])
def test_bad_input_exit_2_with_hint(args, text, capsys):
    # in-process (same parser and error path as the console script, without a process start each)
    from odcore.cli import run
    from provision.cli import build_parser

    assert run(build_parser(), ["matrix"] + list(args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and text in err and "Traceback" not in err


def test_bad_input_from_the_console_script():
    proc = run_cli("provision", "matrix", "show", "tf", "1.x5", check=2)
    assert "not a version" in proc.stderr and "Traceback" not in proc.stderr


def test_check_json_and_exit_codes():
    bad = jrun("check", "--tf", "1.15", "--cuda", "11.2", "--cudnn", "8.1", "--driver", "400.0",
               "--gpu", "NVIDIA GeForce RTX 3090", "--json", check=1)
    assert bad["ok"] is False
    assert {p["component"] for p in bad["problems"]} == {"cuda", "cudnn", "driver", "gpu"}
    assert all(set(p) == {"component", "found", "expected", "fix"} for p in bad["problems"])
    good = jrun("check", "--tf", "2.15", "--python", "3.11", "--cuda", "12.2", "--cudnn", "8.9.4",
                "--numpy", "1.26.4", "--protobuf", "3.20.3", "--cc", "8.6", "--json")
    assert good == {"ok": True, "problems": [], "tf": "2.15", "notes": []}
    jit = jrun("check", "--tf", "1.12", "--gpu", "GeForce GTX 1080", "--json")
    assert jit["ok"] is True and any("1.12.0" in n for n in jit["notes"])
    assert any("JIT" in n and "6.1" in n for n in jit["notes"])
    human = run_cli("provision", "matrix", "check", "--tf", "1.15", "--numpy", "1.19.5", check=1)
    assert "numpy" in human.stdout and "<1.19.0" in human.stdout


def test_recommend_json():
    rec = jrun("recommend", "--gpu", "NVIDIA GeForce RTX 3090", "--driver", "530.41.03", "--json")
    assert rec["flavor"] == "tf1.15-ngc" and rec["driver_ok"] is True
    assert set(rec) >= {"flavor", "image", "reason"}
    assert jrun("recommend", "--cc", "6.1", "--json")["flavor"] == "tf1.15-gpu"
    assert jrun("recommend", "--cc", "8.6", "--tf-major", "2", "--json")["flavor"] == "tf2-gpu"


def test_recommend_this_machine_without_gpu():
    rec = jrun("recommend", "--json")
    if rec.get("gpu"):
        pytest.skip("this machine has an NVIDIA GPU: " + rec["gpu"])
    assert rec["flavor"] == "cpu" and "no NVIDIA GPU" in rec["reason"]


def test_broken_matrix_via_env_is_rejected(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text((ROOT / "compat_matrix.yaml").read_text().replace('cuda: "10.0"', 'cuda: "10.9"', 1))
    env = dict(os.environ, ODSTACK_MATRIX=str(bad))
    proc = run_cli("provision", "matrix", "show", "tf", "1.15", check=2, env=env)
    assert str(bad) in proc.stderr and "cuda" in proc.stderr


def test_validate():
    out = jrun("validate", "--json")
    assert out["ok"] is True and out["entries"]["tensorflow"] == 37 and out["sources"] > 20


def test_images_match_the_dockerfiles():
    """The matrix rows and images/<flavor>/Dockerfile defaults describe the same images."""
    import re
    from provision import compat

    for img in compat.load(ROOT / "compat_matrix.yaml").images():
        dockerfile = ROOT / "images" / img["flavor"] / "Dockerfile"
        if not dockerfile.exists():
            continue
        args = dict(re.findall(r"^ARG (\w+)=(\S*)", dockerfile.read_text(), re.M))
        assert args.get("BASE_IMAGE") == img["image"], img["flavor"]
        assert args.get("CUDA_VERSION") in (img["cuda"], "none" if img["cuda"] is None else img["cuda"])
        assert args.get("PYTHON_VERSION") == img["python"], img["flavor"]
