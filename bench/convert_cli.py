"""Benchmark the whole `odrun convert` command (start-up included) on a labelImg layout; odrun and the
OD API script alternate --repeat times (medians; the ratio is taken per pair, so both saw the same load):

  * `odrun convert DATA --out OUT` (a subprocess: Python start, no TensorFlow, 2 workers); also the
    time until its first record bytes are on disk;
  * the OD API's `create_pascal_tf_record.py` (python -m object_detection.dataset_tools.
    create_pascal_tf_record) on the same images in the VOCdevkit layout it wants (symlinks);
  * the tutorials' `xml_to_csv.py` + `generate_tfrecord.py` (tutorial 000's code, class_text_to_int
    filled with our classes, tf.compat.v1 flags), run as the tutorial says: once per folder;
  * the floor: read + sha256 of every image byte (what any converter must do at least).

Data: a few hundred generated photos in train/ and test/ (labelImg's layout as in the tutorials),
three sizes (640x480, 1024x768, 1280x960, noisy JPEGs), cached in the system temp dir for the run
and removed afterwards.

CPU seconds (user + sys, children included) are reported too: on the shared machine they vary less
than wall time.

    .venv/bin/python bench/convert_cli.py [--images 300] [--workers 2] [--repeat 3] [--json]
"""
import argparse
import glob
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# keep bench/ itself off the path: a bench script named like a standard module would shadow it
sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]
PY = sys.executable
ODRUN = os.path.join(os.path.dirname(PY), "odrun")
SIZES = ((640, 480), (1024, 768), (1280, 960))
CLASSES = ("cat", "dog", "person", "car")

XML_TO_CSV = r'''
import os
import glob
import pandas as pd
import xml.etree.ElementTree as ET


def xml_to_csv(path):
    xml_list = []
    for xml_file in glob.glob(path + '/*.xml'):
        tree = ET.parse(xml_file)
        root = tree.getroot()
        for member in root.findall('object'):
            bb = member.find('bndbox')  # (the tutorial indexes member[4]; labelImg's order)
            value = (root.find('filename').text,
                     int(root.find('size')[0].text),
                     int(root.find('size')[1].text),
                     member[0].text,
                     int(float(bb.find('xmin').text)),
                     int(float(bb.find('ymin').text)),
                     int(float(bb.find('xmax').text)),
                     int(float(bb.find('ymax').text))
                     )
            xml_list.append(value)
    column_name = ['filename', 'width', 'height', 'class', 'xmin', 'ymin', 'xmax', 'ymax']
    xml_df = pd.DataFrame(xml_list, columns=column_name)
    return xml_df


def main():
    for folder in ['train', 'test']:
        image_path = os.path.join(os.getcwd(), folder)
        xml_df = xml_to_csv(image_path)
        xml_df.to_csv((folder + '_labels.csv'), index=None)
        print('Successfully converted xml to csv.')


main()
'''

GENERATE_TFRECORD = r'''
import os
import io
import pandas as pd
import tensorflow as tf

from PIL import Image
from object_detection.utils import dataset_util
from collections import namedtuple, OrderedDict

flags = tf.compat.v1.flags
flags.DEFINE_string('csv_input', '', 'Path to the CSV input')
flags.DEFINE_string('image_dir', '', 'Path to the image directory')
flags.DEFINE_string('output_path', '', 'Path to output TFRecord')
FLAGS = flags.FLAGS
CLASSES = %r


def class_text_to_int(row_label):
    return CLASSES.index(row_label) + 1 if row_label in CLASSES else None


def split(df, group):
    data = namedtuple('data', ['filename', 'object'])
    gb = df.groupby(group)
    return [data(filename, gb.get_group(x)) for filename, x in zip(gb.groups.keys(), gb.groups)]


def create_tf_example(group, path):
    with tf.io.gfile.GFile(os.path.join(path, '{}'.format(group.filename)), 'rb') as fid:
        encoded_jpg = fid.read()
    encoded_jpg_io = io.BytesIO(encoded_jpg)
    image = Image.open(encoded_jpg_io)
    width, height = image.size
    filename = group.filename.encode('utf8')
    image_format = b'jpg'
    xmins, xmaxs, ymins, ymaxs, classes_text, classes = [], [], [], [], [], []
    for index, row in group.object.iterrows():
        xmins.append(row['xmin'] / width)
        xmaxs.append(row['xmax'] / width)
        ymins.append(row['ymin'] / height)
        ymaxs.append(row['ymax'] / height)
        classes_text.append(row['class'].encode('utf8'))
        classes.append(class_text_to_int(row['class']))
    return tf.train.Example(features=tf.train.Features(feature={
        'image/height': dataset_util.int64_feature(height),
        'image/width': dataset_util.int64_feature(width),
        'image/filename': dataset_util.bytes_feature(filename),
        'image/source_id': dataset_util.bytes_feature(filename),
        'image/encoded': dataset_util.bytes_feature(encoded_jpg),
        'image/format': dataset_util.bytes_feature(image_format),
        'image/object/bbox/xmin': dataset_util.float_list_feature(xmins),
        'image/object/bbox/xmax': dataset_util.float_list_feature(xmaxs),
        'image/object/bbox/ymin': dataset_util.float_list_feature(ymins),
        'image/object/bbox/ymax': dataset_util.float_list_feature(ymaxs),
        'image/object/class/text': dataset_util.bytes_list_feature(classes_text),
        'image/object/class/label': dataset_util.int64_list_feature(classes),
    }))


def main(_):
    writer = tf.io.TFRecordWriter(FLAGS.output_path)
    path = os.path.join(os.getcwd(), FLAGS.image_dir)
    examples = pd.read_csv(FLAGS.csv_input)
    for group in split(examples, 'filename'):
        writer.write(create_tf_example(group, path).SerializeToString())
    writer.close()
    print('Successfully created the TFRecords: {}'.format(os.path.join(os.getcwd(), FLAGS.output_path)))


if __name__ == '__main__':
    tf.compat.v1.app.run()
''' % (CLASSES,)


def make_dataset(root, n):
    """root/train and root/test (80/20), three photo sizes, labelImg XML beside each JPEG."""
    from odrun.tasks.detect import synth
    for split, count in (("train", n * 4 // 5), ("test", n - n * 4 // 5)):
        dest = os.path.join(root, split)
        os.makedirs(dest)
        for k, size in enumerate(SIZES):
            part = os.path.join(root, "part")
            synth.make_voc(part, count // len(SIZES) + (1 if k < count % len(SIZES) else 0), classes=CLASSES,
                           size=size, seed=100 * k + len(split), noise=24)
            for name in os.listdir(part):
                new = "{}_{}_{}".format(split, k, name)
                src = os.path.join(part, name)
                if name.endswith(".xml"):
                    text = open(src, encoding="utf-8").read()
                    stem = os.path.splitext(name)[0]
                    text = text.replace(stem + ".jpg", "{}_{}_{}.jpg".format(split, k, stem))
                    with open(os.path.join(dest, new), "w", encoding="utf-8") as f:
                        f.write(text)
                else:
                    os.rename(src, os.path.join(dest, new))
            shutil.rmtree(part)
    return sorted(glob.glob(os.path.join(root, "*", "*.jpg")))


def floor(paths):
    t = time.time()
    for p in paths:
        with open(p, "rb") as f:
            hashlib.sha256(f.read()).hexdigest()
    return time.time() - t


def first_record_watch(out_dir, started, result):
    """Poll for the first non-empty record bytes: a worker's part file in the staged sibling of
    OUT (`.odrun-out.staged-*/.parts-*/`, where convert writes before the set replaces OUT)."""
    parent, base = os.path.split(out_dir)
    pattern = os.path.join(parent, "." + base + "*", "**", "*.record*")
    while "done" not in result:
        for path in glob.glob(pattern, recursive=True) + glob.glob(os.path.join(parent, "." + base + "*", ".*", "*")):
            try:
                if ".record" in path and os.path.isfile(path) and os.path.getsize(path) > 0:
                    result["first_record"] = time.time() - started
                    return
            except OSError:
                pass
        time.sleep(0.02)


CPU = {}  # command name -> [CPU seconds (user + sys, its children included)] of each run


def run(cmd, cwd=None):
    t = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        raise SystemExit("{} failed:\n{}".format(" ".join(cmd), proc.stderr.decode(errors="replace")[-3000:]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    name = os.path.basename(cmd[0]) if cmd[0] != PY else cmd[2] if cmd[1] == "-m" else cmd[1]
    CPU.setdefault(name, []).append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return time.time() - t


def odrun_convert(root, out, workers):
    result = {}
    started = time.time()
    watch = threading.Thread(target=first_record_watch, args=(out, started, result), daemon=True)
    watch.start()
    result["seconds"] = run([ODRUN, "convert", root, "--out", out, "--workers", str(workers), "--json"])
    result["done"] = True
    watch.join(1)
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    result["images"], result["records_seconds"] = summary["images"]["total"], summary["seconds"]
    return result


def odapi_script(root, work, label_map):
    """create_pascal_tf_record.py wants VOCdevkit/VOC2012/{Annotations,JPEGImages,ImageSets/Main}."""
    voc = os.path.join(work, "VOCdevkit", "VOC2012")
    for d in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc, d))
    names = []
    for xml in sorted(glob.glob(os.path.join(root, "*", "*.xml"))):
        stem = os.path.splitext(os.path.basename(xml))[0]
        text = re.sub(r"<folder>[^<]*</folder>", "<folder>VOC2012</folder>", open(xml, encoding="utf-8").read())
        with open(os.path.join(voc, "Annotations", stem + ".xml"), "w", encoding="utf-8") as f:
            f.write(text)
        os.symlink(os.path.splitext(xml)[0] + ".jpg", os.path.join(voc, "JPEGImages", stem + ".jpg"))
        names.append(stem)
    with open(os.path.join(voc, "ImageSets", "Main", "aeroplane_train.txt"), "w") as f:
        f.write("".join("{} 1\n".format(n) for n in names))
    return run([PY, "-m", "object_detection.dataset_tools.create_pascal_tf_record",
                "--data_dir", os.path.join(work, "VOCdevkit"), "--year", "VOC2012", "--set", "train",
                "--label_map_path", label_map, "--output_path", os.path.join(work, "pascal.record")])


def tutorial_scripts(root, work):
    with open(os.path.join(work, "xml_to_csv.py"), "w") as f:
        f.write(XML_TO_CSV)
    with open(os.path.join(work, "generate_tfrecord.py"), "w") as f:
        f.write(GENERATE_TFRECORD)
    for split in ("train", "test"):
        os.symlink(os.path.join(root, split), os.path.join(work, split))
    t = run([PY, "xml_to_csv.py"], cwd=work)
    for split in ("train", "test"):
        t += run([PY, "generate_tfrecord.py", "--csv_input={}_labels.csv".format(split), "--image_dir=" + split,
                  "--output_path={}.record".format(split)], cwd=work)
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300, help="photos in train/ + test/ (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="odrun convert --workers (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="odrun / OD API script pairs, alternating (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="odstack-bench-convert-cli-")
    try:
        root = os.path.join(tmp, "photos")
        paths = make_dataset(root, args.images)
        size = sum(os.path.getsize(p) for p in paths)
        floor(paths)  # warm the page cache: everyone reads from memory
        t_floor = floor(paths)
        runs = []
        for k in range(args.repeat):  # alternating, so both see the same load
            out = os.path.join(tmp, "odrun-out")
            shutil.rmtree(out, ignore_errors=True)
            ours = odrun_convert(root, out, args.workers)
            shutil.rmtree(os.path.join(tmp, "odapi"), ignore_errors=True)
            os.makedirs(os.path.join(tmp, "odapi"))
            t_odapi = odapi_script(root, os.path.join(tmp, "odapi"), os.path.join(out, "label_map.pbtxt"))
            runs.append({"odrun_s": ours["seconds"], "odapi_s": t_odapi, "ratio": t_odapi / ours["seconds"],
                         "records_s": ours["records_seconds"], "first_record_s": ours.get("first_record", float("nan")),
                         "load_1min": os.getloadavg()[0]})
        os.makedirs(os.path.join(tmp, "tutorial"))
        t_tut = tutorial_scripts(root, os.path.join(tmp, "tutorial"))
        n = len(paths)

        def med(key):
            return statistics.median(r[key] for r in runs)
        cpu_ours = statistics.median(CPU["odrun"])
        cpu_odapi = statistics.median(CPU["object_detection.dataset_tools.create_pascal_tf_record"])
        res = {"images": n, "megabytes": round(size / 1e6, 1), "workers": args.workers, "runs": len(runs),
               "floor_s": round(t_floor, 3), "odrun_s": round(med("odrun_s"), 2),
               "odrun_records_s (summary.json: reading to records, no start-up/report)": round(med("records_s"), 2),
               "odrun_first_record_s": round(med("first_record_s"), 2),
               "odapi_create_pascal_tf_record_s": round(med("odapi_s"), 2),
               "tutorial_xml_to_csv_generate_tfrecord_s": round(t_tut, 2),
               "odrun_vs_odapi (median of the per-run ratios)": round(med("ratio"), 2),
               "odrun_vs_odapi per run": [round(r["ratio"], 2) for r in runs],
               "odrun_cpu_s / odapi_cpu_s (medians)": [round(cpu_ours, 2), round(cpu_odapi, 2)],
               "odrun_vs_odapi_cpu": round(cpu_odapi / cpu_ours, 2),
               "odrun_vs_tutorial": round(t_tut / med("odrun_s"), 2),
               "odrun_vs_floor": round(t_floor / med("odrun_s"), 3),
               "odrun_records_vs_floor": round(t_floor / max(med("records_s"), 1e-9), 3),
               "load_1min per run": [round(r["load_1min"], 1) for r in runs]}
        res["odrun_vs_odapi"] = res["odrun_vs_odapi (median of the per-run ratios)"]
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            for k, v in res.items():
                print("{:56s} {}".format(k, v))
        if os.environ.get("ODSTACK_BENCH_RESULT"):  # bench/run_all.py's table
            import importlib.util
            spec = importlib.util.spec_from_file_location("common", os.path.join(HERE, "common.py"))
            common = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(common)
            common.report("convert_cli", res, [
                common.ratio("odrun convert vs create_pascal_tf_record.py (whole commands)", res["odrun_vs_odapi"], 5),
                common.ratio("odrun convert vs xml_to_csv.py + generate_tfrecord.py", res["odrun_vs_tutorial"]),
                common.ratio("odrun records vs read+sha256 floor", res["odrun_records_vs_floor"], 0.5),
                common.ratio("first record written (s)", res["odrun_first_record_s"], 1.0, higher_is_better=False)])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
