"""`odrun cache list|clear`: the caches odstack keeps under $ODSTACK_CACHE or ~/.cache/odstack
(see odcore.cache for what each holds).

  odrun cache list         # name, size and path of each cache (--json: as JSON)
  odrun cache clear zoo    # remove those caches (all of them without a NAME)
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
    rows = cache.entries()
    if args.json:
        print(json.dumps({"root": cache.cache_root(),
                          "caches": [{"name": n, "path": p, "bytes": s} for n, p, s in rows]}, indent=2))
        return 0
    print("cache root: {} (set ${} to move it)".format(cache.cache_root(), cache.ENV))
    for name, path, size in rows:
        print("  {:16s} {:>10s}  {}".format(name, _mb(size), path))
    if not rows:
        print("  (empty)")
    return 0


def run_clear(args):
    known = {name for name, _p, _s in cache.entries()}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise UserError("no such cache: " + ", ".join(unknown), where="odrun cache clear",
                        fix="one of: " + (", ".join(sorted(known)) or "(the cache is empty)"))
    freed = cache.clear(args.names)
    if args.json:
        print(json.dumps({"removed": [{"name": n, "bytes": s} for n, s in freed]}, indent=2))
    else:
        for name, size in freed:
            print("removed {} ({})".format(name, _mb(size)))
        print("freed {}".format(_mb(sum(s for _n, s in freed))))
    return 0
