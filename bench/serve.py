"""bench/serve.py: `odrun serve` under a bounded load on 127.0.0.1, batching on vs off, one run.

    .venv/bin/python bench/serve.py [--model EXPORT_DIR | --image-sizes 96,300] [--requests 200] [--runtime onnx]

For each server (--max-batch 8 --batch-timeout-ms 5, then --max-batch 1 = no batching) and each
client count (1, 4, 16 threads, requests.Session each, keep-alive): a fixed number of TF Serving
predict requests (one base64 JPEG each), then throughput (req/s) and p50/p99 latency. Also a single
direct model call (runtime.detect on one image, same runtime, in this process) as the latency floor.
Stops by itself; the servers are real subprocesses on free ports, stopped with SIGTERM.
Goals (issue 14): >= 2x throughput at 16 clients with batching; p99 at 1 client within 20 % of a
direct call.
"""
import argparse
import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import ratio, report  # noqa: E402

CLIENTS = (1, 4, 16)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(model, runtime, max_batch):
    import requests
    port = free_port()
    odrun = os.path.join(os.path.dirname(sys.executable), "odrun")
    proc = subprocess.Popen([odrun, "serve", "--model", model, "--port", str(port), "--name", "m",
                             "--runtime", runtime, "--max-batch", str(max_batch), "--queue", "256",
                             "--access-log", os.devnull], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:{}".format(port)
    for _ in range(1200):
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become ready")


def load(url, body, clients, total):
    import requests
    lat, lock = [], threading.Lock()
    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]

    def worker(n):
        s = requests.Session()
        mine = []
        for _ in range(n):
            t = time.perf_counter()
            r = s.post(url + "/v1/models/m:predict", data=body, headers={"Content-Type": "application/json"})
            mine.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in per]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {"clients": clients, "requests": total, "req_per_s": round(total / wall, 1),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1), "p99_ms": round(1000 * lat[int(len(lat) * 0.99) - 1], 1)}


def direct_call_ms(model, runtime, jpeg, calls=30):
    """p50 of decode + one model call on one image, in this process: the latency floor."""
    import io
    import numpy as np
    from PIL import Image
    from odrun import runtimes
    rt = runtimes.load(model, runtime)
    rt.detect([np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))])
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        rt.detect([np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))])
        times.append(time.perf_counter() - t)
    times.sort()
    return 1000 * times[len(times) // 2]


def measure(model, runtime, body, jpeg, requests):
    res = {"model": model, "direct_call_p50_ms": round(direct_call_ms(model, runtime, jpeg), 1)}
    for label, max_batch in (("batching", 8), ("no_batching", 1)):
        proc, url = start(model, runtime, max_batch)
        try:
            load(url, body, 4, 20)  # warm the connections and the model
            res[label] = [load(url, body, c, requests) for c in CLIENTS]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="odrun export directory (default: SSD MobileNet V2 exports built once by "
                                    "bench/_deploy_model.py at each --image-sizes)")
    ap.add_argument("--image-sizes", default="96,300",
                    help="without --model: the input sizes of the models to build and serve (default 96,300: "
                         "a tiny model and the template's default size)")
    ap.add_argument("--requests", type=int, default=200, help="requests per client count (default 200)")
    ap.add_argument("--runtime", default="onnx", help="server runtime (default onnx)")
    a = ap.parse_args()
    if a.model:
        models = {"given": a.model}
    else:
        from bench._deploy_model import export_dir
        models = {"{}px".format(n): export_dir(int(n)) for n in a.image_sizes.split(",")}
    import io
    import json
    import numpy as np
    from PIL import Image
    rng = np.random.RandomState(0)
    buf = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, size=(240, 320, 3)).astype(np.uint8)).save(buf, format="JPEG")
    jpeg = buf.getvalue()
    body = json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]})

    res = {"runtime": a.runtime, "cpus": os.cpu_count(), "image": "320x240 JPEG", "models": {}}
    ratios = []
    for key, model in models.items():
        r = res["models"][key] = measure(model, a.runtime, body, jpeg, a.requests)
        by = {label: {x["clients"]: x for x in r[label]} for label in ("batching", "no_batching")}
        ratios += [ratio("serve {}: throughput at 16 clients, batching / no batching".format(key),
                         by["batching"][16]["req_per_s"] / by["no_batching"][16]["req_per_s"], goal=2.0),
                   ratio("serve {}: p99 at 1 client / direct model call (decode + detect)".format(key),
                         by["batching"][1]["p99_ms"] / r["direct_call_p50_ms"], goal=1.2, higher_is_better=False)]
    report("serve", res, ratios)


if __name__ == "__main__":
    main()
