"""`odrun train`: template (or your config) + converted data -> pipeline.config -> exactly N steps.

RUN_DIR gets pipeline.config (validated with the OD API's pipeline_pb2 before TensorFlow
starts), checkpoints every --checkpoint-every steps and at the end, TensorBoard events in
RUN_DIR/train, and train.json. A re-run (or --resume) continues from the newest checkpoint.

Any config field can be overridden, e.g.:
  odrun train --data data --workdir run \\
    --set train_config.optimizer.momentum_optimizer.momentum_optimizer_value=0.8
"""
import os

from odrun import DATA_DIR, tasks, verbs
from odrun.tasks.classify import train as classify_train
from odrun.tasks.detect import distribute, pretrained, tracker
from odrun.tasks.detect.backends import add_api_flag
from odrun.tasks.detect.config import augment
from odrun.tasks.detect.train import DEFAULT_MODEL


def add_parser(sub):
    p = sub.add_parser("train", help="train a detector for exactly N steps (resumable)",
                       description=__doc__, epilog=_names())
    p.add_argument("--data", metavar="DATA_DIR",
                   help="output of `odrun convert`: train.record, test.record, label_map.pbtxt")
    p.add_argument("--workdir", metavar="RUN_DIR", required=True,
                   help="run directory: pipeline.config, checkpoints, TensorBoard events")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="NAME",
                     help="model template (default {}); see odrun/data/templates/<tf1|tf2>/".format(DEFAULT_MODEL))
    src.add_argument("--config", metavar="PIPELINE_CONFIG",
                     help="start from your own pipeline.config instead of a template")
    p.add_argument("--steps", type=int, help="total training steps (exact; default: the config's num_steps)")
    p.add_argument("--batch", type=int, help="images per step, train_config.batch_size (default: the template's; "
                                             "classify: odrun/data/classify.yaml's batch_size)")
    p.add_argument("--image-size", type=int, help="input size in pixels (fixed_shape_resizer height=width; default: "
                                                  "the template's; classify: the base's size in classify.yaml)")
    p.add_argument("--pretrained", metavar="CKPT_DIR|URL|ZOO_NAME",
                   help="fine-tune from a model-zoo checkpoint: a zoo name (odrun/data/zoo.yaml), a "
                        "tar.gz URL or a local directory; downloaded, sha256-verified and cached")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override any config field (repeatable; an example below the description)")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="write a checkpoint every N steps (and always at the end); default 100, "
                        "or the interrupted run's value on --resume")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR's training with its own pipeline.config (no --data needed)")
    p.add_argument("--new-run", action="store_true",
                   help="RUN_DIR holds a training of another model/config/label map: move it aside to "
                        "RUN_DIR.old-<time> and start fresh (without this, such a RUN_DIR is refused)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    add_api_flag(p)
    tracker.add_flags(p)  # --eval-every, --patience
    augment.add_flag(p)  # --augment flip,crop,...
    distribute.add_flags(p)
    tasks.add_task_flag(p, "; classify: --model mobilenet_v2|inception_v3|efficientnet_b0|resnet50, "
                           "--pretrained a Keras .h5 file or URL, --set alpha=0.35 etc. (odrun/data/classify.yaml)")
    classify_train.add_flags(p)
    return verbs.finish(p, "train", run)


def _names():
    """The epilog: the model templates (odrun/data/templates) and zoo names (zoo.yaml) per API."""
    lines = []
    for api in ("tf2", "tf1"):
        folder = os.path.join(DATA_DIR, "templates", api)
        models = sorted(f[:-len(".config")] for f in os.listdir(folder) if f.endswith(".config"))
        lines.append("--model ({}): {}".format(api, ", ".join(models)))
    for api in ("tf2", "tf1"):
        lines.append("--pretrained zoo names ({}): {}".format(api, ", ".join(sorted(pretrained.zoo(api)))))
    return "\n\n".join(lines)


def run(args):
    return tasks.run_verb("train", args)
