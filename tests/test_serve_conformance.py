"""Issue 26: `odrun serve` walks TF Serving's REST API document (tensorflow.org/tfx/serving/api_rest)
request form by request form, for the three kinds of export: a detector (tests/_shared.py's SSD,
served via ONNX), a Mask R-CNN and a classifier (tests/_shared.py's tiny ones). Each server is a real
`odrun serve` subprocess on a free 127.0.0.1 port, driven with `requests`.

Expected texts are TF Serving's (odrun/serve/rest.json cites each one's source file in
tensorflow/serving); the answers' shapes are the export's own SignatureDefs (the metadata answer,
read from EXPORT/1/saved_model.pb). Where odrun deliberately differs (b64 images into a float
input, the R-CNN outputs that are not one row per image) the test says so."""
import base64
import io
import json

import numpy as np
import pytest

from _shared import Server

pytestmark = [pytest.mark.tf, pytest.mark.slow]

KINDS = ("classifier", "mask_rcnn", "detector")  # the SSD last: test_export_serve builds it meanwhile
NAME = {"detector": "shapes", "mask_rcnn": "masks", "classifier": "flowers"}
NOT_PER_IMAGE = {"anchors", "image_shape", "box_classifier_features", "class_predictions_with_background",
                 "mask_predictions", "refined_box_encodings"}  # odrun/runtimes NOT_PER_IMAGE


FIXTURE = {"detector": "ssd_tf2", "mask_rcnn": "mask_rcnn_export", "classifier": "classifier_export"}


def export_of(request, kind):
    """(export folder, two image files of its data): the shared artefact is built (or waited for)
    only when a test of that kind first needs it."""
    info = request.getfixturevalue(FIXTURE[kind])
    if kind == "detector":
        return info["export"], [info["images"] / "synth_0001.jpg", info["images"] / "synth_0002.jpg"]
    if kind == "mask_rcnn":
        return info["export"], sorted(info["src"].glob("*.jpg"))[:2]
    return info["export"], sorted(info["images"].glob("*/*.jpg"))[:2]


@pytest.fixture(scope="module")
def started():
    """kind -> its Server, one per kind for the whole module, stopped at its end."""
    servers = {}
    try:
        yield servers
    finally:
        for s in servers.values():
            s.stop()


@pytest.fixture
def use(request, started, tmp_path_factory):
    """use(kind) -> (server, export folder, two images), the server (REST and gRPC, tests/_shared.py's
    Server) started on first use; 600 s to ready: Mask R-CNN's restore + trace on a loaded machine."""
    def get(kind):
        export, images = export_of(request, kind)
        if kind not in started:
            log = tmp_path_factory.mktemp("conformance") / (kind + ".log")
            started[kind] = Server(log, "--model", export, name=NAME[kind], grpc=True, ready_s=600)
        return started[kind], export, images
    return get


def b64(path):
    return {"b64": base64.b64encode(path.read_bytes()).decode()}


def signature_defs(server):
    r = server.get("/v1/models/{name}/metadata")
    assert r.status_code == 200, r.text
    return r.json()["metadata"]["signature_def"]["signature_def"]


def error_of(r, status):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"], body  # FillJsonErrorMsg: {"error": "<message>"}
    return body["error"]


# ------------------------------------------------------------------ Model status API
@pytest.mark.parametrize("kind", KINDS)
def test_model_status_versions_and_labels(use, kind):
    s, export, images = use(kind)
    available = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                           "status": {"error_code": "OK", "error_message": ""}}]}
    assert s.get("/v1/models/{name}").json() == available
    assert s.get("/v1/models/{name}/versions/1").json() == available
    assert error_of(s.get("/v1/models/{name}/versions/7"), 404) == "Could not find version 7 of model " + s.name
    # TF Serving's path regexes take /versions/(\d+): a name there is malformed, a number past int64 not numeric
    assert error_of(s.get("/v1/models/{name}/versions/abc"), 400) == \
        "Malformed request: GET /v1/models/{}/versions/abc".format(s.name)
    assert error_of(s.get("/v1/models/{name}/versions/99999999999999999999/metadata"), 400) == \
        "Failed to convert version: 99999999999999999999 to numeric."
    assert error_of(s.get("/v1/models/nope"), 404) == "Could not find any versions of model nope"
    assert error_of(s.get("/v1/models/{name}/labels/stable"), 400) == "Unrecognized servable version label: stable"
    assert error_of(s.get("/v1/models"), 400) == "Missing model name in request."


# ------------------------------------------------------------------ Model Metadata API
@pytest.mark.parametrize("kind", KINDS)
def test_model_metadata(use, kind):
    s, export, images = use(kind)
    r = s.get("/v1/models/{name}/metadata")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_spec"] == {"name": s.name, "signature_name": "", "version": "1"}
    assert s.get("/v1/models/{name}/versions/1/metadata").json() == body
    sigs = body["metadata"]["signature_def"]["signature_def"]
    meta = json.loads((export / "metadata.json").read_text())
    default = sigs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    if kind == "classifier":
        assert set(meta["signatures"]) <= set(sigs)
        assert sigs["classification"]["method_name"] == "tensorflow/serving/classify"
        assert set(sigs["classification"]["outputs"]) == {"classes", "scores"}
        assert sigs["classification"]["outputs"]["classes"]["dtype"] == "DT_STRING"
    else:
        assert sorted(default["outputs"]) == sorted(meta["signature"]["outputs"])
        assert default["inputs"]["input_tensor"]["dtype"] == "DT_FLOAT"
    assert error_of(s.get("/v1/models/nope/metadata"), 404) == "Servable not found for request: Latest(nope)"


# ------------------------------------------------------------------ Predict API: detectors
def _shape(sig_output):
    return [int(d["size"]) for d in sig_output["tensor_shape"]["dim"]]


@pytest.mark.parametrize("kind", ["detector", "mask_rcnn"])
def test_predict_row_format_gives_every_output(use, kind):
    s, export, images = use(kind)
    outputs = signature_defs(s)["serving_default"]["outputs"]
    r = s.post("/v1/models/{name}:predict", {"instances": [b64(p) for p in images]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 2
    want = set(outputs) - NOT_PER_IMAGE
    if kind == "detector":
        assert want == set(outputs) and len(want) == 8  # the OD API's 8 detection outputs
    else:
        assert {"detection_masks", "detection_boxes", "num_detections"} <= want
    for pred in preds:
        assert set(pred) == want
        for key in want:
            fixed = _shape(outputs[key])[1:]
            got = list(np.asarray(pred[key]).shape)
            assert len(got) == len(fixed) and all(f in (-1, g) for f, g in zip(fixed, got)), (key, got, fixed)
        n = int(pred["num_detections"])
        assert 0 <= n <= len(pred["detection_scores"])
        assert pred["detection_scores"][:n] == sorted(pred["detection_scores"][:n], reverse=True)
    if kind == "mask_rcnn":
        masks = np.asarray(preds[0]["detection_masks"])
        assert masks.ndim == 3 and masks.shape[0] == len(preds[0]["detection_scores"])
        assert masks.min() >= 0.0 and masks.max() <= 1.0
    # named input, explicit signature_name, versions/1: the same answer
    for path, body in (("/v1/models/{name}:predict", {"instances": [{"input_tensor": b64(images[0])}]}),
                       ("/v1/models/{name}/versions/1:predict",
                        {"signature_name": "serving_default", "instances": [b64(images[0])]})):
        again = s.post(path, body)
        assert again.status_code == 200, again.text
        assert again.json()["predictions"][0] == preds[0]


@pytest.mark.parametrize("kind", ["detector", "mask_rcnn"])
def test_predict_columnar_format_and_pixel_lists(use, kind):
    from PIL import Image
    s, export, images = use(kind)
    rows = s.post("/v1/models/{name}:predict", {"instances": [b64(p) for p in images]}).json()["predictions"]
    for body in ({"inputs": {"input_tensor": [b64(p) for p in images]}}, {"inputs": [b64(p) for p in images]}):
        r = s.post("/v1/models/{name}:predict", body)
        assert r.status_code == 200, r.text
        outputs = r.json()["outputs"]
        assert set(outputs) == set(rows[0])
        for key, value in outputs.items():
            assert value == [row[key] for row in rows], key
    pixels = np.asarray(Image.open(io.BytesIO(images[0].read_bytes())).convert("RGB")).tolist()
    r = s.post("/v1/models/{name}:predict", {"instances": [pixels]})  # an HxWx3 list: the float input itself
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"][0]["detection_boxes"], rows[0]["detection_boxes"], atol=1e-5)


def test_mask_rcnn_masks_on_v1_detect(use):
    """Every detection of /v1/detect carries its mask (COCO RLE at the image's size), as many as :predict's
    num_detections for the same image. The shared Mask R-CNN is trained 1 step: its box head gives
    zero-area boxes (pruned, 0 detections) on some images, so all 6 of its images are sent."""
    s, export, images = use("mask_rcnn")
    found = 0
    for path in sorted(images[0].parent.glob("*.jpg")):
        r = s.post("/v1/detect?threshold=0", data=path.read_bytes(), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        dets, size = r.json()["detections"], [r.json()["image"]["height"], r.json()["image"]["width"]]
        assert all(set(d["segmentation"]) == {"size", "counts"} and d["segmentation"]["size"] == size for d in dets)
        pred = s.post("/v1/models/{name}:predict", {"instances": [b64(path)]}).json()["predictions"][0]
        assert len(dets) == int(pred["num_detections"]), path.name
        found += len(dets)
    assert found > 0, "no detection with a mask on any of the 6 images"


# ------------------------------------------------------------------ Predict API: classifier signatures
def test_classifier_predict_on_its_signatures(use):
    s, export, images = use("classifier")
    meta = json.loads((export / "metadata.json").read_text())
    classes = len(meta["classes"])
    r = s.post("/v1/models/{name}:predict", {"instances": [b64(p) for p in images]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 2 and all(set(p) == {"probabilities", "classes", "scores"} for p in preds)
    for p in preds:
        assert len(p["probabilities"]) == classes and abs(sum(p["probabilities"]) - 1) < 1e-4
        assert p["classes"] == int(np.argmax(p["probabilities"])) and p["scores"] == max(p["probabilities"])
    col = s.post("/v1/models/{name}:predict", {"inputs": {"images": [b64(p) for p in images]}}).json()["outputs"]
    assert col == {k: [p[k] for p in preds] for k in preds[0]}
    assert s.post("/v1/models/{name}:predict", {"inputs": [b64(p) for p in images]}).json()["outputs"] == col
    from PIL import Image
    pixels = [np.asarray(Image.open(str(p)).convert("RGB")).tolist() for p in images]
    r = s.post("/v1/models/{name}:predict", {"signature_name": "classify_pixels", "instances": pixels})
    assert r.status_code == 200, r.text
    assert [p["classes"] for p in r.json()["predictions"]] == [p["classes"] for p in preds]
    assert error_of(s.post("/v1/models/{name}:predict", {"instances": [1]}), 400) == \
        "JSON Value: 1 Type: Number is not of expected type: string"


def _classifier_grpc(s, signature, name, tensor):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = s.name, signature
    request.inputs[name].CopyFrom(tensor)
    with grpc.insecure_channel(s.grpc) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=120)


def test_grpc_predict_on_the_classifier_equals_rest(use):
    """tensorflow-serving-api's PredictionServiceStub on a classifier export: serving_default fed encoded
    images and classify_pixels fed uint8 pixels answer REST's columnar :predict, output by output."""
    import grpc
    import tensorflow as tf
    from PIL import Image
    s, export, images = use("classifier")
    pixels = np.stack([np.asarray(Image.open(str(p)).convert("RGB")) for p in images])
    for signature, name, value, tensor in (
            ("serving_default", "images", [b64(p) for p in images], tf.make_tensor_proto([p.read_bytes() for p in images])),
            ("classify_pixels", "pixels", pixels.tolist(), tf.make_tensor_proto(pixels))):
        rest = s.post("/v1/models/{name}:predict", {"signature_name": signature, "inputs": {name: value}})
        assert rest.status_code == 200, rest.text
        answer = _classifier_grpc(s, signature, name, tensor)
        assert answer.model_spec.name == s.name and answer.model_spec.version.value == 1
        assert answer.model_spec.signature_name == signature
        assert set(answer.outputs) == set(rest.json()["outputs"]) == {"probabilities", "classes", "scores"}
        for key, want in rest.json()["outputs"].items():
            np.testing.assert_allclose(tf.make_ndarray(answer.outputs[key]), np.asarray(want), atol=1e-6, err_msg=key)
    with pytest.raises(grpc.RpcError) as err:
        _classifier_grpc(s, "serving_default", "pixels", tf.make_tensor_proto(pixels))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # TF Serving's predict_util.cc texts (rest.json)
    assert err.value.details() == "input tensor alias not found in signature: pixels. Inputs expected to be in " \
        "the set {images}."
    with pytest.raises(grpc.RpcError) as err:
        _classifier_grpc(s, "nope", "images", tf.make_tensor_proto([images[0].read_bytes()]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == 'Serving signature name: "nope" not found in signature def'


# ------------------------------------------------------------------ Classify and Regress API
def test_classify_and_regress_on_the_classifier(use):
    s, export, images = use("classifier")
    names = [c["name"] for c in json.loads((export / "metadata.json").read_text())["classes"]]
    probs = [p["probabilities"] for p in s.post("/v1/models/{name}:predict",
                                                {"instances": [b64(p) for p in images]}).json()["predictions"]]
    body = {"signature_name": "classification", "examples": [{"image/encoded": b64(p)} for p in images]}
    r = s.post("/v1/models/{name}:classify", body)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert [[label for label, _ in row] for row in result] == [names, names]
    for row, want in zip(result, probs):
        assert [score for _, score in row] == pytest.approx(want, abs=1e-6)
    # the context's features go into every example; versions/1 answers the same
    with_context = {"signature_name": "classification", "context": {"image/encoded": b64(images[0])},
                    "examples": [{}, {"image/encoded": [b64(images[1])]}]}
    assert s.post("/v1/models/{name}/versions/1:classify", with_context).json()["result"] == result
    # TF Serving's answers where it cannot classify or regress (classifier.cc / regressor.cc)
    examples = {"examples": [{"image/encoded": b64(images[0])}]}
    assert error_of(s.post("/v1/models/{name}:classify", examples), 400) == \
        "Expected one or two output Tensors, found 3"  # serving_default: probabilities, classes, scores
    assert error_of(s.post("/v1/models/{name}:regress", examples), 400) == "Expected one output Tensor."
    assert error_of(s.post("/v1/models/{name}:regress", dict(examples, signature_name="classification")), 400) == \
        "Expected one output Tensor."
    assert error_of(s.post("/v1/models/{name}:classify", dict(examples, signature_name="nope")), 400) == \
        "No signature was found with the name: nope"
    assert error_of(s.post("/v1/models/{name}:classify", {"signature_name": "classification"}), 400) == \
        'JSON Value: {"signature_name":"classification"} When method is classify, key \'examples\' is expected ' \
        'and was not found'
    assert error_of(s.post("/v1/models/{name}:classify", {"examples": []}), 400) == \
        "JSON Value: {\"examples\":[]} 'examples' value is an empty array"
    assert error_of(s.post("/v1/models/nope:classify", examples), 404) == "Servable not found for request: Latest(nope)"


@pytest.mark.parametrize("kind", ["detector", "mask_rcnn"])
def test_classify_and_regress_on_a_detector(use, kind):
    s, export, images = use(kind)
    count = len(signature_defs(s)["serving_default"]["outputs"])
    examples = {"examples": [{"x": 1}]}
    assert error_of(s.post("/v1/models/{name}:classify", examples), 400) == \
        "Expected one or two output Tensors, found {}".format(count)
    assert error_of(s.post("/v1/models/{name}:regress", examples), 400) == "Expected one output Tensor."


# ------------------------------------------------------------------ errors: bodies and codes
@pytest.mark.parametrize("kind", KINDS)
def test_error_bodies_and_codes(use, kind):
    s, export, images = use(kind)
    image = b64(images[0])
    n = s.name
    assert error_of(s.get("/v1/models/{name}:predict"), 400) == "Malformed request: GET /v1/models/{}:predict".format(n)
    assert error_of(s.post("/v1/models/{name}:explain", {}), 400) == \
        "Malformed request: POST /v1/models/{}:explain".format(n)
    assert error_of(s.post("/v1/models/{name}", {}), 400) == "Malformed request: POST /v1/models/{}".format(n)
    assert error_of(s.post("/v1/models/nope:predict", {"instances": [image]}), 404) == \
        "Servable not found for request: Latest(nope)"
    assert error_of(s.post("/v1/models/{name}/versions/3:predict", {"instances": [image]}), 404) == \
        "Servable not found for request: Specific({}, 3)".format(n)
    assert error_of(s.post("/v1/models/{name}/versions/v3:predict", {"instances": [image]}), 400) == \
        "Malformed request: POST /v1/models/{}/versions/v3:predict".format(n)
    assert error_of(s.post("/v1/models/{name}/labels/canary:predict", {"instances": [image]}), 400) == \
        "Unrecognized servable version label: canary"
    assert error_of(s.post("/v1/models/{name}:predict", {"signature_name": "nope", "instances": [image]}), 400) == \
        'Serving signature name: "nope" not found in signature def'
    assert error_of(s.post("/v1/models/{name}:predict", {"signature_name": 3, "instances": [image]}), 400) == \
        "JSON Value: 3 not formatted correctly. 'signature_name' key must be a string value."
    assert error_of(s.post("/v1/models/{name}:predict", {"rows": []}), 400) == "Missing 'inputs' or 'instances' key"
    assert error_of(s.post("/v1/models/{name}:predict", {"instances": []}), 400) == \
        "JSON Value: {\"instances\":[]} No values in 'instances' array"
    assert error_of(s.post("/v1/models/{name}:predict", {"instances": image}), 400).endswith(
        "Expecting 'instances' to be an list/array")
    both = {"instances": [image], "inputs": [image]}
    assert error_of(s.post("/v1/models/{name}:predict", both), 400).endswith(
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")
    assert error_of(s.post("/v1/models/{name}:predict", data=b"{not json"), 400) == \
        "JSON Parse error: Expecting property name enclosed in double quotes. at offset: 1"
