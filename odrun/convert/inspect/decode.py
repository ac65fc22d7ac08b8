"""Every image decoded by the OD API's own `TfExampleDecoder` (what training reads), in one
tf.data pipeline with parallel decoding; only the decoded shapes come back to Python.

Each file is read up to its last intact record (counted by the TF-free pass), so a damaged
tail is one finding, not a DataLossError that ends the pipeline. A record whose image does
not decode fails only its own element: the iterator goes on with the next.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

from odcore.errors import UserError
from odrun.convert.inspect.checks import ERROR, finding
from odrun.tasks.detect.backends import tf2


def decode_all(files, counts):
    """-> ({(file, index): (width, height)}, {(file, index): TF's message}) for every intact record."""
    tf2.prepare()  # TF logging quiet, tf-slim's control_flow_ops fix
    import tensorflow as tf
    from object_detection.core import standard_fields as fields

    from object_detection.data_decoders import tf_example_decoder
    # The image path of the decoder training uses; built without the label map, whose text->id table
    # in every element doubled the time here (the classes are checked in Python, checks.py)
    decoder = tf_example_decoder.TfExampleDecoder()
    image = fields.InputDataFields.image
    order = [(p, i) for p in files for i in range(counts.get(p, 0))]
    if not order:
        return {}, {}
    ds = None
    for path in files:
        if counts.get(path):
            part = tf.data.TFRecordDataset(path).take(counts[path])
            ds = part if ds is None else ds.concatenate(part)
    ds = ds.map(lambda s: tf.shape(decoder.decode(s)[image])[:2], num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).prefetch(tf.data.AUTOTUNE)
    sizes, failed = {}, {}
    it = iter(ds)
    for key in order:
        try:
            h, w = next(it).numpy()
            sizes[key] = (int(w), int(h))
        except tf.errors.OpError as exc:  # InvalidArgumentError: not a JPEG/PNG/GIF/BMP, truncated, ...
            failed[key] = _message(exc)
        except StopIteration:
            break
    return sizes, failed


class Background(object):
    """decode_all beside the caller's work: start() at once, send(files, counts) when the intact
    record counts are known, result() waits for it (and raises what it raised); cancel() on errors.

    Without TensorFlow loaded here (the CLI), a second Python process starts importing it right
    away (seconds), reads the job from its stdin and decodes, on another core, while this one
    checks the records and draws the report; with TF already loaded (a library caller, the
    tests) a thread (decoding runs in TF's C++ threads either way)."""

    def __init__(self):
        self._out, self._proc, self._thread = {}, None, None
        if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("object_detection") is None:
            raise UserError("decoding every image needs TensorFlow and the OD API, not installed in this Python",
                            where=sys.executable, fix="pass --no-decode (every other check), or run where TF is")
        if "tensorflow" in sys.modules:
            return
        self._tmp = tempfile.mkdtemp(prefix="odrun-inspect-")
        self._err = open(os.path.join(self._tmp, "stderr.txt"), "wb")  # TF's and libjpeg's messages
        self._proc = subprocess.Popen([sys.executable, "-c", "from odrun.convert.inspect import decode; decode.main()", self._tmp],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err,
                                      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))

    def send(self, files, counts):
        if self._proc is None:
            self._thread = threading.Thread(target=self._run, args=(files, counts), daemon=True)
            self._thread.start()
            return
        try:
            self._proc.stdin.write(json.dumps({"files": files, "counts": counts}).encode("utf-8"))
            self._proc.stdin.close()
        except OSError:  # it died already: result() reports its stderr
            pass

    def cancel(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc is not None:
            self._err.close()
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _run(self, *args):
        try:
            self._out["value"] = decode_all(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            self._out["error"] = exc

    def result(self):
        if self._proc is None:
            self._thread.join()
            if "error" in self._out:
                raise self._out["error"]
            return self._out["value"]
        try:
            code = self._proc.wait()
            self._err.close()
            if code != 0:
                with open(os.path.join(self._tmp, "stderr.txt"), "rb") as f:
                    err = f.read().decode("utf-8", "replace")
                raise UserError("decoding the images with TensorFlow failed (exit {}):\n{}".format(code, err[-3000:]),
                                where="odrun.convert.inspect.decode", fix="pass --no-decode to run every other check")
            with open(os.path.join(self._tmp, "result.json"), encoding="utf-8") as f:
                doc = json.load(f)
        finally:
            self._err.close()
            shutil.rmtree(self._tmp, ignore_errors=True)
        return ({(p, i): (w, h) for p, i, w, h in doc["sizes"]}, {(p, i): m for p, i, m in doc["failed"]})


def main():
    """`python -c "...decode.main()" TMP`: imports TensorFlow and the decoder first (the
    slow part), then reads the job (JSON: files, counts) from stdin; the result goes to TMP/result.json."""
    tf2.prepare()
    import tensorflow  # noqa: F401
    from object_detection.data_decoders import tf_example_decoder  # noqa: F401
    raw = sys.stdin.buffer.read()
    if not raw:
        return  # the caller stopped (bad input found first)
    job = json.loads(raw.decode("utf-8"))
    sizes, failed = decode_all(job["files"], job["counts"])
    doc = {"sizes": [[p, i, w, h] for (p, i), (w, h) in sizes.items()],
           "failed": [[p, i, m] for (p, i), m in failed.items()]}
    with open(os.path.join(sys.argv[1], "result.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f)


def findings(examples, sizes, failed):
    """Images the decoder refuses (unless the header check already said so), sizes that differ."""
    out = []
    for ex in examples:
        key = (ex["file"], ex["index"])
        if key in failed and not ex.get("undecodable") and ex["encoded"] is not None:
            ex["undecodable"] = True
            out.append(finding(ERROR, "image", ex["file"], ex["index"],
                               "the image does not decode with the OD API's decoder: {}".format(failed[key])))
        elif key in sizes and ex["width"] is not None and sizes[key] != (ex["width"], ex["height"]):
            out.append(finding(ERROR, "image", ex["file"], ex["index"], "the image decodes to {}x{}, its header "
                               "and image/width,height say {}x{}".format(sizes[key][0], sizes[key][1],
                                                                         ex["width"], ex["height"])))
    return out


def _message(exc):
    """TF's error without its '{{function_node ...}}' prefix: 'jpeg::Uncompress failed. Invalid JPEG data'."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", exc.message or str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    main()
