"""Fails when the modules of a folder of the crate import each other in a circle.

Data in src/study flows one way (grid -> records -> steps -> plan -> runner -> results -> query ->
gate / claims / stability -> report); a module that reaches back up makes two modules one. Every
reference counts, not only `use` lines: `super::x`, `super::x::y` and `crate::study::x`
anywhere in the non-test code, with names re-exported by mod.rs resolved to the module that
defines them. A subfolder with a mod.rs (steps/) is one module: all its files together. Test
modules (`#[cfg(test)]` to the end of the file) are left out.

usage: check_imports.py [FOLDER ...]   (default: src/study)
"""
import re
import sys
from pathlib import Path


def code_of(path):
    text = path.read_text(encoding="utf-8")
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def reexports(mod_rs, modules):
    """name -> defining module, from mod.rs's `pub use module::{a, b}` lines."""
    names = {}
    for m, items in re.findall(r"pub use (\w+)::\{?([^;}]*)\}?;", mod_rs.read_text(encoding="utf-8")):
        if m in modules:
            for item in items.split(","):
                item = item.strip().split(" as ")[-1].strip()
                if item:
                    names[item] = m
    return names


def module_sources(folder):
    """module name -> [(path, prefix of `super::` that reaches the folder's modules)]: a file
    `x.rs` is module x; a subfolder `x/` with a mod.rs is module x too, all its files together
    (in its mod.rs `super::` is the folder, in its other files `super::super::`)."""
    modules = {p.stem: [(p, "super::")] for p in folder.glob("*.rs") if p.stem != "mod"}
    for sub in folder.iterdir():
        if sub.is_dir() and (sub / "mod.rs").exists():
            modules[sub.name] = [(f, "super::" if f.name == "mod.rs" else "super::super::") for f in sorted(sub.rglob("*.rs"))]
    return modules


def edges(folder):
    modules = module_sources(folder)
    names = reexports(folder / "mod.rs", modules)
    # `crate::study::` for src/study (a folder outside a crate's src/ has no crate path)
    parts = folder.parts[len(folder.parts) - folder.parts[::-1].index("src") :] if "src" in folder.parts else None
    crate_path = "crate::" + "::".join(parts) + "::" if parts else None
    graph = {m: set() for m in modules}
    for m, sources in modules.items():
        for path, sup in sources:
            code = code_of(path)
            # `super::x` in a subfolder's file names the subfolder's own items, not a module here.
            reach = re.escape(sup).replace("super", r"\bsuper", 1)
            refs = re.findall(reach + r"(\w+)", code)
            if crate_path:
                refs += re.findall(re.escape(crate_path) + r"(\w+)", code)
            # `use super::{a, b::c}` groups
            for group in re.findall(reach + r"\{([^}]*)\}", code):
                refs += [g.strip().split("::")[0] for g in group.split(",") if g.strip()]
            for r in refs:
                target = r if r in modules else names.get(r)
                if target and target != m:
                    graph[m].add(target)
    return graph


def cycle(graph):
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def main():
    folders = [Path(a) for a in sys.argv[1:]] or [Path(__file__).resolve().parent.parent / "src" / "study"]
    failed = False
    for folder in folders:
        graph = edges(folder.resolve())
        found = cycle(graph)
        if found:
            print(f"[imports] {folder}: import circle {' -> '.join(found)}", file=sys.stderr)
            failed = True
        else:
            print(f"[imports] {folder}: {len(graph)} modules, {sum(len(v) for v in graph.values())} imports, no circle")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
