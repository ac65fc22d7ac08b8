"""Recognise known failures in an error message or a whole log: what it means, why it happens
and the fix. Shared by `provision explain`, `provision doctor` and every `odrun` verb (a failed
verb prints the explanation under its error, see odcore.cli), so it is Python 3.6-safe and
needs only PyYAML.

The knowledge base is data (odcore/data/errors.yaml, schema odcore/data/errors.schema.json):
  signatures  one known failure each: patterns (regexes), cause, fix, sources, family, weight;
              `harmless: true` marks informational lines that are not the problem
  families    broad patterns per kind of failure (any `E tensorflow/.../cuda_*.cc` line, any
              `CUDNN_STATUS_*`, `E: ` from apt, ...): the answer when no signature matches, so a
              known kind of failure never gets "nothing matched"
  prefilter   a few cheap substrings; only lines containing one reach the regexes
A removed or moved name (`module 'X' has no attribute 'Y'`, ...) is resolved from
odcore/data/symbols.yaml (odcore.symbols): the answer names the replacement, either on the
signature that matched the same text or, when none did, as the `symbol-removed` answer. A GPU-stack
version (libcudart.so.X, cuDNN loaded vs compiled, a container's CUDA, sm_XX) is resolved the same way
from compat_matrix.yaml (odcore.gpustack, texts in odcore/data/gpustack.yaml); pip conflicts, wheel
tags, venvs without ensurepip and conda's solver from odcore/data/pyenv.yaml (odcore.pyenv), and two
shapes that do not fit (fed vs expected, reshape sizes) from odcore/data/shapes.yaml.

Matching a big log streams it in chunks (bounded memory):
  1. find the lines holding a prefilter substring (str.find over the chunk, C speed),
  2. for each such line, try only the patterns whose literal keyword (derived from the regex)
     is in the line and its neighbours (a pattern may span a wrapped line),
  3. rank: non-harmless first, then weight (errors 1.0 > warnings > family answers), then the
     earliest occurrence.
Usage:
    from odcore.explain import explain_text
    best = explain_text(traceback_text)   # -> dict(id, title, cause, fix, ...) or None
"""
import os
import re

from odcore import datafile, gpustack, protofields, pyenv, shapes, symbols

KB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "errors.yaml")
CHUNK_BYTES = 4 << 20
SHORT_TEXT = 20000  # texts up to this size are matched as one window (pasted tracebacks wrap)
MIN_KEYWORD = 3
SNIPPET = 300
FILL_MAX = 120  # characters of a message's variable part shown in an answer
BINARY_PROBE = 8192
# Straighten curly quotes (one character for one, so offsets stay valid) so a pasted forum
# post matches like a terminal log does.
QUOTES = {ord(k): v for k, v in {u"\u2018": "'", u"\u2019": "'", u"\u201c": '"', u"\u201d": '"',
                                 u"\uff1a": ":", u"\u00a0": " "}.items()}
# One str.translate folds case, digits and quotes for the prefilter (one char for one).
FOLD = dict((ord(c), ord(c.lower())) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
FOLD.update((ord(c), ord("0")) for c in "0123456789")
FOLD.update(QUOTES)
REQUIRED = ("id", "title", "patterns", "cause", "fix", "sources", "family")

try:  # the regex parser: re._parser from 3.11, sre_parse before
    from re import _parser as _sre
except ImportError:  # pragma: no cover (Python < 3.11)
    import sre_parse as _sre

_KB_CACHE = {}
SYMBOL_ID = "symbol-removed"
PROTO_ID = "pipeline-field-resolved"
GPU_ID = "gpu-stack-resolved"
PYENV_ID = "python-env-resolved"
SHAPE_ID = "shape-resolved"
CARRIERS = (SYMBOL_ID, PROTO_ID, GPU_ID, PYENV_ID, SHAPE_ID)


class KnowledgeBaseError(Exception):
    """The knowledge base file is broken; `where` names the entry."""

    def __init__(self, message, where):
        Exception.__init__(self, message)
        self.message = message
        self.where = where


def _required_groups(items, anchors=()):
    """Literal runs a match of the parsed regex `items` must contain, as groups of alternatives
    (one string of each group appears in every match)."""
    groups, run = [], []

    def flush():
        if run:
            groups.append(["".join(run)])
            del run[:]

    for op, av in items:
        if op is _sre.LITERAL:
            run.append(chr(av))
            continue
        flush()
        if op is _sre.SUBPATTERN:
            groups.extend(_required_groups(av[-1], anchors))
        elif op is _sre.BRANCH:
            alts = []
            for branch in av[1]:
                best = _best_group(_required_groups(branch, anchors), anchors)
                if best is None:
                    alts = None
                    break
                alts.extend(best)
            if alts:
                groups.append(alts)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] >= 1:
            groups.extend(_required_groups(av[2], anchors))
    flush()
    return groups


def _pieces(text, anchors=()):
    """A whitespace-free piece of a literal (logs differ in spacing, not letters): the longest
    one holding a prefilter anchor, else the longest. Folded like log lines (case, digits)."""
    folded = text.translate(FOLD)
    parts = [p for p in folded.split() if len(p) >= MIN_KEYWORD] or folded.split()
    if not parts:
        return ""
    covered = [p for p in parts if any(a in p for a in anchors)]
    return max(covered or parts, key=len)


def _best_group(groups, anchors=()):
    best, best_len = None, 0
    for group in groups:
        alts = [_pieces(a, anchors) for a in group]
        shortest = min(len(a) for a in alts)
        if shortest > best_len:
            best, best_len = alts, shortest
    return best if best_len >= MIN_KEYWORD else None


def keywords(pattern, anchors=()):
    """Lower-case substrings one of which every match of `pattern` contains, or None.
    A group whose every alternative holds a prefilter anchor is preferred (no extra scan)."""
    groups = _required_groups(_sre.parse(pattern), anchors)
    covered = [g for g in groups if all(any(a in _pieces(alt, anchors) for a in anchors) for alt in g)]
    return _best_group(covered, anchors) or _best_group(groups)


def normalise(text):
    return " ".join(text.translate(QUOTES).split())


class Entry(object):
    """A signature or a family: compiled patterns, each with its keywords."""

    def __init__(self, entry, kind, anchors=()):
        self.kind = kind
        self.id = entry["id"]
        # `fill`: {NAME: default} - {NAME} in title/cause/fix takes the pattern's (?P<NAME>...) group when it
        # matched (the variable part of the message: a partition, a URL, a size), else the default text
        self.fill = dict(entry.get("fill") or {})
        self.templates = (entry["title"], " ".join(entry["cause"].split()), " ".join(entry["fix"].split()))
        self.title, self.cause, self.fix = self._render({})
        self.sources = list(entry.get("sources") or [])
        self.family = entry.get("family", self.id)
        self.harmless = bool(entry.get("harmless", False))
        self.weight = float(entry.get("weight", 0.1 if self.harmless else 1.0))
        self.versions = entry.get("versions") or {}
        self.patterns = []
        for p in entry["patterns"]:
            self.patterns.append((re.compile(p, re.IGNORECASE), keywords(p, anchors)))

    def _render(self, values):
        out = []
        for text in self.templates:
            for name, default in self.fill.items():
                text = text.replace("{" + name + "}", values.get(name) or default)
            out.append(text)
        return out

    def filled(self, match):
        """{"fill": {NAME: value}} from a regex match's named groups, or None (defaults apply)."""
        if not self.fill:
            return None
        values = dict((k, v[:FILL_MAX]) for k, v in match.groupdict().items() if v and k in self.fill)
        return {"fill": values} if values else None

    def rendered(self, values):
        return dict(zip(("title", "cause", "fix"), self._render(values)))

    def as_dict(self, snippet=None, line=None):
        return {"id": self.id, "kind": self.kind, "family": self.family, "title": self.title,
                "cause": self.cause, "fix": self.fix, "harmless": self.harmless,
                "sources": self.sources, "matched": snippet, "line": line}


def _carriers():
    """(id, title, family, data file) of each resolver's carrier entry."""
    return ((SYMBOL_ID, "a removed or moved name", "python-deps", symbols.PATH),
            (PROTO_ID, "a pipeline field in the wrong place", "od-api", protofields.PATH),  # + od_protos.yaml
            (GPU_ID, "a GPU-stack version", "cuda-runtime", gpustack.PATH),  # + compat_matrix.yaml
            (PYENV_ID, "a Python environment problem", "tf-install", pyenv.PATH),
            (SHAPE_ID, "two shapes that do not fit", "data", shapes.PATH))


class KnowledgeBase(object):
    def __init__(self, signatures, families, prefilter):
        self.signatures = signatures
        self.families = families
        self.by_id = dict((e.id, e) for e in signatures + families)
        # the carriers of the resolvers' answers (their texts come from each resolver's data file)
        for cid, title, family, path in _carriers():
            self.by_id[cid] = Entry({"id": cid, "title": title, "patterns": [], "cause": "-", "fix": "-",
                                     "family": family, "sources": [path]}, "signature")
        anchors = [a.translate(FOLD) for a in prefilter]
        self.uncovered = []  # keywords no prefilter substring covers (they become anchors)
        self.unkeyed = []  # (entry id, pattern) without a usable literal: always tried
        for entry in signatures + families:
            for rx, alts in entry.patterns:
                if alts is None:
                    self.unkeyed.append((entry.id, rx.pattern))
                    continue
                for alt in alts:
                    if not any(a in alt for a in anchors):
                        self.uncovered.append(alt)
                        anchors.append(alt)
        self.anchors = tuple(sorted(set(anchors), key=len, reverse=True))
        self.prefilter = tuple(prefilter)
        # anchor -> entries (in KB order: signatures, then families) holding a pattern keyed by it
        self.order = signatures + families
        self.index = {}
        self.always = set()
        for n, entry in enumerate(self.order):
            for rx, alts in entry.patterns:
                if alts is None:
                    self.always.add(n)
                    continue
                for alt in alts:
                    for anchor in self.anchors:
                        if anchor in alt:
                            self.index.setdefault(anchor, set()).add(n)

    def __len__(self):
        return len(self.signatures)

    def __iter__(self):
        return iter(self.signatures)


def _read_kb(path):
    import yaml

    try:
        return datafile.read_yaml(path)
    except (OSError, IOError, yaml.YAMLError) as exc:
        raise KnowledgeBaseError("cannot read the knowledge base: {}".format(exc), path)


def _entries(path, data, key, kind, families=None, anchors=()):
    out, seen = [], set()
    items = data.get(key) or []
    if not isinstance(items, list):
        raise KnowledgeBaseError("`{}` must be a list".format(key), path)
    for i, entry in enumerate(items):
        ident = entry.get("id", "?") if isinstance(entry, dict) else "?"
        where = "{}: {} {} ({})".format(path, key, i, ident)
        if not isinstance(entry, dict):
            raise KnowledgeBaseError("not a mapping", where)
        need = REQUIRED if kind == "signature" else ("id", "title", "patterns", "cause", "fix")
        missing = [k for k in need if not entry.get(k)]
        if missing:
            raise KnowledgeBaseError("missing field(s): " + ", ".join(missing), where)
        if ident in seen:
            raise KnowledgeBaseError("duplicate id", where)
        seen.add(ident)
        if families is not None and entry["family"] not in families:
            raise KnowledgeBaseError("unknown family {!r} (known: {})".format(
                entry["family"], ", ".join(sorted(families))), where)
        try:
            out.append(Entry(entry, kind, anchors))
        except re.error as exc:
            raise KnowledgeBaseError("bad regex: {}".format(exc), where + ".patterns")
    return out


def load(path=None):
    """The knowledge base at `path` (default: the packaged one), parsed once per process."""
    path = str(path or KB_PATH)
    kb = _KB_CACHE.get(path)
    if kb is None:
        data = _read_kb(path)
        if isinstance(data, list):  # the old flat format: signatures only
            data = {"signatures": data}
        if not isinstance(data, dict):
            raise KnowledgeBaseError("expected a mapping with `signatures`", path)
        anchors = [a.translate(FOLD) for a in data.get("prefilter") or []]
        families = _entries(path, data, "families", "family", anchors=anchors)
        fam_ids = set(f.id for f in families) if families else None
        signatures = _entries(path, data, "signatures", "signature", fam_ids, anchors)
        kb = _KB_CACHE[path] = KnowledgeBase(signatures, families, data.get("prefilter") or [])
    return kb


class Scanner(object):
    """Feeds text (one chunk at a time) through the knowledge base; `results()` ranks."""

    def __init__(self, kb=None):
        self.kb = kb or load()
        self.hits = {}  # entry id -> [first offset, count, snippet, line, symbol answer or None]
        self.cache = {}  # digit-free window -> list of (entry id, snippet, start, symbol answer)

    def _record(self, entry_id, offset, snippet, line, resolved=None):
        hit = self.hits.get(entry_id)
        if hit is None:
            self.hits[entry_id] = [offset, 1, snippet[:SNIPPET], line[:SNIPPET], resolved]
        else:
            hit[1] += 1
            hit[4] = hit[4] or resolved

    def _match(self, window, low):
        """-> [(entry id, snippet, start, symbol answer)] for one window; signatures first, a
        family only when no signature explained the window. Only entries keyed by an anchor
        present in the window are tried. A removed name the symbol table knows rides on the
        first signature, or is the answer itself."""
        kb = self.kb
        picked = set(kb.always)
        for anchor in kb.anchors:
            if anchor in low:
                picked.update(kb.index.get(anchor, ()))
        found = []
        text = None
        n_signatures = len(kb.signatures)
        for n in sorted(picked):
            if found and n >= n_signatures:
                break  # a signature explained it: no family answer
            entry = kb.order[n]
            for rx, alts in entry.patterns:
                if alts is not None and not any(a in low for a in alts):
                    continue
                if text is None:
                    text = normalise(window)
                m = rx.search(text)
                if m:
                    found.append((entry.id, m.group(0), m.start(), entry.filled(m)))
                    break
        return self._resolve(window, low, found)

    def _resolve(self, window, low, found):
        """A resolver's answer (a removed name from symbols.yaml, an OD API field from od_protos.yaml, a GPU-stack
        version from compat_matrix.yaml) rides on the first signature that matched (a generic one it `replaces`
        takes its texts), or is the answer itself (its carrier) when none did."""
        resolved, carrier = None, None
        if any(t in low for t in symbols.TRIGGERS):
            resolved, carrier = symbols.resolve(normalise(window), low), SYMBOL_ID
        if resolved is None and any(t in low for t in protofields.TRIGGERS):
            resolved, carrier = protofields.resolve(normalise(window), low), PROTO_ID
        if resolved is None and any(t in low for t in gpustack.TRIGGERS):
            resolved, carrier = gpustack.resolve(normalise(window), low), GPU_ID
        if resolved is None and any(t in low for t in pyenv.TRIGGERS):
            resolved, carrier = pyenv.resolve(normalise(window), low), PYENV_ID
        if resolved is None and any(t in low for t in shapes.TRIGGERS):
            resolved, carrier = shapes.resolve(normalise(window), low), SHAPE_ID
        if resolved is None:
            return found
        replaced = set(resolved.get("replaces") or ())
        sigs = [f for f in found if self.kb.by_id[f[0]].kind == "signature"]
        if sigs and sigs[0][0] not in replaced and not resolved.get("attach", True):
            return found  # a specific signature knows this case better than a far guess
        if sigs:
            first = sigs[0]
            return [(first[0], first[1], first[2], resolved)] + [f for f in found if f is not first]
        return [(carrier, resolved["matched"], resolved["start"], resolved)]

    def feed_short(self, text):
        """A pasted message: match the whole text as one window (it may wrap anywhere)."""
        low = text.translate(FOLD)
        norm = normalise(text)
        for entry_id, snippet, start, resolved in self._match(text, low):
            self._record(entry_id, start, snippet, _line_at(norm, start), resolved)

    def feed(self, chunk, base=0):
        """Scan complete lines of `chunk` (a str) whose first character is at offset `base`.

        1. fold case, digits (-> 0) and quotes in one str.translate (offsets unchanged);
        2. keep each distinct folded line once (logs repeat: step lines differ in digits only);
        3. find prefilter anchors in the distinct lines only (str.find, C speed);
        4. match each candidate line's first occurrence, with its neighbours, once."""
        low = chunk.translate(FOLD)
        distinct = set(low.split("\n"))
        joined = "\n".join(distinct)
        candidates = set()
        for anchor in self.kb.anchors:
            i = joined.find(anchor)
            while i >= 0:
                start = joined.rfind("\n", 0, i) + 1
                end = joined.find("\n", i)
                if end < 0:
                    end = len(joined)
                candidates.add(joined[start:end])
                i = joined.find(anchor, end)
        spans = []
        if len(candidates) < 64:  # few: find each one's first occurrence (C speed)
            for line in candidates:
                if low.startswith(line) and low[len(line):len(line) + 1] in ("", "\n"):
                    start = 0
                else:
                    start = low.find("\n" + line + "\n") + 1
                    if start == 0:  # the last line, without a newline after it
                        start = len(low) - len(line)
                spans.append((start, start + len(line)))
        else:  # many: one pass over the lines keeps it linear
            pos = 0
            for line in low.split("\n"):
                if line in candidates:
                    candidates.discard(line)
                    spans.append((pos, pos + len(line)))
                pos += len(line) + 1
        for start, end in sorted(spans):
            prev = low.rfind("\n", 0, max(start - 1, 0)) + 1 if start else 0
            nxt = low.find("\n", end + 1)
            if nxt < 0:
                nxt = len(low)
            key = low[prev:nxt]
            found = self.cache.get(key)
            if found is None:
                found = self._match(chunk[prev:nxt], key)
                # the cache key folds digits: an answer read from a version in the text is not reused
                if len(self.cache) < 100000 and not any(f[3] and f[3].get("uncacheable") for f in found):
                    self.cache[key] = found
            line = chunk[start:end].strip()
            for entry_id, snippet, _, resolved in found:
                shown = _matched_line(chunk[prev:nxt], snippet, line)
                self._record(entry_id, base + start, snippet, shown, resolved)

    def results(self):
        """Best first: real problems before harmless notices, then weight, then first offset.
        A family answer is dropped when a signature of that family matched."""
        matched_families = set(self.kb.by_id[i].family for i in self.hits
                               if self.kb.by_id[i].kind == "signature" and not self.kb.by_id[i].harmless)
        ranked = []
        for entry_id, (offset, count, snippet, line, resolved) in self.hits.items():
            entry = self.kb.by_id[entry_id]
            if entry.kind == "family" and entry.id in matched_families:
                continue
            ranked.append(((entry.harmless, -entry.weight, offset), entry, snippet, line, count, resolved))
        ranked.sort(key=lambda t: t[0])
        out = []
        for _, entry, snippet, line, count, resolved in ranked:
            d = entry.as_dict(snippet, line)
            if resolved and "fill" in resolved:  # the message's variable part, in the signature's own texts
                d.update(entry.rendered(resolved["fill"]))
            else:
                d = with_symbol(d, resolved)
            d["count"] = count
            out.append(d)
        return out


def with_symbol(match, resolved):
    """A match carrying a resolver's answer: the carrier (and a generic signature the resolver `replaces`)
    takes its texts, a signature keeps its own and gets the replacement first in its fix."""
    if not resolved:
        return match
    if match["id"] in CARRIERS or match["id"] in (resolved.get("replaces") or ()):
        match.update((k, resolved[k]) for k in ("title", "cause", "fix", "family"))
        match["sources"] = list(resolved["sources"])
    else:
        match["fix"] = resolved["fix"] + " " + match["fix"]
        match["sources"] = match["sources"] + [s for s in resolved["sources"] if s not in match["sources"]]
    match["resolved_from"] = resolved.get("resolved_from") or "symbols.yaml " + resolved["group"]
    match["replacement"] = resolved["replacement"]
    return match


def _matched_line(window, snippet, default):
    """The line of `window` (a candidate line and its neighbours) where the match starts, so
    `matched:` shows that line and not the neighbour that brought it to the regexes."""
    head = normalise(snippet)[:60]
    for text in window.split("\n"):
        if head and head in normalise(text):
            return text.strip()
    return default


def _line_at(text, pos):
    return text[max(0, pos - 120):pos + 180]


def explain(text, kb=None):
    """-> list of match dicts (id, kind, family, title, cause, fix, harmless, sources, matched,
    line, count), best first."""
    scanner = Scanner(kb)
    if len(text) <= SHORT_TEXT:
        scanner.feed_short(text)
    else:
        scanner.feed(text)
    return scanner.results()


def explain_lines(text, kb=None):
    """Like explain() but always line by line, as a log file is scanned."""
    scanner = Scanner(kb)
    scanner.feed(text)
    return scanner.results()


def explain_text(text, kb=None):
    """The best non-harmless match for `text` (an exception, a traceback, captured output),
    or None. Never raises: a broken knowledge base must not hide the original error."""
    try:
        for match in explain(text or "", kb):
            if not match["harmless"]:
                return match
    except Exception:  # noqa: BLE001 - explaining is best effort
        return None
    return None


class NotText(ValueError):
    """The input is empty or binary, not a log."""


def looks_binary(head):
    """True for bytes that are not a text log: NUL bytes, or mostly undecodable."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    text = head.decode("utf-8", "replace")
    bad = text.count(u"\ufffd") + sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v\x1b")
    return bad > len(text) * 0.1


def scan_stream(fh, kb=None, chunk_bytes=CHUNK_BYTES):
    """Scan a binary file object chunk by chunk (memory stays ~2 chunks); -> results().
    Raises NotText for empty or binary input."""
    scanner = Scanner(kb)
    rest = b""
    base = 0
    first = True
    seen_text = False
    while True:
        block = fh.read(chunk_bytes)
        if first:
            if looks_binary(block[:BINARY_PROBE]):
                raise NotText("binary data, not a text log")
            first = False
        if not block:
            break
        data = rest + block
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1:]
        text = data[:cut + 1].decode("utf-8", "replace")
        seen_text = seen_text or bool(text.strip())
        scanner.feed(text, base)
        base += len(text)
    if rest:
        text = rest.decode("utf-8", "replace")
        seen_text = seen_text or bool(text.strip())
        scanner.feed(text, base)
    if not seen_text:
        raise NotText("empty input: nothing to explain")
    return scanner.results()


def explain_file(path, kb=None):
    with open(path, "rb") as fh:
        return scan_stream(fh, kb)


def render_text(match, indent="  "):
    """Plain-text explanation lines, for printing under an error."""
    lines = ["{}likely cause: {} [{}]".format(indent, match["title"], match["id"]),
             "{}why: {}".format(indent, match["cause"]),
             "{}fix: {}".format(indent, match["fix"])]
    return "\n".join(lines)
