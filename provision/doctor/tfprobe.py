"""Probe TensorFlow in a child process: an `Illegal instruction` (no AVX) or a hang while
loading CUDA libraries kills or stalls the child, and doctor reports it as a finding."""
import json
import os
import signal
import subprocess

# Runs in the probed interpreter: keep it Python 3.6 and TF 1.x compatible.
PROBE = r"""
import json, sys
out = {"python": "%d.%d.%d" % sys.version_info[:3]}
try:
    import tensorflow as tf
except ImportError as exc:
    print(json.dumps({"status": "missing", "error": str(exc), "python": out["python"]}))
    sys.exit(0)
out["status"] = "ok"
out["version"] = getattr(tf, "__version__", None) or tf.VERSION
out["built_with_cuda"] = bool(tf.test.is_built_with_cuda())
try:
    info = dict(tf.sysconfig.get_build_info())
except Exception:
    info = {}
out["build_info"] = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in info.items()
                     if k in ("cuda_version", "cudnn_version", "cuda_compute_capabilities", "is_cuda_build")}
try:
    gpus = tf.config.list_physical_devices("GPU")
except AttributeError:
    from tensorflow.python.client import device_lib
    gpus = [d for d in device_lib.list_local_devices() if d.device_type == "GPU"]
out["gpus"] = [getattr(d, "name", str(d)) for d in gpus]
for mod in ("numpy", "google.protobuf"):
    try:
        m = __import__(mod, fromlist=["__version__"])
        out[mod.split(".")[-1]] = m.__version__
    except Exception:
        out[mod.split(".")[-1]] = None
print("ODSTACK-PROBE " + json.dumps(out))
"""


def run(python, timeout, code=PROBE):
    """-> dict(status=ok|missing|crashed|timeout|error, ...)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": "import tensorflow did not finish in {:.0f} s".format(timeout)}
    except OSError as exc:
        return {"status": "error", "error": str(exc)}
    if proc.returncode < 0:
        sig = -proc.returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return {"status": "crashed", "signal": name, "error": (proc.stderr or "")[-2000:]}
    for line in proc.stdout.splitlines():
        if line.startswith("ODSTACK-PROBE "):
            return json.loads(line[len("ODSTACK-PROBE "):])
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()
    return {"status": "error", "error": tail[-1] if tail else "exit {}".format(proc.returncode),
            "log": (proc.stderr or "")[-4000:]}
