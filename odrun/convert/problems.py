"""Problems found in the input: each names the file (and the object) and says what was done.

Errors stop the run (nothing is written); warnings are reported and, with --strict, become errors.
"""
import json

ERROR = "error"
WARNING = "warning"


def read_json(path, what):
    """Parse a JSON annotation file: (data, []) or (None, [an error naming the file]); `what` names the format."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, [error(path, "cannot parse {}: {}".format(what, exc))]


def problem(level, file, message, obj=None):
    """A plain dict (it crosses process boundaries): level, file, object, message."""
    return {"level": level, "file": str(file), "object": obj, "message": message}


def error(file, message, obj=None):
    return problem(ERROR, file, message, obj)


def warning(file, message, obj=None):
    return problem(WARNING, file, message, obj)


def describe_object(index, name):
    """How messages point at one annotation: 'object #3 "dog"' (1-based, as a person counts)."""
    return "object #{} {!r}".format(index + 1, name)


def render(p):
    text = p["file"]
    if p.get("object"):
        text += ": " + p["object"]
    return text + ": " + p["message"]


def render_many(problems, limit=12):
    lines = [render(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append("... and {} more (all are listed when the input is fixed and the run reaches summary.json)"
                     .format(len(problems) - limit))
    return "\n  ".join(lines)
