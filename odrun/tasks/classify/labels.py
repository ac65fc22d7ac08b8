"""labels.txt in the slim writer's format ("0:animal", one per line) and retrain.py's
output_labels.txt (one name per line, line number = class id)."""
import io
import os

from odcore.errors import UserError

SLIM_NAME = "labels.txt"
RETRAIN_NAME = "output_labels.txt"


def slim_text(names):
    return "".join("{}:{}\n".format(i, n) for i, n in enumerate(names))


def retrain_text(names):
    return "".join(n + "\n" for n in names)


def read(path):
    """Class names by id from a slim labels.txt; ids must be 0..N-1."""
    if not os.path.isfile(path):
        raise UserError("no labels.txt", where=os.path.dirname(path) or ".",
                        fix="point at the output folder of `odrun convert --task classify`")
    names = {}
    with io.open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            head, sep, name = line.partition(":")
            if not sep or not head.strip().isdigit() or not name:
                raise UserError("line {}: {!r} is not ID:NAME".format(number, line), where=path,
                                fix="one 'ID:NAME' per line, ids 0..N-1, as `odrun convert --task classify` writes")
            names[int(head)] = name
    if sorted(names) != list(range(len(names))) or not names:
        raise UserError("class ids must be 0..N-1 (found {})".format(sorted(names)), where=path,
                        fix="renumber the lines 0, 1, 2, ...")
    return [names[i] for i in range(len(names))]
