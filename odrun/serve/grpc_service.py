"""TF Serving's gRPC API beside REST (`odrun serve --grpc-port`): PredictionService.Predict and
GetModelMetadata, ModelService.GetModelStatus, on the protos of `tensorflow-serving-api`, so the
official client stubs (prediction_service_pb2_grpc.PredictionServiceStub) work unchanged. Every
answer is REST's: the same batcher, the same outputs, the same error texts (rest.json) with the
gRPC code TF Serving gives them.

Loaded only with --grpc-port (grpcio, tensorflow-serving-api and TensorFlow's tensor protos).
"""

import grpc
import numpy as np
from grpc import aio
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from odrun.serve import codecs, handlers, keys

CODE = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
        429: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.UNAVAILABLE}
ERROR_UNKNOWN = 2  # tensorflow.error.Code UNKNOWN (tsl/protobuf/error_codes.proto): a version's load error
UINT8_KINDS = ("DT_UINT8", "DT_FLOAT", "DT_HALF", "DT_DOUBLE", "DT_INT32", "DT_INT64")


def tf_protos():
    """TensorFlow's make_ndarray/make_tensor_proto (imported on first use: TF is heavy)."""
    import tensorflow as tf
    return tf.make_ndarray, tf.make_tensor_proto, tf.dtypes.as_dtype


def check_spec(app, spec):
    """The ModelSpec of a request, checked as REST's path is: -> (Version, signature) or RestError."""
    version = spec.version.value if spec.HasField("version") else None
    found = app[keys.STATE].registry.find(spec.name, version, spec.version_label or None)
    return found, spec.signature_name or handlers.REST["default_signature"]["value"]


def images_of(inputs, options):
    """PredictRequest.inputs -> [HxWx3 uint8]: the one input, a DT_STRING batch of encoded images
    (the exporter's encoded_image_string_tensor form) or a [N, H, W, 3] number tensor."""
    if len(inputs) != 1:
        raise codecs.BadRequest("expected exactly one input (input_tensor), got {}".format(sorted(inputs) or "none"))
    (name, proto), = inputs.items()
    make_ndarray, _, as_dtype = tf_protos()
    kind = as_dtype(proto.dtype).name
    if kind == "string":
        return [codecs.decode_image(bytes(v), options, "{}[{}]".format(name, i)) for i, v in enumerate(proto.string_val)]
    dims = [d.size for d in proto.tensor_shape.dim]
    if len(dims) != 4 or dims[-1] != 3 or min(dims) < 1:
        raise codecs.BadRequest("input {} must be [N, H, W, 3] (got {})".format(name, dims))
    codecs.check_budget([("{}[{}]".format(name, i), dims[2], dims[1]) for i in range(dims[0])], options)
    array = make_ndarray(proto)
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 255:
        raise codecs.BadRequest("input {} holds values outside 0..255".format(name))
    return list(array.astype(np.uint8))


def padded(values):
    """Per-image lists of detections -> one [N, max, ...] float32 array, zero-padded at the end (the
    SavedModel's own outputs are [N, max_detections, ...]; num_detections says how many are real)."""
    arrays = [np.asarray(v, dtype=np.float32) for v in values]
    if not arrays or arrays[0].ndim == 0:
        return np.asarray(arrays, dtype=np.float32)
    longest = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), longest) + arrays[0].shape[1:], dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
    return out


def outputs_of(dets):
    """REST's columnar outputs as TensorProtos (float32, as the SavedModel's signature gives them)."""
    _, make_tensor_proto, _ = tf_protos()
    answer = codecs.predict_answer(dets, True)["outputs"]
    return {k: make_tensor_proto(padded(v)) for k, v in answer.items()}


async def abort(context, exc):
    await context.abort(CODE.get(getattr(exc, "status", 400), grpc.StatusCode.INVALID_ARGUMENT), str(exc))


class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, app):
        self.app = app

    async def Predict(self, request, context):
        try:
            version, sig = check_spec(self.app, request.model_spec)
            if sig not in version.signature_names:
                raise handlers.RestError("no_signature", signature=sig)
            state = self.app[keys.STATE]
            state.grpc_calls += 1  # the batcher runs a lone call on the loop (app.State.lone)
            try:
                if version.classifier is not None:  # its own signatures, as REST's :predict runs them
                    outputs = await classifier_outputs(self.app, request.inputs, version, sig)
                else:
                    images = images_of(request.inputs, self.app[keys.OPTIONS])
                    outputs = outputs_of(await run_model(self.app, images, version))
            finally:
                state.grpc_calls -= 1
        except (codecs.BadRequest, handlers.RestError) as exc:
            return await abort(context, exc)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version.number
        response.model_spec.signature_name = sig
        for key, proto in outputs.items():
            response.outputs[key].CopyFrom(proto)
        return response

    async def GetModelMetadata(self, request, context):
        try:
            version, _ = check_spec(self.app, request.model_spec)
            sigs = await handlers.signatures_of(version, request.model_spec.name)  # REST's reader
        except (codecs.BadRequest, handlers.RestError) as exc:
            return await abort(context, exc)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version.number
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in sigs.items():
            sig_map.signature_def[key].CopyFrom(sig)
        response.metadata["signature_def"].Pack(sig_map)
        return response


class Models(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, app):
        self.app = app

    async def GetModelStatus(self, request, context):
        """Every version seen (newest first) or the one asked, with state and load error (as REST)."""
        spec = request.model_spec
        try:
            versions = self.app[keys.STATE].registry.status(
                spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label or None)
        except handlers.RestError as exc:
            return await abort(context, exc)
        status = get_model_status_pb2.ModelVersionStatus
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            entry = response.model_version_status.add()
            entry.version, entry.state = version.number, status.State.Value(version.state)
            if version.error is not None:
                entry.status.error_code = ERROR_UNKNOWN
                entry.status.error_message = version.error
        return response


async def classifier_outputs(app, inputs, version, sig):
    """A classifier version's signature `sig` on PredictRequest.inputs (named as the signature names
    them) -> its outputs as TensorProtos: REST's :predict (handlers.predict_signature) in protos."""
    make_ndarray, make_tensor_proto, _ = tf_protos()
    rt = version.classifier
    specs = rt.specs(sig)
    sent, wanted = sorted(inputs), sorted(specs)
    if len(sent) != len(wanted):
        raise handlers.RestError("input_count", sent=len(sent), wanted=len(wanted), sent_names=",".join(sent),
                                 wanted_names=",".join(wanted), extra=",".join(n for n in sent if n not in specs),
                                 missing=",".join(n for n in wanted if n not in inputs))
    for name in sent:
        if name not in specs:
            raise handlers.RestError("input_alias", alias=name, wanted_names=",".join(wanted))
    arrays = {}
    for name, proto in inputs.items():
        try:
            arrays[name] = make_ndarray(proto)
        except (TypeError, ValueError) as exc:
            raise codecs.BadRequest("input {} is not a readable TensorProto ({})".format(name, exc))
    out = await handlers.run_classifier(_AppRequest(app), version, rt.run, sig, arrays)
    return {key: make_tensor_proto(value) for key, value in out.items()}


async def run_model(app, images, version):
    """The REST path's batcher: 503 while loading or when the queue is full."""
    dets, error = await handlers.infer(_AppRequest(app), images, version)
    if error is not None:
        raise codecs.NoMemory(json_message(error))
    return dets


class _AppRequest(object):
    """What handlers.infer reads of a request: its app."""

    def __init__(self, app):
        self.app = app


def json_message(response):
    import json
    return json.loads(response.body.decode("utf-8"))["error"]


def server(app, host, port):
    """A gRPC server bound to host:port (not started): a port in use is exit 2 before the model loads."""
    srv = aio.server(options=[("grpc.max_receive_message_length", app[keys.OPTIONS].max_body)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(app), srv)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(app), srv)
    address = "[{}]:{}".format(host, port) if ":" in host else "{}:{}".format(host, port)
    bound = srv.add_insecure_port(address)
    if not bound:
        raise OSError("cannot bind " + address)
    return srv
