"""Pascal VOC XML as labelImg and CVAT ('PASCAL VOC 1.1' export) write it.

labelImg: one XML beside each image, <filename>, <path>, <size>, objects with <pose>,
<truncated>, <difficult> and integer <bndbox>. CVAT: Annotations/*.xml with float
coordinates and an <occluded> flag, images in the sibling JPEGImages/ folder.
"""
import functools
import os

from odcore import imagefile
from lxml import etree

from odrun.convert import problems as P, safety

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def find_annotations(root):
    """All *.xml under `root`, in a stable (sorted) order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(".xml"))
    return found


def _text(el):
    return (el.text or "").strip() if el is not None else ""


def _flag(el):
    text = _text(el) or "0"
    try:
        return 1 if int(float(text)) else 0
    except (ValueError, OverflowError):  # 'inf' / 'nan': not a flag value
        return 0


def _image_candidates(xml_path, filename, path_text, root, image_dir=None):
    xml_dir = os.path.dirname(xml_path)
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    names = [filename] if filename else []
    cands = []
    for name in names:
        cands += ([os.path.join(image_dir, name)] if image_dir else []) + [
            os.path.join(xml_dir, name),
            os.path.join(os.path.dirname(xml_dir), "JPEGImages", name),  # VOC / CVAT layout
            os.path.join(os.path.dirname(xml_dir), "images", name),  # annotations/ beside images/
            os.path.join(root, name)]
    if path_text:  # labelImg's absolute <path>, valid when the data did not move
        cands.append(path_text)
    # labelImg sometimes writes <filename> without the extension: try the XML's own stem.
    cands += [os.path.join(xml_dir, (filename or stem) + ext) for ext in IMAGE_EXTS]
    seen, unique = set(), []
    for c in cands:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def parse(xml_path, root, image_dir=None):
    """One annotation file -> (item or None, problems)."""
    try:
        tree = etree.parse(xml_path)
    except etree.XMLSyntaxError as exc:
        return None, [P.error(xml_path, "malformed XML: {}".format(exc),)]
    except OSError as exc:
        return None, [P.error(xml_path, "cannot read: {}".format(exc))]
    ann = tree.getroot()
    if ann.tag != "annotation":
        return None, [P.error(xml_path, "not a Pascal VOC file: the root element is <{}>, not <annotation>"
                              .format(ann.tag))]
    found = []
    filename = (ann.findtext("filename") or "").strip()
    path_text = (ann.findtext("path") or "").strip()
    first = os.path.join(image_dir or os.path.dirname(xml_path), filename) if filename else None
    if first and imagefile.present(first):  # the usual labelImg layout: image beside its XML
        image = first
    else:
        cands = _image_candidates(xml_path, filename, path_text, root, image_dir)
        image = next((c for c in cands if imagefile.present(c)), None)
    if image is None:
        return None, [P.error(xml_path, "image {!r} not found (looked in: {})".format(
            filename or "<no <filename>>", ", ".join(cands[:3])))]
    size = None
    try:
        size = (int(float(ann.findtext("size/width"))), int(float(ann.findtext("size/height"))))
    except (TypeError, ValueError, OverflowError):
        pass  # no or bad (even inf/nan) <size>: the image header is what counts anyway
    objects = []
    for i, obj in enumerate(ann.iter("object")):
        # One pass over the children: lxml's findtext() costs ~5 us a call, ten per object.
        fields = {c.tag: c for c in obj}
        name = _text(fields.get("name"))
        where = P.describe_object(i, name)
        if not name:
            found.append(P.error(xml_path, "has no <name> (class)", P.describe_object(i, "")))
            continue
        coords = {c.tag: c.text for c in fields["bndbox"]} if "bndbox" in fields else {}
        try:
            box = [float(coords[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (KeyError, TypeError, ValueError):
            found.append(P.error(xml_path, "<bndbox> needs numeric xmin, ymin, xmax, ymax", where))
            continue
        if not safety.finite(box):
            found.append(safety.not_finite_error(xml_path, "<bndbox> xmin, ymin, xmax, ymax", box, where))
            continue
        objects.append({
            "name": name, "xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3],
            "difficult": _flag(fields.get("difficult")), "truncated": _flag(fields.get("truncated")),
            "pose": _text(fields.get("pose")) or "Unspecified", "where": where,
        })
    xml_dir = os.path.dirname(os.path.abspath(xml_path))
    roots = [root, xml_dir, image_dir] + [os.path.join(os.path.dirname(xml_dir), d) for d in ("JPEGImages", "images")]
    item = {"filename": os.path.basename(image), "image": image, "ann": xml_path,
            "size": size, "objects": objects, "roots": [r for r in roots if r],
            "ref": path_text if image == path_text else filename}
    return item, found


def load(root, files=None, mapper=None, image_dir=None):
    """Every annotation under `root` -> (items, problems); `mapper` may run `parse` in parallel."""
    items, found = [], []
    files = files if files is not None else find_annotations(root)
    results = (mapper or map)(functools.partial(parse, root=root, image_dir=image_dir), files)
    for item, probs in results:
        found += probs
        if item is not None:
            items.append(item)
    return items, found
