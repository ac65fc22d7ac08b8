"""#14 on the real TF2 OD API: ONE tiny SSD trained once (the session's shared run, tests/_shared.py), exported as
saved_model + frozen + onnx + tflite (each parity-checked against the SavedModel by the export
itself), then: the TF Serving layout and signature, the parity figures, detect on ONNX/TFLite
without importing TensorFlow, and `odrun serve` as a real subprocess on a free 127.0.0.1 port
driven with a real HTTP client (requests): TF Serving predict, /v1/detect == `odrun detect`,
400s, 413, 503 on a full queue, SIGTERM with a request in flight, /metrics."""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from _shared import Server, free_port
from conftest import ROOT, bin_path, run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def model(ssd_tf2):
    """tests/_shared.py's SSD run (24 images, 96 px), exported once to saved_model + frozen + onnx +
    tflite (`odrun export --format saved_model,frozen --format onnx,tflite`, each parity-checked)."""
    return dict({k: ssd_tf2[k] for k in ("root", "images", "data", "run", "export")},
                meta=ssd_tf2["export_meta"], export_stderr=ssd_tf2["export_stderr"])


def test_every_format_passed_parity(model):
    formats = model["meta"]["formats"]
    assert set(formats) == {"saved_model", "frozen", "onnx", "tflite"}
    for name in ("frozen", "onnx", "tflite"):
        p = formats[name]["parity"]
        assert p["ok"] and p["compared"] > 0 and p["matched"] == p["compared"], (name, p)
        assert p["max_box_diff"] <= p["box_tol"] and p["max_score_diff"] <= p["score_tol"]
        assert p["images"] >= 4 and p["source"] == "TFRecord"
        assert os.path.getsize(str(model["export"] / formats[name]["path"])) == formats[name]["bytes"]
    assert formats["onnx"]["opset"] == 13 and formats["onnx"]["input"]["dtype"] == "float32"
    assert formats["tflite"]["input"]["shape"] == [1, 96, 96, 3]
    assert "parity" in model["export_stderr"]
    # issue #25: every long step of the export names itself and its time (here piped: start/done lines)
    for stage in ("export: loading the SavedModel", "export: writing onnx (tf2onnx", "export: writing tflite (",
                  "export: running the SavedModel on", "export: checking tflite against the SavedModel"):
        assert stage in model["export_stderr"], stage
    assert re.search(r"export: writing onnx \(.*\): done in \d+\.\ds", model["export_stderr"])
    assert json.load(open(str(model["export"] / "metadata.json"))) == model["meta"]


def test_tf_serving_layout_and_signature(model):
    """What `saved_model_cli show --dir EXPORT/1 --tag_set serve --signature_def serving_default` prints."""
    from tensorflow.python.saved_model import loader_impl
    import tensorflow as tf
    version = model["export"] / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables" / "variables.index").is_file()
    # hard links: the same bytes as saved_model/, no second copy on disk
    assert os.stat(str(version / "saved_model.pb")).st_ino == \
        os.stat(str(model["export"] / "saved_model" / "saved_model.pb")).st_ino
    saved = loader_impl.parse_saved_model(str(version))
    graph = [m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags][0]
    sig = graph.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    (name, info), = sig.inputs.items()
    assert name == "input_tensor" and tf.dtypes.as_dtype(info.dtype) == tf.float32
    assert [d.size for d in info.tensor_shape.dim] == [-1, -1, -1, 3]
    for out in ("detection_boxes", "detection_classes", "detection_scores", "num_detections"):
        assert out in sig.outputs
    assert [d.size for d in sig.outputs["detection_boxes"].tensor_shape.dim] == [-1, 100, 4]


def test_tflite_refused_up_front_for_faster_rcnn():
    from odcore.errors import UserError
    from odrun.tasks.detect import export_formats
    from odrun.tasks.detect.config import pipeline as pc
    config = pc.load(str(ROOT / "odrun" / "data" / "templates" / "tf2" / "faster_rcnn_resnet50.config"))
    with pytest.raises(UserError) as err:
        export_formats.check_supported(["saved_model", "tflite"], config, "tf2")
    assert "SSD models only" in err.value.message and "faster_rcnn" in err.value.message
    assert "onnx" in err.value.fix
    export_formats.check_supported(["saved_model", "onnx"], config, "tf2")  # ONNX is fine for it
    with pytest.raises(UserError):
        export_formats.parse(["onnx,coreml"])


@pytest.mark.parametrize("runtime", ["onnx", "tflite"])
def test_detect_without_tensorflow(model, runtime, tmp_path):
    """odrun detect on the ONNX / TFLite form never imports TensorFlow (checked in the process)."""
    code = ("import sys\nfrom odrun.cli import build_parser\nfrom odcore.cli import run\n"
            "rc = run(build_parser(), sys.argv[1:])\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
            "sys.exit(rc)\n")
    out = tmp_path / runtime
    proc = subprocess.run([sys.executable, "-c", code, "detect", "--model", str(model["export"]),
                           str(model["images"]), "--out", str(out), "--threshold", "0.0", "--runtime", runtime,
                           "--no-images", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["images"] == 24 and summary["detections"] > 0
    dets = json.load(open(str(out / "detections.json")))
    assert {d["image_id"] for d in dets} == set(range(1, 25))


def test_detect_auto_prefers_a_tf_free_runtime(model, tmp_path):
    from odrun import runtimes
    assert runtimes.choose(str(model["export"])) == "onnx"
    assert runtimes.present(str(model["export"])) == ["onnx", "tflite", "frozen", "saved_model"]


# serve ------------------------------------------------------------------------------------------

def serve(folder, model, *flags, grpc=False):
    """`odrun serve --model EXPORT --name shapes FLAGS` (tests/_shared.py's Server), its log in `folder`."""
    return Server(folder / "serve.log", "--model", model["export"], *flags, name="shapes", grpc=grpc, ready_s=120)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("serve"), model, "--runtime", "onnx", "--max-batch", 8, grpc=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def detected(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("served_det")
    run_cli("odrun", "detect", "--model", model["export"], str(model["images"] / "synth_000*.jpg"), "--out", out,
            "--threshold", "0.0", "--runtime", "onnx", "--no-images", "--json", check=0)
    images = json.load(open(str(out / "images.json")))
    dets = json.load(open(str(out / "detections.json")))
    return {os.path.basename(i["file_name"]): [d for d in dets if d["image_id"] == i["id"]] for i in images}


def test_tf_serving_predict_and_status(server, model):
    import requests
    status = requests.get(server.url + "/v1/models/shapes", timeout=10).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    paths = [model["images"] / "synth_0001.jpg", model["images"] / "synth_0002.jpg"]
    body = {"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in paths]}
    r = requests.post(server.url + "/v1/models/shapes:predict", json=body, timeout=60)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 2
    from odrun import runtimes
    from odrun.tasks.detect.detect import load_image
    direct = runtimes.load(str(model["export"]), "onnx").detect([load_image(str(p)) for p in paths])
    for pred, ref in zip(preds, direct):
        n = len(ref["scores"])  # every output of the signature, padded to max detections as TF Serving's
        assert pred["num_detections"] == n and len(pred) == 8 and len(pred["detection_scores"]) >= n
        assert pred["detection_scores"][:n] == pytest.approx([float(s) for s in ref["scores"]], abs=1e-6)
        assert pred["detection_classes"][:n] == [float(c) for c in ref["classes"]]
    # the versioned URL and a named-input instance work too
    body = {"instances": [{"input_tensor": {"b64": body["instances"][0]["b64"]}}]}
    r2 = requests.post(server.url + "/v1/models/shapes/versions/1:predict", json=body, timeout=60)
    assert r2.json()["predictions"][0] == preds[0]


def test_rest_model_metadata_is_the_signature(server, model):
    """GET .../metadata: TF Serving's GetModelMetadata JSON (field names kept, int64 as strings)."""
    import requests
    r = requests.get(server.url + "/v1/models/shapes/metadata", timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_spec"] == {"name": "shapes", "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    info = sig["inputs"]["input_tensor"]
    assert info["dtype"] == "DT_FLOAT" and info["name"].startswith("serving_default_input_tensor")
    assert [d["size"] for d in info["tensor_shape"]["dim"]] == ["-1", "-1", "-1", "3"]
    assert info["tensor_shape"]["unknown_rank"] is False
    assert {"detection_boxes", "detection_scores", "detection_classes", "num_detections"} <= set(sig["outputs"])
    assert requests.get(server.url + "/v1/models/shapes/versions/1/metadata", timeout=60).json() == body
    r = requests.get(server.url + "/v1/models/shapes/versions/2/metadata", timeout=60)
    assert r.status_code == 404 and r.json()["error"] == "Servable not found for request: Specific(shapes, 2)"


def _grpc_request(name, array, dtype=None):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["input_tensor"].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
    return request


def test_grpc_predict_with_the_official_stub_equals_rest(server, model):
    """tensorflow-serving-api's PredictionServiceStub, as TF Serving's own examples call it: the
    same numbers as REST's columnar answer, for a float tensor and for encoded images."""
    import grpc
    import numpy as np
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    from odrun.tasks.detect.detect import load_image
    paths = [model["images"] / "synth_0001.jpg", model["images"] / "synth_0002.jpg"]
    images = np.stack([load_image(str(p)) for p in paths]).astype(np.float32)
    rest = requests.post(server.url + "/v1/models/shapes:predict", timeout=60, json={
        "inputs": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in paths]}).json()["outputs"]
    with grpc.insecure_channel(server.grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for request in (_grpc_request("shapes", images),
                        _grpc_request("shapes", [p.read_bytes() for p in paths], dtype=tf.string)):
            answer = stub.Predict(request, timeout=60)
            assert answer.model_spec.name == "shapes" and answer.model_spec.version.value == 1
            counts = tf.make_ndarray(answer.outputs["num_detections"]).tolist()
            assert counts == rest["num_detections"]
            for key in ("detection_scores", "detection_classes", "detection_boxes"):
                got = tf.make_ndarray(answer.outputs[key])  # [N, max, ...], zero-padded after each count
                for i, n in enumerate(counts):
                    np.testing.assert_allclose(got[i][:int(n)], np.asarray(rest[key][i], dtype=np.float32).reshape(
                        got[i][:int(n)].shape), atol=1e-5, err_msg=key)
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(_grpc_request("nope", images), timeout=60)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "Servable not found for request: Latest(nope)"
        bad = _grpc_request("shapes", images)
        bad.model_spec.signature_name = "other"
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(bad, timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not found in signature def" in \
            err.value.details()


def test_grpc_metadata_and_status_equal_rest(server):
    import grpc
    import requests
    from google.protobuf import json_format
    from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                         prediction_service_pb2_grpc)
    with grpc.insecure_channel(server.grpc) as channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "shapes"
        answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=60)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        assert answer.metadata["signature_def"].Unpack(sig_map)
        rest = requests.get(server.url + "/v1/models/shapes/metadata", timeout=60).json()
        assert json_format.MessageToDict(sig_map, preserving_proto_field_name=True,
                                         including_default_value_fields=True) == rest["metadata"]["signature_def"]
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "shapes"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=60)
        assert [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
                for s in status.model_version_status] == [(1, "AVAILABLE")]


def test_v1_detect_matches_odrun_detect(server, model, detected):
    import requests
    for name in ("synth_0001.jpg", "synth_0003.jpg"):
        with open(str(model["images"] / name), "rb") as f:
            r = requests.post(server.url + "/v1/detect?threshold=0.0", files={"image": (name, f, "image/jpeg")},
                              timeout=60)
        assert r.status_code == 200, r.text
        got = r.json()["detections"]
        want = detected[name]
        assert len(got) == len(want) > 0
        for g, w in zip(got, want):
            assert g["category_id"] == w["category_id"] and g["bbox"] == w["bbox"] and g["score"] == w["score"]
            assert g["category_name"] in ("circle", "square", "triangle")
    raw = requests.post(server.url + "/v1/detect?threshold=0.0", timeout=60,
                        data=(model["images"] / "synth_0001.jpg").read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert [d["bbox"] for d in raw.json()["detections"]] == [d["bbox"] for d in detected["synth_0001.jpg"]]


@pytest.mark.parametrize("path,kwargs,status,words", [
    ("/v1/models/shapes:predict", {"data": b"{not json"}, 400, "JSON Parse error: "),
    ("/v1/models/shapes:predict", {"json": {"rows": []}}, 400, "Missing 'inputs' or 'instances' key"),
    ("/v1/models/shapes:predict", {"json": {"instances": [{"b64": "bm90IGFuIGltYWdl"}]}}, 400, "not a readable image"),
    ("/v1/models/shapes:predict", {"json": {"instances": [{"b64": "***"}]}}, 400, "not valid base64"),
    ("/v1/models/shapes:predict", {"json": {"instances": [[[1, 2]]]}}, 400, "HxWx3"),
    ("/v1/models/other:predict", {"json": {"instances": []}}, 404, "Servable not found"),
    ("/v1/detect", {"data": b"GIF89a garbage"}, 400, "not a readable image"),
    ("/v1/detect", {"data": b""}, 400, "empty body"),
    ("/v1/detect?threshold=2", {"data": b"x"}, 400, "threshold"),
    ("/v1/detect", {"data": b"\0" * (17 * 1024 * 1024)}, 413, "over the limit"),
])
def test_bad_requests_get_json_errors(server, path, kwargs, status, words):
    import requests
    r = requests.post(server.url + path, timeout=60, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_health_metrics_and_access_log(server):
    import requests
    assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/readyz", timeout=5).json()
    assert ready == {"ready": True, "runtime": "onnx", "models": {"shapes": {"version": 1, "runtime": "onnx"}}}
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert 'odrun_requests_total{code="200",route="/v1/detect"}' in text
    assert "odrun_batch_size_bucket" in text and "odrun_request_seconds_bucket" in text
    assert 'odrun_ready 1.0' in text
    assert '"POST /v1/detect' in server.output()  # access log line


def _post_many(url, body, count):
    import requests
    results = [None] * count

    def one(i):
        results[i] = requests.post(url, json=body, timeout=120)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _batch_sizes(url):
    """{batch size bucket: model calls} from /metrics (cumulative histogram -> per bucket)."""
    import re
    import requests
    text = requests.get(url + "/metrics", timeout=5).text
    buckets = [(float(le), float(n)) for le, n in re.findall(r'odrun_batch_size_bucket\{le="([0-9.]+)"\} ([0-9.]+)', text)]
    calls, below = {}, 0.0
    for le, n in sorted(buckets):
        calls[int(le)] = n - below
        below = n
    return calls


def test_batching_fills_under_load_and_never_holds_a_lone_request(model, tmp_path):
    import requests
    # a slow model (+300 ms per call) and a long window: a lone request must not wait for it,
    # and requests that arrive while the model runs go into one call together
    s = serve(tmp_path, model, "--runtime", "onnx", "--max-batch", 8, "--batch-timeout-ms", 3000, "--delay-ms", 300)
    try:
        body = {"instances": [{"b64": base64.b64encode((model["images"] / "synth_0001.jpg").read_bytes()).decode()}]}
        before = _batch_sizes(s.url)
        t0 = time.time()
        assert requests.post(s.url + "/v1/models/shapes:predict", json=body, timeout=60).status_code == 200
        lone = time.time() - t0
        assert lone < 2.0, "a lone request waited {:.2f} s (the 3 s batching window)".format(lone)
        results = _post_many(s.url + "/v1/models/shapes:predict", body, 12)
        assert sorted(r.status_code for r in results) == [200] * 12
        after = _batch_sizes(s.url)
        calls = {k: after[k] - before.get(k, 0) for k in after}
        assert calls[1] >= 1  # the lone request
        assert sum(n for k, n in calls.items() if k > 1) >= 1, calls  # some call carried several images
        assert sum(calls.values()) < 13, calls  # 13 requests in fewer calls
        preds = [r.json()["predictions"][0] for r in results]
        for p in preds:  # batched answers agree with each other (float noise of batched convolutions aside)
            assert p["detection_classes"][:5] == preds[0]["detection_classes"][:5]
            assert max(abs(a - b) for a, b in zip(p["detection_scores"], preds[0]["detection_scores"])) < 1e-3
    finally:
        s.stop()


def test_full_queue_gets_503_with_retry_after(model, tmp_path):
    s = serve(tmp_path, model, "--runtime", "onnx", "--max-batch", 1, "--queue", 1, "--delay-ms", 400)
    try:
        body = {"instances": [{"b64": base64.b64encode((model["images"] / "synth_0001.jpg").read_bytes()).decode()}]}
        results = _post_many(s.url + "/v1/models/shapes:predict", body, 6)
        codes = sorted(r.status_code for r in results)
        assert 200 in codes and 503 in codes, codes
        busy = [r for r in results if r.status_code == 503][0]
        assert busy.headers["Retry-After"] == "1" and "queue full" in busy.json()["error"]
        import requests
        assert "odrun_rejected_total" in requests.get(s.url + "/metrics", timeout=5).text
    finally:
        s.stop()


def test_sigterm_lets_the_request_in_flight_finish(model, tmp_path):
    import requests
    s = serve(tmp_path, model, "--runtime", "onnx", "--delay-ms", 1500)
    body = {"instances": [{"b64": base64.b64encode((model["images"] / "synth_0001.jpg").read_bytes()).decode()}]}
    result = {}
    t = threading.Thread(target=lambda: result.update(r=requests.post(s.url + "/v1/models/shapes:predict",
                                                                       json=body, timeout=60)))
    t.start()
    time.sleep(0.5)  # the request is in the model call now
    s.proc.send_signal(signal.SIGTERM)
    t.join(60)
    rc = s.proc.wait(60)
    output = s.output()
    s.stop()
    assert result["r"].status_code == 200, output
    assert len(result["r"].json()["predictions"]) == 1
    assert rc == 143, output  # 128 + SIGTERM, after the request in flight finished
    with pytest.raises(requests.ConnectionError):
        requests.get(s.url + "/healthz", timeout=2)


def test_serve_refuses_a_missing_runtime_form(model, tmp_path):
    proc = run_cli("odrun", "serve", "--model", tmp_path, check=2)
    assert "metadata.json" in proc.stderr
    proc = run_cli("odrun", "serve", "--model", model["export"], "--max-batch", 0, check=2)
    assert "--max-batch" in proc.stderr


@pytest.mark.parametrize("runtime", ["tflite", "saved_model"])
def test_serve_keeps_library_lines_off_the_terminal(model, runtime):
    """Issue #25, through a real pty: TFLite's `Created TensorFlow Lite XNNPACK delegate` and TF's
    `Error in PredictCost()` / C++ start-up lines went to the terminal of `odrun serve`; they go
    to the log it names, while its own lines (ready, serving, the access log) stay."""
    import requests
    from ptyrun import PtyRun
    port = free_port()
    term = PtyRun([bin_path("odrun"), "serve", "--model", model["export"], "--port", port, "--name", "shapes",
                   "--runtime", runtime]).start()
    assert term.wait_for(lambda text: "serving shapes on" in text, timeout=180), term.text()[-3000:]
    image = (model["images"] / "synth_0000.jpg").read_bytes()
    r = requests.post("http://127.0.0.1:{}/v1/detect".format(port), files={"image": image}, timeout=60)
    assert r.status_code == 200, r.text
    assert term.wait_for(lambda text: '"POST /v1/detect' in text, timeout=30)  # the access log: ours
    term.interrupt()
    assert term.wait(60) == 130
    text = term.text()
    for noise in ("XNNPACK", "PredictCost", "tensorflow/core", "oneDNN", "UserWarning"):
        assert noise not in text, (noise, text[-3000:])
    log = re.search(r"library output \(TensorFlow, TFLite, absl\): (\S+)", text).group(1)
    logged = open(log, errors="replace").read()
    if runtime == "tflite":
        assert "XNNPACK" in logged, logged[-2000:]
    os.unlink(log)


def test_a_tensorflow_verb_exits_right_after_its_last_line(model, tmp_path):
    """Issue #25: the segment demo took 9 s to exit after its summary (TensorFlow's teardown at
    interpreter exit; `odrun detect` on a SavedModel: 3.3 s here). odrun.cli.leave exits at once."""
    proc = subprocess.Popen([bin_path("odrun"), "detect", "--model", str(model["export"]), str(model["images"]),
                             "--out", str(tmp_path / "det"), "--runtime", "saved_model", "--no-images",
                             "--threshold", "0"],  # the shared model is barely trained: keep every box
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last, lines = None, []
    for line in iter(proc.stdout.readline, b""):
        last = time.time()
        lines.append(line.decode(errors="replace"))
    rc = proc.wait()
    gap = time.time() - last
    assert rc == 0, "".join(lines)[-3000:]
    assert "24 images" in "".join(lines)
    assert gap < 1.5, gap  # was 3-9 s
    assert len(json.load(open(str(tmp_path / "det" / "detections.json")))) > 0  # all written before leaving
