"""`odrun train --augment flip,crop,brightness`: the OD API's data_augmentation_options.

Names come from odrun/data/augment.yaml (short name -> PreprocessingStep field); a full field
name of preprocessor.proto works too. Each is validated against the proto that the installed
OD API was built with (preprocessor_pb2), then train_config.data_augmentation_options is
replaced by these steps, in the order given, with the proto's default parameters (tune them
with --set afterwards if needed).
"""
import os

import yaml

from odcore.errors import UserError
from odrun import DATA_DIR

DATA = os.path.join(DATA_DIR, "augment.yaml")


def names():
    """{short name: PreprocessingStep field} from augment.yaml."""
    with open(DATA, encoding="utf-8") as f:
        return yaml.safe_load(f)


def help_text():
    return ("replace the config's data augmentation with these steps, comma-separated: " +
            ", ".join(sorted(names())) + " (or any PreprocessingStep field of the OD API's "
            "preprocessor.proto); default: the template's own")


def add_flag(p):
    p.add_argument("--augment", metavar="NAME[,NAME...]", default=None, help=help_text())


def steps(spec):
    """'flip,crop' -> ['random_horizontal_flip', 'random_crop_image'] (validated)."""
    from object_detection.protos import preprocessor_pb2
    fields = set(preprocessor_pb2.PreprocessingStep.DESCRIPTOR.fields_by_name)
    table = names()
    out = []
    for raw in [s.strip() for s in (spec or "").split(",") if s.strip()]:
        field = table.get(raw.lower(), raw)
        if field not in fields:
            import difflib
            close = difflib.get_close_matches(raw, list(table) + sorted(fields), n=3)
            raise UserError("unknown augmentation {!r}".format(raw), where="--augment",
                            fix="use one of: {}{}".format(", ".join(sorted(table)),
                                                          "; did you mean " + ", ".join(close) + "?" if close else ""))
        if field not in out:
            out.append(field)
    if not out:
        raise UserError("--augment needs at least one name", where="--augment", fix="e.g. --augment flip,crop")
    return out


def apply(config, spec):
    """Replace config.train_config.data_augmentation_options by the steps of `spec`."""
    if spec is None:
        return config
    chosen = steps(spec)
    options = config.train_config.data_augmentation_options
    del options[:]
    for field in chosen:
        getattr(options.add(), field).SetInParent()  # the step with the proto's defaults
    return config
