"""Issue #24: explain reads the version in a GPU-stack message (a missing libcudart/libcudnn soname, cuDNN loaded
vs compiled with, libcuda vs kernel module, a container's CUDA requirement, an sm_XX target) and answers from
compat_matrix.yaml (odcore/gpustack.py, texts in odcore/data/gpustack.yaml). Texts: real messages from
tests/fixtures/explain/dev8c.yaml (each thread named)."""
import json

import jsonschema
import pytest
import yaml

from conftest import FIXTURES

from odcore import explain as core
from odcore import gpustack

DATA = FIXTURES.parent.parent / "odcore" / "data"
MATRIX = yaml.safe_load((FIXTURES.parent.parent / "compat_matrix.yaml").read_text(encoding="utf-8"))
DEV = {e["source"]: e["text"] for e in
       yaml.safe_load((FIXTURES / "explain" / "dev8c.yaml").read_text(encoding="utf-8"))["entries"]}


def top(source):
    return core.explain(DEV[source])[0]


def test_answers_match_their_schema_and_cite_sources():
    schema = json.loads((DATA / "gpustack.schema.json").read_text())
    data = yaml.safe_load((DATA / "gpustack.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    del data["answers"]["cuda-library"]["sources"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)


def test_cudart_soname_names_its_cuda_and_the_tensorflows_built_for_it():
    old = top("https://github.com/tensorflow/tensorflow/issues/4664")  # libcudart.so.7.5
    assert old["id"] == "libcudart-missing" and "CUDA 7.5" in old["title"]
    assert "no release of TensorFlow 1.0 to 2.20" in old["cause"] and "LD_LIBRARY_PATH" in old["cause"]
    new = top("https://github.com/tensorflow/tensorflow/issues/53362")  # libcudart.so.11.0
    tf11 = sorted((t["version"] for t in MATRIX["tensorflow"] if t["cuda"].startswith("11.")),
                  key=gpustack.vtuple)
    assert "CUDA 11.x" in new["title"] and "TensorFlow {} to {}".format(tf11[0], tf11[-1]) in new["cause"]


def test_cudnn_soname_and_loaded_vs_compiled_pair():
    lib = top("https://github.com/daswer123/xtts-finetune-webui/issues/31")  # libcudnn_ops_infer.so.8
    assert lib["family"] == "cudnn" and "cuDNN 8" in lib["title"] and "libcudnn8" in lib["fix"]
    pair = top("https://github.com/carpedm20/DCGAN-tensorflow/issues/242")  # 5005 vs 5110
    assert pair["id"] == "cudnn-version-mismatch"
    assert "cuDNN 5.0.5 was loaded" in pair["title"] and pair["fix"].startswith("Upgrade to cuDNN 5.1")


def test_driver_dso_and_kernel_module_versions():
    m = top("https://github.com/tensorflow/tensorflow/issues/4768")
    assert "(361.93.2)" in m["title"] and "(352.63.0)" in m["title"] and "Reboot" in m["fix"]
    m = top("https://github.com/tensorflow/tensorflow/issues/1158")  # only the two 'reported version' lines
    assert "(384.111.0)" in m["title"] and m["id"] == "cuinit-no-device"
    assert gpustack.resolve("libcuda reported version is: 535.54.3 kernel reported version is: 535.54.3") is None


def test_container_cuda_requirement_reads_the_minimum_driver_from_the_matrix():
    min_driver = {c["version"]: c["min_driver"] for c in MATRIX["cuda"]}
    m = top("https://github.com/NVIDIA/nvidia-docker/issues/753")  # cuda>=9.2
    assert "driver must be >= {}".format(min_driver["9.2"]) in m["title"]
    m = top("https://github.com/NVIDIA/nvidia-docker/issues/497")  # driver 8.0 < image 9.0.176
    assert "CUDA 9.0" in m["title"] and min_driver["9.0"] in m["fix"]
    assert "brand = tesla" in top("https://github.com/NVIDIA/nvidia-docker/issues/895")["cause"]


def test_sm_targets_name_the_toolkits_that_support_them():
    m = top("https://github.com/utcs-scea/altis/issues/19")  # ptxas sm_30
    assert "CUDA 8.0 to 10.2" in m["cause"] and "CUDA 11.0 dropped it" in m["cause"]
    m = top("https://github.com/georgia-tech-db/evadb/issues/471")  # PyTorch sm_86
    assert m["family"] == "compute-capability" and "CUDA >= 11.1" in m["fix"]


def test_healthy_lines_are_not_resolved():
    assert gpustack.resolve("I tensorflow/stream_executor/platform/default/dso_loader.cc:44] Successfully opened "
                            "dynamic library libcudart.so.10.1") is None
    assert core.explain("2026-12-01: I tensorflow/core/common_runtime/gpu/gpu_device.cc:1555] Found device 0 with "
                        "properties: name: NVIDIA H100 computeCapability: 9.0") == []


def test_log_path_reads_the_version_of_its_own_line(tmp_path):
    """Log scanning (windows cached by digit-folded text) answers each file with its own soname's CUDA."""
    log = tmp_path / "x.log"
    log.write_text("ImportError: libcudart.so.10.0: cannot open shared object file: No such file or directory\n"
                   "step 1\n" * 3, encoding="utf-8")
    first = core.explain_file(str(log))[0]
    log.write_text("ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory\n",
                   encoding="utf-8")
    assert "CUDA 10.0" in first["title"] and "CUDA 11.x" in core.explain_file(str(log))[0]["title"]
