"""Opens executed notebooks' HTML exports in headless Chromium and checks what a reader would see.

For each page: Chromium loads it with all network access blocked, a script measures where every
figure (an `<svg>` or `<img>` in an output) and every output table lies on the page, and a
screenshot of the whole page is taken at the same size. Each figure's region of the screenshot
must hold a drawing (many distinct colours, not one flat background) and each table's region
must hold text (dark pixels on light). The page must also contain the given texts and no
error output, and no output may show a Rust string literal (a literal `\\n` or `\\"`: a String
displayed through its Debug form instead of as prose). Screenshots go to the output folder so a
person can look at them.

usage: check_html.py OUT_DIR PAGE.html [PAGE.html ...] [--expect TEXT ...]
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH = 1280
MAX_HEIGHT = 16000  # Chromium's largest screenshot texture is 16384 px
# Measured after load: the page's height and the boxes of output figures and tables.
MEASURE = r"""<script>
window.addEventListener('load', () => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return [Math.round(r.left + scrollX), Math.round(r.top + scrollY), Math.round(r.width), Math.round(r.height)]; };
  const outputs = '.jp-OutputArea-output';
  const layout = {
    height: Math.ceil(document.documentElement.scrollHeight),
    figures: [...document.querySelectorAll(`${outputs} svg, ${outputs} img`)].filter(e => !e.parentElement.closest('svg')).map(box),
    tables: [...document.querySelectorAll(`${outputs} table`)].map(box),
    errors: document.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]').length,
    escaped: [...document.querySelectorAll(outputs)].map(e => e.textContent)
      .filter(t => t.includes('\\n') || t.includes('\\"')).map(t => t.trim().slice(0, 80)),
  };
  const pre = document.createElement('pre'); pre.id = 'dw-layout'; pre.textContent = JSON.stringify(layout);
  document.body.appendChild(pre);
});
</script>"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("[html] no Chromium found: install Debian's `chromium` (scripts/setup.sh does)")


def run_chromium(profile_dir, *args):
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # the page may name CDNs; nothing may be fetched
        "--hide-scrollbars", f"--user-data-dir={profile_dir}", *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"[html] Chromium failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return done.stdout


def region_stats(image, box):
    """(distinct colours, share of pixels far from the most common colour) in a box of the image."""
    x, y, w, h = box
    crop = np.asarray(image.crop((max(x, 0), max(y, 0), min(x + w, image.width), min(y + h, image.height))).convert("RGB"), dtype=np.int32)
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return None
    pixels = crop.reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    ink = float((np.abs(pixels - background).sum(axis=1) > 60).mean())
    return len(colours), ink


def check_page(page, out_dir, expect):
    problems = []
    html = page.read_text(encoding="utf-8")
    for text in expect:
        if text not in html:
            problems.append(f"expected text {text!r} is not on the page")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        measured = tmp / page.name
        measured.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        # Laid out at the screenshot's width, so that the boxes measured here are where it shows them.
        dom = run_chromium(tmp / "profile", f"--window-size={WIDTH},900", "--virtual-time-budget=5000", "--dump-dom", measured.as_uri())
        found = re.search(r'<pre id="dw-layout">(.*?)</pre>', dom, re.S)
        if not found:
            return [f"Chromium did not lay the page out (no layout record in {len(dom)} characters of DOM)"]
        layout = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        height = min(layout["height"], MAX_HEIGHT)
        shot = out_dir / (page.stem + ".png")
        run_chromium(tmp / "profile", f"--window-size={WIDTH},{height}", f"--screenshot={shot}", "--virtual-time-budget=5000", page.resolve().as_uri())
    image = Image.open(shot)
    if layout["errors"]:
        problems.append(f"{layout['errors']} error output(s) on the page")
    for text in layout["escaped"]:
        problems.append(f"an output shows an escaped string (a Debug-printed String, not prose): {text!r}")
    if not layout["figures"] and not layout["tables"]:
        problems.append("no figure and no table in any output")
    seen = 0
    for kind, boxes, min_colours, min_ink in (("figure", layout["figures"], 8, 0.005), ("table", layout["tables"], 2, 0.003)):
        for i, box in enumerate(boxes):
            if box[1] >= height:
                continue  # below the longest screenshot Chromium takes; its DOM was still checked
            stats = region_stats(image, box)
            seen += 1
            if stats is None:
                problems.append(f"{kind} {i + 1} at {box} has no visible area")
            elif stats[0] < min_colours or stats[1] < min_ink:
                problems.append(f"{kind} {i + 1} at {box} looks blank ({stats[0]} colours, {100 * stats[1]:.2f}% ink)")
    print(f"[html] {page.name}: {len(layout['figures'])} figures, {len(layout['tables'])} tables, {seen} checked on a {WIDTH}x{height} screenshot -> {shot}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("pages", type=Path, nargs="+")
    ap.add_argument("--expect", action="append", default=[], help="text every page must contain")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for page in args.pages:
        for problem in check_page(page, args.out_dir, args.expect):
            print(f"[html] {page.name}: {problem}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
