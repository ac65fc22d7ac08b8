"""`provision image build|ls`: the images/<flavour>/ Dockerfiles, built through the docker SDK.

The build context is assembled here (not `docker build .`): images/<flavour>/, images/common/,
odrun/, odcore/ and, when the flavour's Python matches this host's, a wheelhouse of its locks built on the
host (~/.cache/odstack/wheelhouse/<flavour>). With the wheelhouse the container needs no network
and no registry certificates (containers here cannot reach PyPI; hosts behind proxies often can't).
Labels (TF/CUDA/cuDNN/Python) are passed as build args from provision.compat.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from odcore import install
from odcore import cache
from odcore.cache import cache_dir
from odcore.errors import UserError
from provision import engine

ROOT = Path(__file__).resolve().parent.parent  # holds odrun/ and odcore/ (a checkout or site-packages)
# images/: $ODSTACK_IMAGES > the wheel's odcore/share/images > the checkout's images/
IMAGES = Path(install.find("images", env="ODSTACK_IMAGES") or str(ROOT / "images"))
LABEL = "io.odstack."
WHEELHOUSE = Path(os.environ.get("ODSTACK_WHEELHOUSE") or cache_dir("wheelhouse"))
LOCKS = ("requirements.lock", "odapi.lock")


def flavors():
    return sorted(p.parent.name for p in IMAGES.glob("*/Dockerfile"))


def check_flavor(flavor):
    names = flavors()
    if flavor not in names:
        import difflib

        near = difflib.get_close_matches(flavor, names, n=1)
        raise UserError("unknown image flavour {!r} (have: {})".format(flavor, ", ".join(names)),
                        fix="did you mean {}?".format(near[0]) if near else "pick one of " + ", ".join(names))
    return IMAGES / flavor


def lock_header(flavor):
    """The `# key: value` lines at the top of a flavour's requirements.lock."""
    head = {}
    for line in (IMAGES / flavor / "requirements.lock").read_text().splitlines():
        m = re.match(r"#\s*([a-z-]+):\s*(.*)$", line)
        if m:
            head.setdefault(m.group(1), m.group(2).strip())
    return head


def label_args(flavor):
    """Build args for the OCI labels, from the compat matrix; {} keeps the Dockerfile defaults."""
    try:
        from provision import compat

        img = compat.load().image(flavor)
    except ImportError:
        return {}
    except UserError as exc:  # no matrix / unknown flavour there: the Dockerfile's defaults stand
        sys.stderr.write("note: labels from the Dockerfile defaults ({})\n".format(exc.message))
        return {}
    args = {"FLAVOR": flavor}
    for arg, key in (("TF_VERSION", "tf"), ("CUDA_VERSION", "cuda"), ("CUDNN_VERSION", "cudnn"),
                     ("PYTHON_VERSION", "python")):
        if img.get(key) not in (None, ""):
            args[arg] = str(img[key])
    # An image contains what its lock installs: a TF pinned there wins over the matrix row.
    pinned = locked_tf(flavor)
    if pinned and args.get("TF_VERSION") not in (None, pinned):
        sys.stderr.write("note: compat matrix says TF {} for {}, its lock installs {}: labelling {}\n".format(
            args["TF_VERSION"], flavor, pinned, pinned))
    if pinned:
        args["TF_VERSION"] = pinned
    return args


def locked_tf(flavor):
    """The TensorFlow version a flavour's lock installs itself (None when the base image brings it)."""
    for line in (IMAGES / flavor / "requirements.lock").read_text().splitlines():
        m = re.match(r"(tensorflow|tensorflow-cpu|tensorflow-gpu)==([\w.]+)\s*$", line.strip(), re.I)
        if m:
            return m.group(2)
    return None


def default_tag(flavor):
    return "odstack:" + flavor


# --- wheelhouse --------------------------------------------------------------------------------

def host_can_wheel(flavor):
    """Wheels built here install there only for the same Python minor on x86_64 Linux."""
    py = lock_header(flavor).get("python", "")
    host = "{}.{}".format(*sys.version_info[:2])
    return sys.platform.startswith("linux") and os.uname().machine == "x86_64" and \
        ".".join(py.split(".")[:2]) == host


def platform_args(plat):
    """--platform flags for every manylinux tag a glibc 2.N x86_64 system accepts (pip's own list for
    the running host; given one --platform, pip takes it literally)."""
    major, minor = (int(x) for x in re.match(r"manylinux_(\d+)_(\d+)_x86_64", plat).groups())
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    out = []
    for k in range(minor, 4, -1):
        out += ["--platform", "manylinux_{}_{}_x86_64".format(major, k)]
        if k in legacy:
            out += ["--platform", legacy[k] + "_x86_64"]
    return out


def target_args(flavor):
    """pip flags that select files for the flavour's Python and glibc (from its lock header)."""
    head = lock_header(flavor)
    return ["--python-version", head["python"]] + platform_args(head["platform"].split()[0])


def extra_pins(flavor):
    """Pins the Dockerfile installs besides the locks (e.g. a newer pip first): wheelhouse them too."""
    text = (IMAGES / flavor / "Dockerfile").read_text()
    return re.findall(r"--find-links /tmp/odstack-build ((?:pip|setuptools|wheel)==[\w.]+)", text)


def wheelhouse(flavor, dest=None, quiet=False):
    """Build (or reuse) the flavour's wheelhouse; returns its folder.

    Same Python as this host: `pip wheel` (sdists become wheels here). Another Python: `pip download`
    for that Python/glibc (binary wheels; sdists such as the OD API are built in the container with
    --no-build-isolation, from the base image's setuptools)."""
    dest = Path(dest) if dest else WHEELHOUSE / flavor
    locks = [IMAGES / flavor / name for name in LOCKS]
    extra = extra_pins(flavor)
    stamp = hashlib.sha256(b"".join(p.read_bytes() for p in locks) + " ".join(extra).encode()).hexdigest()[:16]
    if (dest / ".stamp").exists() and (dest / ".stamp").read_text().strip() == stamp:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    cache.mark(dest)  # `odrun cache clear` removes only marked entries
    pip = [sys.executable, "-m", "pip"]
    if host_can_wheel(flavor):
        cmds = [pip + ["wheel", "--no-deps", "--find-links", str(dest), "-w", str(dest),
                       "-r", str(locks[0]), "-r", str(locks[1])]]
    else:
        get = pip + ["download", "--no-deps", "-d", str(dest)] + target_args(flavor)
        cmds = [get + ["--only-binary=:all:", "-r", str(locks[0])] + extra, get + ["-r", str(locks[1])]]
    if not quiet:
        sys.stderr.write("wheelhouse: {} (first time ~1-2 min)\n".format(dest))
    for cmd in cmds:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if proc.returncode != 0:
            raise UserError("building the wheelhouse failed:\n" + proc.stdout[-2000:], where=str(dest),
                            fix="check that PyPI is reachable from this host, or pass --wheelhouse none")
    (dest / ".stamp").write_text(stamp + "\n")
    return dest


# --- context + build ---------------------------------------------------------------------------

def _skip(info):
    name = info.name
    if "__pycache__" in name or name.endswith((".pyc", ".pyo")):
        return None
    if name == "odcore/share" or name.startswith("odcore/share/"):
        return None  # a wheel's copy of the top-level data (install.SHARE): the images do not read it
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_context(flavor, wheels=None):
    """A tar file (open, at offset 0) with what the flavour's Dockerfile COPYs."""
    fh = tempfile.TemporaryFile(prefix="odstack-context-")
    with tarfile.open(fileobj=fh, mode="w") as tar:
        tar.add(str(IMAGES / flavor), arcname="images/" + flavor, filter=_skip)
        tar.add(str(IMAGES / "common"), arcname="images/common", filter=_skip)  # what every flavour shares
        tar.add(str(ROOT / "odrun"), arcname="odrun", filter=_skip)
        tar.add(str(ROOT / "odcore"), arcname="odcore", filter=_skip)
        if wheels:
            for dist in sorted(Path(wheels).iterdir()):
                if dist.name.endswith((".whl", ".tar.gz", ".zip")):
                    tar.add(str(dist), arcname="wheels/" + dist.name, filter=_skip)
    fh.seek(0)
    return fh


def _buildargs(flavor, base_image=None, index_url=None):
    buildargs = label_args(flavor)
    if base_image:
        buildargs["BASE_IMAGE"] = base_image
    if index_url:
        buildargs["PIP_INDEX_URL"] = index_url
    return buildargs


def check_wheelhouse(wheels):
    """--wheelhouse DIR must be an existing folder (checked before the engine is asked)."""
    if wheels in (None, "auto", "none") or Path(wheels).is_dir():
        return
    raise UserError("wheelhouse folder not found" if not Path(wheels).exists() else "not a folder",
                    where="--wheelhouse {}".format(wheels),
                    fix="pass an existing folder of wheels, --wheelhouse auto (built on this host) or "
                        "--wheelhouse none (pip in the container uses the index)")


def plan(flavor, tag=None, base_image=None, wheels="auto", index_url=None):
    """What `build` would do, without an engine or a download: tag, Dockerfile, build args, the
    wheelhouse it would use and the build context's files."""
    check_flavor(flavor)
    check_wheelhouse(wheels)
    buildargs = _buildargs(flavor, base_image, index_url)
    if wheels == "auto":
        wheels = str(WHEELHOUSE / flavor)
        wheel_note = "reused" if (WHEELHOUSE / flavor / ".stamp").exists() else "fetched first, by pip on this host"
    elif wheels in (None, "none"):
        wheels, wheel_note = None, "none: pip in the container uses the index"
    else:
        wheel_note = "given"
    ctx = build_context(flavor, wheels if wheels and Path(wheels).is_dir() else None)
    try:
        with tarfile.open(fileobj=ctx, mode="r") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
    finally:
        ctx.close()
    return {"flavor": flavor, "tag": tag or default_tag(flavor), "dockerfile": str(IMAGES / flavor / "Dockerfile"),
            "base_image": base_image or default_base(flavor), "buildargs": buildargs,
            "wheelhouse": wheels, "wheelhouse_note": wheel_note,
            "context": {"files": len(members), "bytes": sum(m.size for m in members),
                        "top": sorted(set(m.name.split("/")[0] for m in members))},
            "context_files": sorted(m.name for m in members)}


def build(flavor, tag=None, base_image=None, wheels="auto", network=None, no_cache=False,
          progress=True, log=None, index_url=None):
    """Build one flavour; returns dict(flavor, tag, id, size, seconds, labels)."""

    check_flavor(flavor)
    check_wheelhouse(wheels)
    tag = tag or default_tag(flavor)
    buildargs = _buildargs(flavor, base_image, index_url)
    if wheels == "auto":
        wheels = wheelhouse(flavor, quiet=not progress)
    elif wheels in (None, "none"):
        wheels = None
    if wheels:
        buildargs["PIP_NO_INDEX"] = "1"  # everything is in the wheelhouse: never wait on an index
    api = engine.client(low_level=True)
    previous = _image_id(api, tag)
    started = time.time()
    ctx = build_context(flavor, wheels)
    try:
        stream = api.build(fileobj=ctx, custom_context=True, dockerfile="images/{}/Dockerfile".format(flavor),
                           tag=tag, buildargs=buildargs, decode=True, rm=True, forcerm=True, pull=False,
                           nocache=no_cache, network_mode=network)
        image_id = _follow(stream, flavor, progress, log, base_image or default_base(flavor))
    except Exception as exc:  # noqa: BLE001 - engine errors become UserErrors with a fix
        import docker

        if isinstance(exc, docker.errors.DockerException):
            raise engine.engine_error(exc) from None
        raise
    finally:
        ctx.close()
    info = api.inspect_image(image_id or tag)
    if previous and previous != info["Id"]:  # the old build lost its tag: do not leave 2 GB dangling
        try:
            api.remove_image(previous)
        except Exception:  # noqa: BLE001 - still used by a container or another tag: keep it
            pass
    return {"flavor": flavor, "tag": tag, "id": info["Id"], "size": info["Size"],
            "seconds": round(time.time() - started, 1), "base_image": buildargs.get("BASE_IMAGE"),
            "wheelhouse": str(wheels) if wheels else None,
            "labels": {k[len(LABEL):]: v for k, v in (info["Config"].get("Labels") or {}).items()
                       if k.startswith(LABEL)}}


def _image_id(api, tag):
    import docker

    try:
        return api.inspect_image(tag)["Id"]
    except docker.errors.DockerException:
        return None


def default_base(flavor):
    m = re.search(r"^ARG BASE_IMAGE=(\S+)", (IMAGES / flavor / "Dockerfile").read_text(), re.M)
    return m.group(1) if m else None


PULL_FAILED = ("pull access denied", "manifest unknown", "no such host", "unauthorized", "repository does not exist",
               "i/o timeout", "TLS handshake timeout", 'Get "https://')


def _follow(stream, flavor, progress, log, base=None):
    """Show the engine's build stream: a bar over the Dockerfile's steps plus the log lines."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    image_id, tail = None, []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("build " + flavor, total=None)
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                if any(p in detail for p in PULL_FAILED) and not any(l.startswith("Step 3/") for l in tail):
                    raise UserError("cannot pull the base image {}: {}".format(base, detail.strip()),
                                    where="images/{}/Dockerfile".format(flavor),
                                    fix="pull it where its registry is reachable (docker pull {}; NGC images need "
                                        "`docker login nvcr.io` with an NGC API key), or build FROM a local "
                                        "image: --base-image IMG".format(base))
                raise UserError("image build failed: " + detail.strip(),
                                where="images/{}/Dockerfile".format(flavor),
                                fix="see the build log above" + ("" if progress else " (rerun without --json)"))
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            line = chunk.get("stream", "").rstrip()
            if not line:
                continue
            tail = (tail + [line])[-20:]
            if log:
                log.write(line + "\n")
            m = re.match(r"Step (\d+)/(\d+) : (.*)", line)
            if m:
                bar.update(task, completed=int(m.group(1)) - 1, total=int(m.group(2)),
                           description="build {}: {}".format(flavor, m.group(3)[:50]))
            if progress:
                console.print(line, style="dim", markup=False, highlight=False)
        bar.update(task, completed=bar.tasks[0].total or 1)
    return image_id


def list_images():
    """odstack images on the engine, from their labels."""

    cli = engine.client()
    rows = []
    for img in cli.images.list(filters={"label": LABEL + "flavor"}):
        labels = img.labels or {}
        rows.append({"tags": img.tags, "id": img.short_id.split(":")[-1], "flavor": labels.get(LABEL + "flavor"),
                     "tf": labels.get(LABEL + "tf"), "cuda": labels.get(LABEL + "cuda"),
                     "cudnn": labels.get(LABEL + "cudnn"), "python": labels.get(LABEL + "python"),
                     "size_mb": round(img.attrs.get("Size", 0) / 1e6), "created": img.attrs.get("Created", "")[:16].replace("T", " ")})
    return sorted(rows, key=lambda r: (r["flavor"] or "", r["tags"]))


# --- CLI ---------------------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("image", help="build and list the training images (images/<flavour>)",
                              description="Build the odstack images (one per flavour in images/) or list "
                                          "the ones on this engine.")
    sub = p.add_subparsers(dest="image_command", metavar="ACTION")
    b = sub.add_parser("build", help="build one flavour (or --all)")
    b.add_argument("flavors", nargs="*", metavar="FLAVOR", help="one of: " + ", ".join(flavors()))
    b.add_argument("--all", action="store_true", help="build every flavour")
    b.add_argument("--base-image", metavar="IMG", help="FROM this image instead of the Dockerfile's default")
    b.add_argument("--tag", metavar="T", help="image tag (default odstack:FLAVOR; one flavour only)")
    b.add_argument("--wheelhouse", default="auto", metavar="auto|none|DIR",
                   help="install from distributions fetched by this host (default auto: "
                        "~/.cache/odstack/wheelhouse/FLAVOR; none: pip in the container uses the index)")
    b.add_argument("--index-url", metavar="URL",
                   help="PyPI mirror for pip in the container, e.g. https://mirrors.aliyun.com/pypi/simple/")
    b.add_argument("--network", metavar="MODE", help="network for RUN steps (e.g. host)")
    b.add_argument("--no-cache", action="store_true", help="do not reuse cached layers")
    b.add_argument("--dry-run", action="store_true",
                   help="print the build plan (tag, Dockerfile, build args, wheelhouse, context files) "
                        "and build nothing; needs no Docker engine")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(func=run_build)
    ls = sub.add_parser("ls", help="list the odstack images on this engine (from their labels)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_ls)
    p.set_defaults(func=lambda args: p.print_help() or 2)
    p.format_help = lambda: _help_with_flavours(p)  # the matrix is read only when help is shown


def flavour_lines():
    """One line per flavour with a Dockerfile: what compat_matrix.yaml says it is."""
    from provision import compat

    have = flavors()
    try:
        images = {i["flavor"]: i for i in compat.load().images()}
    except UserError:  # a broken matrix must not break --help: the names alone
        images = {}
    out = []
    for name in have:
        img = images.get(name)
        what = "TF {}, {}, FROM {}".format(img["tf"], "CUDA " + img["cuda"] if img.get("cuda") else "CPU only",
                                           img["image"]) if img else ""
        out.append("  {:<11} {}".format(name, what).rstrip())
    return out


def _help_with_flavours(parser):
    parser.epilog = "\n".join(["flavours (images/, described by compat_matrix.yaml):"] + flavour_lines() + [
        "", "examples:", "  provision matrix recommend          # which flavour for this machine's GPU",
        "  provision image build cpu", "  provision image build tf2-gpu --dry-run", "  provision image ls"])
    return argparse.ArgumentParser.format_help(parser)


def run_build(args):
    names = flavors() if args.all else args.flavors
    if not names:
        raise UserError("name a flavour or pass --all", fix="provision image build cpu")
    if args.tag and len(names) > 1:
        raise UserError("--tag needs exactly one flavour", where="--tag")
    if args.dry_run:
        return _print_plans([plan(f, tag=args.tag, base_image=args.base_image, wheels=args.wheelhouse,
                                  index_url=args.index_url) for f in names], args.json)
    results = []
    for flavor in names:
        res = build(flavor, tag=args.tag, base_image=args.base_image, wheels=args.wheelhouse,
                    network=args.network, no_cache=args.no_cache, progress=not args.json,
                    index_url=args.index_url)
        results.append(res)
        if not args.json:
            print("built {tag} ({size:.0f} MB) in {seconds:.0f} s: TF {tf}, CUDA {cuda}, cuDNN {cudnn}, "
                  "Python {py}".format(tag=res["tag"], size=res["size"] / 1e6, seconds=res["seconds"],
                                       tf=res["labels"].get("tf"), cuda=res["labels"].get("cuda"),
                                       cudnn=res["labels"].get("cudnn"), py=res["labels"].get("python")))
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    return 0


def _print_plans(plans, as_json):
    if as_json:
        print(json.dumps(plans if len(plans) > 1 else plans[0], indent=2))
        return 0
    for p in plans:
        print("would build {tag} from {dockerfile} (FROM {base})".format(base=p["base_image"], **p))
        for k, v in sorted(p["buildargs"].items()):
            print("  --build-arg {}={}".format(k, v))
        print("  wheelhouse: {} ({})".format(p["wheelhouse"] or "-", p["wheelhouse_note"]))
        print("  context: {files} files, {mb:.1f} MB: {top}".format(
            mb=p["context"]["bytes"] / 1e6, top=", ".join(p["context"]["top"]), files=p["context"]["files"]))
    return 0


def run_ls(args):
    rows = list_images()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Column, Table

    table = Table(Column("image", overflow="fold", min_width=16), "flavour", "TF", "CUDA", "cuDNN", "Python",
                  "size MB", Column("created", no_wrap=True))
    for r in rows:
        table.add_row(", ".join(r["tags"]) or r["id"], r["flavor"], r["tf"], r["cuda"], r["cudnn"],
                      r["python"], str(r["size_mb"]), r["created"])
    Console().print(table if rows else "no odstack images yet: provision image build cpu")
    return 0
