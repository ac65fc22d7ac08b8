"""bench/serve.py: `odrun serve` against the same model run offline, one run, every ratio issue 26 asks for.

    .venv/bin/python bench/serve.py [--model EXPORT_DIR | --image-sizes 96,300] [--requests 200]
                                    [--runtime onnx] [--repeat 3]

Per round, side by side on the same machine (one 320x240 JPEG per request):
- offline: the runtime loaded as `odrun detect` loads it (and as the server loads it: its thread count),
  in this process, images already decoded, batches of 8: the best images/s of the two; measured right
  after the 16-client REST pair (the servers idle);
- direct call: decode + one model call on one image, in this process: p50 and p99 (the latency floor),
  right after the 1-client REST pair;
- REST: `odrun serve` with batching (--max-batch 8) and without (--max-batch 1), both up at once and measured
  back to back at each client count (order flipped every other round), 1/4/16 client threads,
  each a keep-alive raw-socket HTTP/1.1 connection (a light load generator: the clients share the cores),
  TF Serving predict requests ({"instances": [{"b64": ...}]});
- gRPC: the batching server's --grpc-port through tensorflow-serving-api's PredictionServiceStub
  (the encoded image as a DT_STRING input_tensor), 1 and 16 clients, beside REST's numbers.
Each ratio is the median over --repeat rounds (the rounds are printed too). Servers are real
subprocesses on free ports, stopped with SIGTERM.

Goals (issue 26): REST req/s at 16 clients >= 0.6 x offline images/s; batching / no batching >= 1 at every
client count; REST p99 at 1 client <= 1.3 x the direct call (against its p99, and against its p50).
"""
import argparse
import base64
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# run as a script, bench/ is sys.path[0] and bench/inspect.py would hide the standard library's inspect
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))
from bench.common import ratio, report  # noqa: E402

CLIENTS = (1, 4, 16)
GRPC_CLIENTS = (1, 16)
BATCH = 8


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(model, runtime, max_batch, logdir, grpc_port=None):
    port = free_port()
    odrun = os.path.join(os.path.dirname(sys.executable), "odrun")
    log = os.path.join(logdir, "serve-{}.log".format(port))
    cmd = [odrun, "serve", "--model", model, "--port", str(port), "--name", "m", "--runtime", runtime,
           "--max-batch", str(max_batch), "--queue", "256", "--access-log", os.path.join(logdir, "access.log")]
    if grpc_port:
        cmd += ["--grpc-port", str(grpc_port)]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    for _ in range(1200):
        if proc.poll() is not None:
            raise SystemExit("odrun serve exited {}:\n{}".format(proc.returncode, open(log).read()[-2000:]))
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become ready:\n" + open(log).read()[-2000:])


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def summary(lat, clients, total, wall, cpu):
    lat.sort()
    out = {"clients": clients, "requests": total, "req_per_s": round(total / wall, 1),
           "p50_ms": round(1000 * lat[len(lat) // 2], 2), "p99_ms": round(1000 * lat[int(len(lat) * 0.99) - 1], 2)}
    for who, (t0, t1) in cpu.items():  # CPU per request: what the load on the machine does not change much
        out["{}_cpu_ms_per_request".format(who)] = None if None in (t0, t1) else round(1000 * (t1 - t0) / total, 2)
    return out


def load(make_call, clients, total, server_pid=None):
    """`total` calls spread over `clients` threads, each with its own connection (make_call() -> call);
    also the CPU per request of this process (the clients) and of the server."""
    lat, lock = [], threading.Lock()
    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    calls = [make_call() for _ in per]

    errors = []

    def worker(call, n):
        mine = []
        try:
            for _ in range(n):
                t = time.perf_counter()
                call()
                mine.append(time.perf_counter() - t)
        except Exception as exc:  # noqa: BLE001 - a failed call voids the measurement: raised below
            errors.append(exc)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(c, n)) for c, n in zip(calls, per)]
    cpu0 = {"client": cpu_seconds(os.getpid()), "server": cpu_seconds(server_pid) if server_pid else None}
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for call in calls:  # now, not whenever the collector frees them: the server counts open connections
        getattr(call, "close", lambda: None)()
    if errors or len(lat) != total:
        raise SystemExit("{} of {} calls failed: {!r}".format(total - len(lat), total, errors[:1]))
    cpu = {k: (v, cpu_seconds(os.getpid() if k == "client" else server_pid)) for k, v in cpu0.items() if v is not None}
    return summary(lat, clients, total, wall, cpu)


def rest_client(port, body):
    """A keep-alive HTTP/1.1 client on a raw socket: the request's bytes built once, the answer read to
    its Content-Length: 0.13 ms CPU per request here against http.client's 0.33-0.40 ms (it parses each
    header with the email package), on the cores the server needs."""
    head = ("POST /v1/models/m:predict HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n"
            "Content-Length: {}\r\n\r\n").format(port, len(body)).encode("ascii")
    request = head + body

    def make():
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")

        def call():
            sock.sendall(request)
            status = reader.readline()
            length = None
            for line in iter(reader.readline, b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            data = reader.read(length)
            assert status.split()[1] == b"200" and length is not None, (status, data[:300])

        def close():
            reader.close()
            sock.close()
        call.close = close
        return call
    return make


def grpc_request(jpeg):
    """A PredictRequest as TF Serving's clients build it: the encoded image, DT_STRING [1]."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.signature_name = "serving_default"
    request.inputs["input_tensor"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=[jpeg],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])))
    return request


def grpc_client(port, request):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    def make():
        channel = grpc.insecure_channel("127.0.0.1:{}".format(port))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def call():
            stub.Predict(request, timeout=120)
        call.close = channel.close
        return call
    return make


def decoded(jpeg):
    import io
    import numpy as np
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def offline(model, runtime, jpeg, n, threads):
    """Images/s (and CPU per image) of batches of BATCH already decoded images, the runtime loaded with
    `threads`."""
    from odrun import runtimes
    rt = runtimes.load(model, runtime, threads=threads)
    batch = [decoded(jpeg) for _ in range(BATCH)]
    rt.detect(batch)
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(n // BATCH):
        rt.detect(batch)
    done = BATCH * (n // BATCH)
    return {"img_per_s": round(done / (time.perf_counter() - t), 1),
            "cpu_ms_per_image": round(1000 * (time.process_time() - cpu) / done, 2)}


def direct_call(model, runtime, jpeg, calls, threads):
    """p50/p99 of decode + one model call on one image, in this process: the latency floor."""
    from odrun import runtimes
    rt = runtimes.load(model, runtime, threads=threads)
    rt.detect([decoded(jpeg)])
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        rt.detect([decoded(jpeg)])
        times.append(time.perf_counter() - t)
    times.sort()
    return {"p50_ms": round(1000 * times[len(times) // 2], 2), "p99_ms": round(1000 * times[int(calls * 0.99) - 1], 2)}


def _stop(servers):
    for proc, _ in servers:
        proc.send_signal(signal.SIGTERM)
    for proc, _ in servers:
        proc.wait(60)


def one_round(model, runtime, body, jpeg, n, logdir, flip=False):
    """Both servers up at once; at each client count the batching and the no-batching server are measured
    back to back (the order flipped every other round), and the offline rate right after the 16-client
    pair (the direct call after the 1-client pair): the compared numbers are seconds apart, not a server
    restart apart (the load here swings)."""
    from odrun.serve.batcher import model_threads
    threads = model_threads()
    res = {"batching": [], "no_batching": []}
    grpc_port = free_port()
    servers = []
    try:
        servers.append(start(model, runtime, BATCH, logdir, grpc_port))
        servers.append(start(model, runtime, 1, logdir))
        keyed = list(zip(("batching", "no_batching"), servers))
        for _, (proc, port) in keyed:
            load(rest_client(port, body), 4, 20)  # warm the connections and the model
        for c in CLIENTS:
            for key, (proc, port) in (keyed[::-1] if flip else keyed):
                res[key].append(load(rest_client(port, body), c, n, proc.pid))
            if c == 1:  # the latency floor, right after the 1-client pair
                res["direct_call"] = direct_call(model, runtime, jpeg, n, threads)
        res["offline"] = {"default_threads": offline(model, runtime, jpeg, n, None),
                          "server_threads_{}".format(threads): offline(model, runtime, jpeg, n, threads)}
        proc = servers[0][0]
        request = grpc_request(jpeg)
        load(grpc_client(grpc_port, request), 4, 20)  # the server's first gRPC call imports TF's protos
        res["grpc_batching"] = [load(grpc_client(grpc_port, request), c, n, proc.pid) for c in GRPC_CLIENTS]
    finally:
        _stop(servers)
    return res


def round_ratios(r):
    """{(what, goal, higher_is_better): value} of one round."""
    by = {k: {x["clients"]: x for x in r[k]} for k in ("batching", "no_batching", "grpc_batching")}
    rest, grpc, direct = by["batching"], by["grpc_batching"], r["direct_call"]
    out = {("REST req/s at 16 clients (batching) / offline batched images/s",
            0.6, True): rest[16]["req_per_s"] / max(
                x["img_per_s"] for x in r["offline"].values())}
    for c in CLIENTS:
        out[("REST req/s at {} client(s): batching / no batching".format(c), 1.0, True)] = \
            rest[c]["req_per_s"] / by["no_batching"][c]["req_per_s"]
    out[("REST p99 at 1 client / direct call p99 (decode + detect)", 1.3, False)] = rest[1]["p99_ms"] / direct["p99_ms"]
    out[("REST p99 at 1 client / direct call p50", 1.3, False)] = rest[1]["p99_ms"] / direct["p50_ms"]
    out[("REST p50 at 1 client / direct call p50", None, False)] = rest[1]["p50_ms"] / direct["p50_ms"]
    out[("server CPU per request at 16 clients (REST, batching) / offline CPU per image", None, False)] = \
        rest[16]["server_cpu_ms_per_request"] / min(x["cpu_ms_per_image"] for x in r["offline"].values())
    out[("gRPC / REST p50 at 1 client", None, False)] = grpc[1]["p50_ms"] / rest[1]["p50_ms"]
    out[("gRPC / REST p99 at 1 client", None, False)] = grpc[1]["p99_ms"] / rest[1]["p99_ms"]
    out[("gRPC / REST req/s at 16 clients", None, True)] = grpc[16]["req_per_s"] / rest[16]["req_per_s"]
    return out


def median_ratios(key, rounds):
    per = [round_ratios(r) for r in rounds]
    return [ratio("serve {}: {} (median of {})".format(key, what, len(per)),
                  statistics.median(p[(what, goal, hib)] for p in per), goal=goal, higher_is_better=hib)
            for what, goal, hib in per[0]]


def the_jpeg():
    import io
    import numpy as np
    from PIL import Image
    rng = np.random.RandomState(0)
    buf = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, size=(240, 320, 3)).astype(np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="odrun export directory (default: SSD MobileNet V2 exports built once by "
                                    "bench/_deploy_model.py at each --image-sizes)")
    ap.add_argument("--image-sizes", default="96,300",
                    help="without --model: the input sizes of the models to build and serve (default 96,300: "
                         "a tiny model and the template's default size)")
    ap.add_argument("--requests", type=int, default=200, help="requests per client count (default 200)")
    ap.add_argument("--runtime", default="onnx", help="server runtime (default onnx)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each ratio is their median (default 3)")
    a = ap.parse_args()
    if a.model:
        models = {"given": a.model}
    else:
        from bench._deploy_model import export_dir
        models = {"{}px".format(n): export_dir(int(n)) for n in a.image_sizes.split(",")}
    import json
    jpeg = the_jpeg()
    body = json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).encode()
    res = {"runtime": a.runtime, "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
           "image": "320x240 JPEG", "models": {}}
    ratios = []
    with tempfile.TemporaryDirectory(prefix="odstack-bench-serve-") as logdir:
        for key, model in models.items():
            rounds = res["models"][key] = []
            for i in range(a.repeat):
                rounds.append(one_round(model, a.runtime, body, jpeg, a.requests, logdir, flip=i % 2 == 1))
            ratios += median_ratios(key, rounds)
    res["load_average_at_end"] = os.getloadavg()
    report("serve", res, ratios)


if __name__ == "__main__":
    main()
