"""#26 model lifecycle on the real TF2 OD API: the session's shared SSD export (tests/_shared.py,
no training of its own) as TF Serving's version folders. `odrun serve` runs as a real subprocess on
a free 127.0.0.1 port, driven with a real HTTP client (requests) and the official
tensorflow-serving-api gRPC stubs: the export's encoded_image_string_tensor signature and warmup
file (read with the official PredictionLog proto), warmup replayed before /readyz, the newest
version served, a version moved in while clients keep calling (no failed request, the old one
unloaded after the new one is AVAILABLE), a broken version reported in GetModelStatus,
models.config with two models and version labels, models.config re-read while serving (a model
added and one removed, no restart), a bad warmup file exit 2 before the port opens.
Version folders are hard-linked copies of the shared export (never written in place)."""
import base64
import os
import shutil
import threading
import time

import pytest

from _shared import TWO_MODELS_CONFIG, Server, free_port
from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]
WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


@pytest.fixture(scope="module")
def model(ssd_tf2):
    return {"export": ssd_tf2["export"], "images": ssd_tf2["images"], "meta": ssd_tf2["export_meta"]}


def link_copy(src, dst):
    """A version folder made of hard links to the shared export: no copy, nothing written in place."""
    shutil.copytree(str(src), str(dst), copy_function=os.link)


def serve(tmp_path, *flags):
    """`odrun serve --runtime onnx FLAGS` with REST and gRPC on free ports (tests/_shared.py's Server)."""
    return Server(tmp_path / "serve.log", "--runtime", "onnx", *flags, grpc=True)


def _b64_body(model, signature=None):
    data = (model["images"] / "synth_0001.jpg").read_bytes()
    body = {"instances": [{"b64": base64.b64encode(data).decode()}]}
    if signature:
        body["signature_name"] = signature
    return body


def _states(server, name):
    return [(v["version"], v["state"]) for v in server.get("/v1/models/" + name).json()["model_version_status"]]


def _wait_states(server, name, want, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if _states(server, name) == want:
            return
        time.sleep(0.2)
    raise AssertionError("states {} != {}\n{}".format(_states(server, name), want, server.output()))


def _grpc_status(server, name, version=None):
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(server.grpc))
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = name
    if version is not None:
        req.model_spec.version.value = version
    out = stub.GetModelStatus(req, timeout=30).model_version_status
    return [(str(v.version), get_model_status_pb2.ModelVersionStatus.State.Name(v.state), v.status.error_message)
            for v in out]


def _grpc_predict(server, model, name, version=None, label=None):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc))
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    if version is not None:
        req.model_spec.version.value = version
    if label is not None:
        req.model_spec.version_label = label
    req.inputs["input_tensor"].CopyFrom(tf.make_tensor_proto([(model["images"] / "synth_0001.jpg").read_bytes()]))
    return stub.Predict(req, timeout=60)


def test_export_writes_the_encoded_signature_and_the_warmup_file(model):
    """What `saved_model_cli show --dir EXPORT/1 --all` lists, and the warmup file as TF Serving reads it."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.saved_model import loader_impl
    from tensorflow_serving.apis import prediction_log_pb2
    version = model["export"] / "1"
    sigs = [g for g in loader_impl.parse_saved_model(str(version)).meta_graphs
            if "serve" in g.meta_info_def.tags][0].signature_def
    enc, main = sigs["encoded_image_string_tensor"], sigs["serving_default"]
    (name, info), = enc.inputs.items()
    assert name == "input_tensor" and tf.dtypes.as_dtype(info.dtype) == tf.string
    assert [d.size for d in info.tensor_shape.dim] == [-1] and set(enc.outputs) == set(main.outputs)
    path = version / WARMUP
    assert os.stat(str(path)).st_ino == os.stat(str(model["export"] / "saved_model" / WARMUP)).st_ino
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    requests_ = {log.predict_log.request.model_spec.signature_name: log.predict_log.request for log in logs}
    assert sorted(requests_) == ["encoded_image_string_tensor", "serving_default"]
    pixels = tf.make_ndarray(requests_["serving_default"].inputs["input_tensor"])
    assert pixels.shape == (1, 96, 96, 3) and pixels.dtype == np.float32
    jpeg = tf.make_ndarray(requests_["encoded_image_string_tensor"].inputs["input_tensor"])
    assert jpeg.shape == (1,) and tf.io.decode_jpeg(jpeg[0]).shape == (96, 96, 3)
    assert model["meta"]["formats"]["saved_model"]["serving"]["warmup"]["records"] == 2
    # what real TF Serving computes for {"b64": JPEG} on the encoded signature == the float one on its pixels
    loaded = tf.saved_model.load(str(version))
    data = (model["images"] / "synth_0001.jpg").read_bytes()
    a = loaded.signatures["encoded_image_string_tensor"](input_tensor=tf.constant([data]))
    decoded = tf.cast(tf.io.decode_jpeg(data, channels=3), tf.float32)[None]
    b = loaded.signatures["serving_default"](input_tensor=decoded)
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-5, err_msg=key)


def test_new_version_is_loaded_while_the_old_one_answers(model, tmp_path):
    base = tmp_path / "det"
    link_copy(model["export"], base / "1")
    server = serve(tmp_path, "--model", base, "--file-system-poll-wait-seconds", "0.2")
    try:
        log = server.output()
        assert "version 1 AVAILABLE" in log and "with 2 warmup records" in log
        assert log.index("warmup records") < log.index("serving det on")  # warmup before the port opened
        assert _states(server, "det") == [("1", "AVAILABLE")]
        codes, stop = [], threading.Event()

        def client():
            while not stop.is_set():
                codes.append(server.post("/v1/models/det:predict", _b64_body(model)).status_code)

        thread = threading.Thread(target=client)
        thread.start()
        try:
            time.sleep(1)
            link_copy(model["export"], tmp_path / ".incoming")
            os.rename(str(tmp_path / ".incoming"), str(base / "2"))  # moved in as one, as TF Serving asks
            _wait_states(server, "det", [("2", "AVAILABLE"), ("1", "END")])
            time.sleep(1)
        finally:
            stop.set()
            thread.join(120)
        assert codes and set(codes) == {200}, codes
        log = server.output()
        assert log.index("det version 2 AVAILABLE") < log.index("det version 1 unloaded")
        r = server.post("/v1/models/det/versions/1:predict", _b64_body(model))
        assert r.status_code == 404 and r.json()["error"] == "Servable not found for request: Specific(det, 1)"
        assert server.post("/v1/models/det/versions/2:predict", _b64_body(model)).status_code == 200
        assert _grpc_status(server, "det") == [("2", "AVAILABLE", ""), ("1", "END", "")]
        assert _grpc_predict(server, model, "det").model_spec.version.value == 2
        # a broken version 3: END with its error, version 2 keeps answering
        (base / "3").mkdir()
        (base / "3" / "metadata.json").write_text("{")
        deadline = time.time() + 60
        while _states(server, "det")[0] != ("3", "END") and time.time() < deadline:
            time.sleep(0.2)
        status = server.get("/v1/models/det/versions/3").json()["model_version_status"][0]
        assert status["state"] == "END" and status["status"]["error_code"] == "UNKNOWN"
        assert "metadata.json" in status["status"]["error_message"]
        assert "metadata.json" in _grpc_status(server, "det", 3)[0][2]
        assert _states(server, "det")[1:] == [("2", "AVAILABLE"), ("1", "END")]
        assert server.post("/v1/models/det:predict", _b64_body(model)).status_code == 200
    finally:
        assert server.stop() == 143, server.output()


def test_model_config_file_serves_two_models_and_labels(model, tmp_path):
    for v in ("1", "2"):
        link_copy(model["export"], tmp_path / "det" / v)
    config = tmp_path / "models.config"
    config.write_text(TWO_MODELS_CONFIG % model["export"])  # det: versions 1 and 2, labels; shapes: the export
    server = serve(tmp_path, "--model-config-file", config)
    try:
        assert _states(server, "det") == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
        assert server.get("/readyz").json()["models"] == {"det": {"version": 2, "runtime": "onnx"},
                                                          "shapes": {"version": 1, "runtime": "onnx"}}
        stable = server.post("/v1/models/det/labels/stable:predict", _b64_body(model))
        assert stable.status_code == 200, stable.text
        assert stable.json() == server.post("/v1/models/det/versions/1:predict", _b64_body(model)).json()
        assert server.get("/v1/models/det/labels/canary").json()["model_version_status"][0]["version"] == "2"
        r = server.post("/v1/models/det/labels/nope:predict", _b64_body(model))
        assert r.status_code == 400 and r.json()["error"] == "Unrecognized servable version label: nope"
        enc = server.post("/v1/models/shapes:predict", _b64_body(model, "encoded_image_string_tensor"))
        assert enc.status_code == 200 and enc.json() == server.post("/v1/models/shapes:predict",
                                                                       _b64_body(model)).json()
        assert _grpc_predict(server, model, "det", label="canary").model_spec.version.value == 2
        assert _grpc_predict(server, model, "det", version=1).model_spec.version.value == 1
        assert _grpc_predict(server, model, "shapes").model_spec.version.value == 1
        meta = server.get("/v1/models/det/versions/2/metadata").json()
        assert {"serving_default", "encoded_image_string_tensor"} <= set(meta["metadata"]["signature_def"]
                                                                          ["signature_def"])
    finally:
        assert server.stop() == 143, server.output()


def write_config(path, *entries):
    """A models.config of (name, base_path) entries, written whole (temp then rename: the poll never
    reads half a file)."""
    text = "model_config_list {\n" + "".join('  config {{\n    name: "{}"\n    base_path: "{}"\n  }}\n'.format(
        name, base) for name, base in entries) + "}\n"
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, str(path))


def _wait(check, what, server, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("{} not seen in {} s\n{}".format(what, seconds, server.output()))


def test_model_config_is_re_read_while_serving(model, tmp_path):
    """TF Serving's config reload (here on each --file-system-poll-wait-seconds poll): a model added
    to models.config is loaded and served, one removed is unloaded and answers 404, a config that
    no longer reads is logged and changes nothing; no restart."""
    link_copy(model["export"], tmp_path / "models" / "det" / "1")
    config = tmp_path / "models.config"
    write_config(config, ("det", "models/det"))
    server = serve(tmp_path, "--model-config-file", config, "--file-system-poll-wait-seconds", "0.2")
    try:
        assert server.post("/v1/models/shapes:predict", _b64_body(model)).status_code == 404
        write_config(config, ("det", "models/det"), ("shapes", model["export"]))
        _wait(lambda: server.get("/v1/models/shapes").status_code == 200 and _states(server, "shapes") ==
              [("1", "AVAILABLE")], "shapes AVAILABLE", server)
        assert server.post("/v1/models/shapes:predict", _b64_body(model)).status_code == 200
        assert "model shapes added by models.config" in server.output()
        assert _grpc_predict(server, model, "shapes").model_spec.version.value == 1
        write_config(config, ("shapes", model["export"]))
        _wait(lambda: server.get("/v1/models/det").status_code == 404, "det removed", server)
        r = server.post("/v1/models/det:predict", _b64_body(model))
        assert r.status_code == 404 and r.json()["error"] == "Servable not found for request: Latest(det)"
        assert "model det version 1 unloaded (model det left models.config)" in server.output()
        config.write_text('model_config_list { config { name: "x" ')
        _wait(lambda: "models.config not applied" in server.output(), "the bad config logged", server)
        assert server.post("/v1/models/shapes:predict", _b64_body(model)).status_code == 200
        assert server.get("/readyz").json()["models"] == {"shapes": {"version": 1, "runtime": "onnx"}}
    finally:
        assert server.stop() == 143, server.output()


def test_a_bad_warmup_file_is_exit_2_before_the_port_opens(model, tmp_path):
    base = tmp_path / "det"
    link_copy(model["export"], base / "1")
    target = base / "1" / "1" / WARMUP
    os.remove(str(target))  # a hard link: removed, never written through to the shared export
    target.write_bytes(b"not a TFRecord")
    proc = run_cli("odrun", "serve", "--model", base, "--port", free_port(), "--runtime", "onnx", check=2,
                   timeout=300)
    assert "tf_serving_warmup_requests" in proc.stderr and "version 1 failed to load" in proc.stderr, proc.stderr
    assert "serving det on" not in proc.stderr and "Traceback" not in proc.stderr
    assert (model["export"] / "1" / WARMUP).stat().st_size > 100  # the shared export untouched
