"""Problems found in the input: each names the file (and the object) and says what was done.

Errors stop the run (nothing is written); warnings are reported and, with --strict, become errors.
"""
import bisect
import json
import json.decoder
import json.scanner

ERROR = "error"
WARNING = "warning"


def read_json(path, what):
    """Parse a JSON annotation file: (data, []) or (None, [an error naming the file]); `what` names the format."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), []
    except json.JSONDecodeError as exc:  # file: line N column M: what the parser expected
        return None, [error(path, "cannot parse {}: {}".format(what, exc.msg), "line {} column {}".format(
            exc.lineno, exc.colno))]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, [error(path, "cannot parse {}: {}".format(what, exc))]


class LineDict(dict):
    """A JSON object that knows the line it starts on (1-based): `.line`."""
    line = None


def read_json_lines(path):
    """The same data as read_json, each object a LineDict: for naming the line of a bad entry (the
    pure-Python parser, slower: only read again once something was found wrong)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    breaks = [i for i, c in enumerate(text) if c == "\n"]

    def parse_object(s_and_end, *args, **kwargs):
        obj, end = json.decoder.JSONObject(s_and_end, *args, **kwargs)
        out = LineDict(obj)
        out.line = bisect.bisect_left(breaks, s_and_end[1] - 1) + 1  # the line of its `{`
        return out, end

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder.decode(text)


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
