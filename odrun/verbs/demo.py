"""`odrun demo`: the whole pipeline on a generated dataset, in one process.

synthetic shapes (VOC XML) -> convert -> train -> eval -> export -> detect, then a summary
table with the time of each stage and the path of an annotated image. Each stage calls the
verb's library function (convert.convert, train.train, evaluate.evaluate, export.export,
detect.detect), the same one its CLI calls. The defaults finish
in well under 10 minutes on a 2-core CPU (see bench/README.md).
"""

from odrun import tasks, verbs
from odrun.tasks.detect.backends import add_api_flag


def add_parser(sub):
    p = sub.add_parser("demo", help="synthetic data -> convert -> train -> eval -> export -> detect",
                       description=__doc__)
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--images", type=int, help="synthetic images")
    p.add_argument("--workdir", metavar="DIR", help="where everything goes")
    p.add_argument("--threshold", type=float, help="detect score threshold, as `odrun detect`'s")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bars)")
    add_api_flag(p)
    tasks.add_task_flag(p, '; classify: class folders -> MobileNetV2 x0.35 from scratch -> predict')
    return verbs.finish(p, "demo", run)


def run(args):
    return tasks.run_verb("demo", args)
