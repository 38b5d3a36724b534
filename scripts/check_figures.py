"""Checks every figure doublewin wrote, as files and inside notebook pages, for what a reader
would be misled by:

- error text in place of a drawing (a figure whose drawing failed);
- a legend entry that leaves no mark: every series an SVG names in its embedded data
  (`<desc id="doublewin-series">`: name, colour, points) and that has a finite point must have a
  drawn element in its colour (a line, a marker, a band, a bar); a series of one point needs a
  marker, since a line of one point draws nothing;
- text outside the canvas (estimated from the font size and the anchor);
- labels that overprint one another (two texts of one colour and size whose boxes overlap by
  more than half of the smaller).

usage: check_figures.py PATH [PATH ...]   (SVG files, HTML pages with inline SVGs, or folders)
"""
import base64
import html
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SVG_NS = "{http://www.w3.org/2000/svg}"
ERROR_MARKS = ("drawing the figure failed", "BackendError", "FontUnavailable", "report this as a bug")
SLACK = 3.0  # pixels a text estimate may cross the edge by
MARKS = ("polyline", "path", "line", "circle", "rect", "polygon", "ellipse")


def svgs_in(path):
    """(name, SVG text) of every figure in a file: the file itself, or each inline SVG of a page."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".svg":
        return [(path.name, text)]
    found = re.findall(r"<svg\b.*?</svg>", text, re.S)
    # nbconvert embeds image/svg+xml outputs as data URIs of <img> elements.
    found += [base64.b64decode(b).decode("utf-8", "replace") for b in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", text)]
    return [(f"{path.name} figure {i + 1}", s) for i, s in enumerate(found)]


def number(v, default=0.0):
    try:
        return float(re.sub(r"[a-z%]+$", "", v or ""))
    except ValueError:
        return default


def text_box(el):
    """(x0, y0, x1, y1) of a text element, estimated: 0.55 em per character, ascent 0.76 em and
    descent 0.24 em about the baseline (y shifted by `dy`), turned by a `rotate(a, cx, cy)`."""
    s = "".join(el.itertext()).strip()
    size = number(el.get("font-size"), 12.0)
    w = 0.55 * size * len(s)
    x, y = number(el.get("x")), number(el.get("y"))
    dy = el.get("dy") or "0"
    y += number(dy) * (size if dy.endswith("em") else size / 2 if dy.endswith("ex") else 1.0)
    anchor = el.get("text-anchor", "start")
    x0 = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    corners = [(x0, y - 0.76 * size), (x0 + w, y - 0.76 * size), (x0, y + 0.24 * size), (x0 + w, y + 0.24 * size)]
    turn = re.search(r"rotate\(\s*(-?[\d.]+)(?:[ ,]+(-?[\d.]+)[ ,]+(-?[\d.]+))?", el.get("transform") or "")
    if turn:
        a = math.radians(number(turn.group(1)))
        cx, cy = (number(turn.group(2)), number(turn.group(3))) if turn.group(2) else (0.0, 0.0)
        corners = [(cx + (px - cx) * math.cos(a) - (py - cy) * math.sin(a), cy + (px - cx) * math.sin(a) + (py - cy) * math.cos(a)) for px, py in corners]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return (min(xs), min(ys), max(xs), max(ys)), s


def colours_of(el):
    out = set()
    for attr in ("stroke", "fill"):
        v = (el.get(attr) or "").upper()
        if v.startswith("#"):
            out.add(v)
    style = el.get("style") or ""
    out.update(m.upper() for m in re.findall(r"#[0-9a-fA-F]{6}", style))
    return out


def check_svg(name, svg):
    problems = []
    if any(m in svg for m in ERROR_MARKS):
        return [f"{name}: shows an error instead of a figure"]
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as e:
        # Inline SVG in HTML may carry entities XML does not know; unescape and try again.
        try:
            root = ET.fromstring(html.unescape(svg).replace("&", "&amp;"))
        except ET.ParseError:
            return [f"{name}: not a readable SVG ({e})"]
    width, height = number(root.get("width")), number(root.get("height"))
    elements = list(root.iter())
    marks = {}
    for el in elements:
        tag = el.tag.replace(SVG_NS, "")
        if tag in MARKS:
            for c in colours_of(el):
                marks.setdefault(c, set()).add(tag)
    desc = next((el for el in elements if el.tag.replace(SVG_NS, "") == "desc" and el.get("id") == "doublewin-series"), None)
    series = json.loads(html.unescape(desc.text or "[]")) if desc is not None else []
    for s in series:
        colour = (s.get("color") or "").upper()
        points = [p for p in s.get("points", []) if p[0] is not None and p[1] is not None and all(math.isfinite(v) for v in p)]
        if not colour or not points:
            continue
        drawn = marks.get(colour, set())
        if not drawn:
            problems.append(f"{name}: '{s['name']}' ({colour}, panel '{s.get('panel', '')}') has no drawn mark")
        elif len(points) == 1 and not drawn & {"circle", "rect", "polygon", "ellipse"}:
            problems.append(f"{name}: '{s['name']}' ({colour}) is one point with no marker (a line of one point draws nothing)")
    texts = []
    for el in elements:
        if el.tag.replace(SVG_NS, "") != "text":
            continue
        box, s = text_box(el)
        if not s.strip():
            continue
        if width and height and (box[0] < -SLACK or box[1] < -SLACK or box[2] > width + SLACK or box[3] > height + SLACK):
            problems.append(f"{name}: text {s!r} at ({box[0]:.0f}, {box[1]:.0f}) lies outside the {width:.0f}x{height:.0f} canvas")
        texts.append((box, s, (el.get("fill") or "").upper(), el.get("font-size")))
    for i, (a, sa, ca, fa) in enumerate(texts):
        for b, sb, cb, fb in texts[i + 1:]:
            if (ca, fa) != (cb, fb):
                continue
            ix = min(a[2], b[2]) - max(a[0], b[0])
            iy = min(a[3], b[3]) - max(a[1], b[1])
            smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
            if ix > 0 and iy > 0 and smaller > 0 and ix * iy > 0.5 * smaller:
                problems.append(f"{name}: labels {sa!r} and {sb!r} overprint each other")
    return problems


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    files = []
    for arg in sys.argv[1:]:
        p = Path(arg)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix in (".svg", ".html"))
        elif p.exists():
            files.append(p)
        else:
            sys.exit(f"[figures] {p} does not exist")
    problems, figures = [], 0
    for f in files:
        for name, svg in svgs_in(f):
            figures += 1
            problems += check_svg(name, svg)
    for p in problems:
        print(f"[figures] {p}")
    print(f"[figures] {figures} figures in {len(files)} files checked: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
