"""`odrun cache list|clear`: the caches odstack keeps under $ODSTACK_CACHE or ~/.cache/odstack
(see odcore.cache for what each holds).

  odrun cache list         # name, size and path of each cache (--json: as JSON)
  odrun cache clear zoo    # remove those caches (all of them without a NAME)

Only entries odstack made (holding the marker file odcore.cache.MARKER) are listed as caches and
removed; anything else under the root is listed as "not ours" and always kept. A cache root that
is a symlink (or lies under one) is named with where it points, and `clear` refuses it (exit 2):
set $ODSTACK_CACHE to the real folder to clear there.
"""
import json

from odcore import cache
from odcore.errors import UserError
from odrun import tasks


def add_parser(sub):
    p = sub.add_parser("cache", help="list or clear odstack's caches (pretrained models, wheelhouses, ...)",
                       description=__doc__)
    actions = p.add_subparsers(dest="cache_command", metavar="ACTION")
    ls = actions.add_parser("list", help="each cache with its size and path")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    ls.set_defaults(func=run_list)
    clear = actions.add_parser("clear", help="remove caches (all without a NAME)")
    clear.add_argument("names", nargs="*", metavar="NAME", help="cache names as `odrun cache list` shows them "
                                                                 "(default: all)")
    for parser in (ls, clear):
        tasks.file_defaults(parser, "cache")  # defaults: odrun/data/defaults.yaml
    clear.add_argument("--json", action="store_true", help="print what was removed as JSON")
    clear.set_defaults(func=run_clear)
    p.set_defaults(func=run_list, json=False)
    return p


def _mb(size):
    return "{:.1f} MB".format(size / 1e6)


def run_list(args):
    rows, others, link = cache.entries(), cache.entries(ours=False), cache.root_link()
    if args.json:
        print(json.dumps({"root": cache.cache_root(), "resolved": link[1] if link else None,
                          "caches": [{"name": n, "path": p, "bytes": s} for n, p, s in rows],
                          "not_ours": [{"name": n, "path": p, "bytes": s} for n, p, s in others]}, indent=2))
        return 0
    print("cache root: {} (set ${} to move it)".format(cache.cache_root(), cache.ENV))
    if link:
        print("  (a symlink to {})".format(link[1]))
    for name, path, size in rows:
        print("  {:16s} {:>10s}  {}".format(name, _mb(size), path))
    if not rows:
        print("  (empty)")
    _not_ours(others)
    return 0


def _not_ours(others):
    for name, _path, _size in others:
        print("  {:16s} {:>10s}  not ours (no {} marker): kept".format(name, "", cache.MARKER))


def _refuse_link():
    link = cache.root_link()
    if link:
        raise UserError("the cache root {} is a symlink to {}; nothing was removed".format(*link),
                        where="odrun cache clear",
                        fix="to clear the folder it points to, name it: {}={} odrun cache clear "
                            "(only entries odstack made are removed)".format(cache.ENV, link[1]))


def run_clear(args):
    _refuse_link()
    known = {name for name, _p, _s in cache.entries()}
    others = [n for n in args.names if n in {name for name, _p, _s in cache.entries(ours=False)}]
    if others:
        raise UserError("not made by odstack (no {} marker in it): {}; nothing was removed".format(
            cache.MARKER, ", ".join(others)), where="odrun cache clear",
            fix="remove it yourself if you mean to; odstack's caches: " + (", ".join(sorted(known)) or "(none)"))
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise UserError("no such cache: " + ", ".join(unknown), where="odrun cache clear",
                        fix="one of: " + (", ".join(sorted(known)) or "(the cache is empty)"))
    freed = cache.clear(args.names)
    if args.json:
        print(json.dumps({"removed": [{"name": n, "bytes": s} for n, s in freed],
                          "kept_not_ours": [n for n, _p, _s in cache.entries(ours=False)]}, indent=2))
    else:
        for name, size in freed:
            print("removed {} ({})".format(name, _mb(size)))
        print("freed {}".format(_mb(sum(s for _n, s in freed))))
        _not_ours(cache.entries(ours=False))
    return 0
