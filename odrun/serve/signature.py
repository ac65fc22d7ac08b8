"""The export's SignatureDefs, as TF Serving's GetModelMetadata answers them (REST and gRPC).

Read from EXPORT/1/saved_model.pb (the TF Serving version folder `odrun export` writes) once,
on the first metadata request: the TensorFlow protos import TensorFlow, which a server on a
TF-free runtime (onnx, tflite) must not pay for at start-up.
"""
import os

VERSION_DIRS = ("", "1", "saved_model")  # a version folder itself; EXPORT/1 (TF Serving's layout); saved_model/


def saved_model_path(export_dir):
    for name in VERSION_DIRS:
        path = os.path.join(export_dir, name, "saved_model.pb")
        if os.path.isfile(path):
            return path
    return None


def signature_defs(export_dir):
    """-> {key: tensorflow.SignatureDef} of the `serve` meta graph ({} without a SavedModel)."""
    path = saved_model_path(export_dir)
    if path is None:
        return {}
    from tensorflow.core.protobuf import saved_model_pb2
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved.ParseFromString(f.read())
    graphs = [g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags] or list(saved.meta_graphs)
    return dict(graphs[0].signature_def.items()) if graphs else {}


def metadata_json(name, version, sigs):
    """The REST body: TF Serving's ToJsonString(GetModelMetadataResponse) (http_rest_api_util.cc):
    proto field names kept, default values printed, the SignatureDefMap unpacked from its Any
    (ModelSpec's int64 version prints as a string; its unset version_label oneof not at all)."""
    from google.protobuf import json_format
    opts = dict(preserving_proto_field_name=True, including_default_value_fields=True)
    return {"model_spec": {"name": name, "signature_name": "", "version": str(int(version))},
            "metadata": {"signature_def": {"signature_def": {
                key: json_format.MessageToDict(sig, **opts) for key, sig in sorted(sigs.items())}}}}



def find(sigs, name, error, texts):
    """The SignatureDef `name`, or `error` (codecs.BadRequest) with TF Serving's text (rest.json)."""
    if name not in sigs:
        raise error(texts["no_signature_classify"]["value"].format(signature=name))
    return sigs[name]


def check_classify(sig, error, texts):
    """PreProcessClassification (classifier.cc) with TF Serving's default flags (no
    --enable_signature_method_name_check): one input `inputs`, outputs `classes` and/or `scores`."""
    said = texts["classify_shape"]["value"]
    if len(sig.inputs) != 1:
        raise error(said["inputs"])
    if len(sig.outputs) not in (1, 2):
        raise error(said["outputs"].format(count=len(sig.outputs)))
    if "inputs" not in sig.inputs:
        raise error("No classification inputs found in SignatureDef: {}".format(sig))
    if "classes" not in sig.outputs and "scores" not in sig.outputs:
        raise error('Expected classification signature outputs to contain at least one of "classes" or '
                    '"scores". Signature was: {}'.format(sig))


def check_regress(sig, error, texts):
    """PreProcessRegression (regressor.cc), default flags: one input `inputs`, one output `outputs`."""
    said = texts["regress_shape"]["value"]
    if len(sig.inputs) != 1:
        raise error(said["inputs"])
    if len(sig.outputs) != 1:
        raise error(said["outputs"])
    if "inputs" not in sig.inputs:
        raise error("No regression inputs found in SignatureDef: {}".format(sig))
    if "outputs" not in sig.outputs:
        raise error("No regression outputs found in SignatureDef: {}".format(sig))
