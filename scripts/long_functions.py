#!/usr/bin/env python3
"""Lists the Rust functions over 80 lines in src/ and crates/, and fails on any not allowed.

Usage: python3 scripts/long_functions.py [--max N]   (run from anywhere; paths are repo-relative)

What is scanned: every `*.rs` file under src/ and crates/ (benches included), except
  - anything under a `target/` folder (build output),
  - files under a `tests/` folder (integration tests),
  - `#[cfg(test)]` code: a `#[cfg(test)] mod name { ... }` block, a `#[cfg(test)] fn`, and the
    file of a `#[cfg(test)] mod name;` declaration. Test functions are long lists of checks
    by nature; the rule is about the library and CLI code.

What is measured: each `fn` item (free function, method, trait default method, nested fn),
from the line of its `fn` keyword to the line of its closing brace, inclusive (its doc comment
and attributes are not counted). Braces are counted on the code only: comments (line, block,
nested block), string literals (plain, byte, C, raw `r"..."`, `r#"..."#`), and char literals
(`'{'`, `'\\''`) are blanked first; a lifetime or label (`'a`) is not a char literal.

The allow-list, scripts/long_functions.allow, holds lines `path::fn_name  # reason` (path
relative to the repository root; `#` comments and blank lines are ignored). An entry covers
every long function of that name in that file. Allowed functions are printed with their reason
and do not fail; any other function over the limit fails (exit 1), and so does an entry that
no longer names a long function (a stale entry: delete it).
"""

import bisect
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOW_FILE = os.path.join(ROOT, "scripts", "long_functions.allow")
SCANNED = ("src", "crates")
DEFAULT_MAX = 80

# The next token that starts something to blank (or a lifetime to step over).
TOKEN = re.compile(
    r"""(?P<line>//[^\n]*)"""
    r"""|(?P<block>/\*)"""
    r"""|(?P<raw>(?<![\w])(?:br|cr|r)(?P<hashes>\#*)")"""
    r"""|(?P<str>(?:(?<![\w])[bc])?")"""
    r"""|(?P<char>(?:(?<![\w])b)?'(?:\\.[^'\n]*|[^\\'\n])')"""
    r"""|(?P<tick>')"""
)
STRING_BODY = re.compile(r'(?:[^"\\]|\\.)*"', re.S)
BLOCK_PART = re.compile(r"/\*|\*/")
FN = re.compile(r"\bfn\s+([A-Za-z_]\w*)")
BRACE = re.compile(r"[{}]")
SIGNATURE_END = re.compile(r"[{};()\[\]]")
CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*")
ITEM_AFTER_CFG = re.compile(r"(?:pub(?:\([^)]*\))?\s+)?(?:(mod)\s+(\w+)\s*([{;])|(?:(?:const|async|unsafe|extern\s*\"\w*\")\s+)*(fn)\b)")


def blank(text):
    """`text` with comments, strings and char literals replaced by spaces (newlines kept)."""
    out = []
    pos = 0
    n = len(text)
    while True:
        m = TOKEN.search(text, pos)
        if m is None:
            out.append(text[pos:])
            break
        out.append(text[pos : m.start()])
        kind = "raw" if m.group("raw") is not None else m.lastgroup
        if kind == "tick":
            out.append("'")
            pos = m.end()
            continue
        if kind == "line" or kind == "char":
            end = m.end()
        elif kind == "block":
            depth, end = 1, m.end()
            while depth and end < n:
                b = BLOCK_PART.search(text, end)
                if b is None:
                    end = n
                    break
                depth += 1 if b.group() == "/*" else -1
                end = b.end()
        elif kind == "raw":
            close = '"' + m.group("hashes")
            found = text.find(close, m.end())
            end = n if found < 0 else found + len(close)
        else:  # str
            s = STRING_BODY.match(text, m.end())
            end = n if s is None else s.end()
        chunk = text[m.start() : end]
        out.append(re.sub(r"[^\n]", " ", chunk))
        pos = end
    return "".join(out)


def matching_braces(code):
    """Maps the offset of every `{` to the offset of its `}`."""
    stack, pairs = [], {}
    for m in BRACE.finditer(code):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.start()
    return pairs


def body_start(code, pos):
    """Offset of the `{` opening the body of the fn whose name ends at `pos` (None: no body)."""
    depth = 0
    for m in SIGNATURE_END.finditer(code, pos):
        c = m.group()
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0:
            return m.start() if c == "{" else None
    return None


def test_code(code, pairs, path):
    """Offset ranges of `#[cfg(test)]` items in `code`, and files of `#[cfg(test)] mod x;`."""
    ranges, files = [], []
    for m in CFG_TEST.finditer(code):
        item = ITEM_AFTER_CFG.match(code, m.end())
        if item is None:
            continue
        if item.group(1):  # mod
            if item.group(3) == "{":
                brace = item.end() - 1
                ranges.append((m.start(), pairs.get(brace, len(code))))
            else:
                base = os.path.dirname(path)
                stem = os.path.splitext(os.path.basename(path))[0]
                if stem not in ("mod", "lib", "main"):
                    base = os.path.join(base, stem)
                name = item.group(2)
                files += [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")]
        else:  # fn
            start = body_start(code, item.end())
            if start is not None:
                ranges.append((m.start(), pairs.get(start, len(code))))
    return ranges, files


def rust_files():
    for top in SCANNED:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("target", "tests") and not d.startswith("."))
            for f in sorted(filenames):
                if f.endswith(".rs"):
                    yield os.path.relpath(os.path.join(dirpath, f), ROOT)


def functions(path):
    """(line, name, lines, in_test_code) of every fn with a body in the file, and test files it declares."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        code = blank(f.read())
    newlines = [m.start() for m in re.finditer("\n", code)]
    line_of = lambda off: bisect.bisect_left(newlines, off) + 1  # noqa: E731
    pairs = matching_braces(code)
    tests, test_files = test_code(code, pairs, path)
    found = []
    for m in FN.finditer(code):
        start = body_start(code, m.end())
        if start is None or start not in pairs:
            continue
        first, last = line_of(m.start()), line_of(pairs[start])
        in_test = any(a <= m.start() <= b for a, b in tests)
        found.append((first, m.group(1), last - first + 1, in_test))
    return found, test_files


def read_allow():
    """{`path::fn_name`: reason} from the allow-list file."""
    allow = {}
    if not os.path.exists(ALLOW_FILE):
        return allow
    with open(ALLOW_FILE, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, _, reason = line.partition("#")
            key, reason = key.strip(), reason.strip()
            if "::" not in key or not reason:
                sys.exit(f"{os.path.relpath(ALLOW_FILE, ROOT)}:{number}: expected `path::fn_name  # reason`, got {line!r}")
            allow[key] = reason
    return allow


def main():
    limit = DEFAULT_MAX
    if len(sys.argv) == 3 and sys.argv[1] == "--max":
        limit = int(sys.argv[2])
    elif len(sys.argv) != 1:
        sys.exit(__doc__)
    allow = read_allow()
    scanned, long_fns, test_files = 0, [], set()
    per_file = {}
    for path in rust_files():
        per_file[path] = functions(path)
        test_files.update(per_file[path][1])
    for path, (fns, _) in per_file.items():
        if path in test_files:
            continue
        for line, name, lines, in_test in fns:
            if in_test:
                continue
            scanned += 1
            if lines > limit:
                long_fns.append((path, line, name, lines))
    used, failures = set(), []
    for path, line, name, lines in long_fns:
        key = f"{path}::{name}"
        if key in allow:
            used.add(key)
            print(f"{path}:{line} {name} {lines}  allowed: {allow[key]}")
        else:
            failures.append(key)
            print(f"{path}:{line} {name} {lines}  TOO LONG")
    stale = sorted(set(allow) - used)
    for key in stale:
        print(f"{os.path.relpath(ALLOW_FILE, ROOT)}: stale entry {key} (no function of that name over {limit} lines): delete it")
    if failures:
        print(
            f"{len(failures)} function(s) over {limit} lines: split each into named steps (helper functions or "
            f"small structs), or add `path::fn_name  # reason` to {os.path.relpath(ALLOW_FILE, ROOT)}"
        )
    print(
        f"long functions: {len(long_fns)} over {limit} lines of {scanned} scanned, {len(used)} allowed, "
        f"{len(failures)} not allowed, {len(stale)} stale allow-list entries"
    )
    return 1 if failures or stale else 0


if __name__ == "__main__":
    sys.exit(main())
