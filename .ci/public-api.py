#!/usr/bin/env python3
"""The public API of a crate, one line per item, from rustdoc's JSON output.

    public-api.py list  CRATE [--features F] > CRATE/public-api.txt   # write the listing
    public-api.py check CRATE [--features F]                          # CI: fail on drift

The JSON comes from rustdoc (`cargo rustdoc -p CRATE --lib -- -Z unstable-options
--output-format json`, with RUSTC_BOOTSTRAP=1 as the fuzz step does, so CI needs no second
toolchain; a nightly gives the same listing); the default features unless `--features`
says otherwise. Lines: every public module, type, trait, function, method, constant and static
under its public path with its signature, then enum variants and public fields, then trait
implementations (not the auto traits nor blanket ones), sorted. The last line counts the
items (everything but variants, fields and trait implementations; the figure the API
budget in docs/ARCHITECTURE.md is about), the variants and fields, and the trait impls.

`check` regenerates the listing and compares it with the committed `CRATE/public-api.txt`:
any change to the public API fails until the listing is updated in the same commit, so
every API change shows in review.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rustdoc_json(crate, features):
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    cmd = ["cargo", "rustdoc", "-q", "-p", crate, "--lib"]
    if features:
        cmd += ["--features", features]
    cmd += ["--", "-Z", "unstable-options", "--output-format", "json"]
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    subprocess.run(cmd, cwd=ROOT, check=True, env=env)
    return json.loads((target / "doc" / (crate.replace("-", "_") + ".json")).read_text())


class Api:
    def __init__(self, doc):
        self.index = doc["index"]
        self.paths = doc["paths"]
        self.root = str(doc["root"])
        self.items, self.members, self.impls = set(), set(), set()
        self.seen = set()

    # ---- types -------------------------------------------------------------------------
    def path_of(self, p):
        name = p.get("path") or p.get("name") or ""
        summary = self.paths.get(str(p.get("id")))
        if summary and summary.get("crate_id") == 0:
            name = self.public_path.get(str(p.get("id")), "::".join(summary["path"]))
        elif summary:
            name = summary["path"][-1] if summary["kind"] != "trait" else "::".join(summary["path"])
        return name + self.args(p.get("args"))

    def args(self, a):
        if not a:
            return ""
        if "angle_bracketed" in a:
            ab = a["angle_bracketed"]
            parts = []
            for g in ab.get("args", []):
                if "type" in g:
                    parts.append(self.ty(g["type"]))
                elif "lifetime" in g:
                    parts.append(g["lifetime"])
                elif "const" in g:
                    c = g["const"]
                    parts.append(c.get("expr", "_") if isinstance(c, dict) else str(c))
                else:
                    parts.append("_")
            for c in ab.get("constraints", ab.get("bindings", [])):
                b = c.get("binding", {})
                if "equality" in b and "type" in b["equality"]:
                    parts.append(f"{c['name']} = {self.ty(b['equality']['type'])}")
                else:
                    parts.append(c["name"])
            return "<" + ", ".join(parts) + ">" if parts else ""
        if "parenthesized" in a:
            pa = a["parenthesized"]
            out = "(" + ", ".join(self.ty(t) for t in pa.get("inputs", [])) + ")"
            if pa.get("output"):
                out += " -> " + self.ty(pa["output"])
            return out
        return ""

    def bound(self, b):
        if "trait_bound" in b:
            tb = b["trait_bound"]
            mod = "?" if tb.get("modifier") == "maybe" else ""
            return mod + self.path_of(tb["trait"])
        if "outlives" in b:
            return b["outlives"]
        return "?"

    def ty(self, t):
        if t is None:
            return "()"
        (k, v), = t.items()
        if k == "resolved_path":
            return self.path_of(v)
        if k == "generic":
            return v
        if k == "primitive":
            return v
        if k == "tuple":
            return "(" + ", ".join(self.ty(x) for x in v) + ")"
        if k == "slice":
            return "[" + self.ty(v) + "]"
        if k == "array":
            return "[" + self.ty(v["type"]) + "; " + str(v["len"]) + "]"
        if k == "borrowed_ref":
            lt = (v.get("lifetime") + " ") if v.get("lifetime") else ""
            return "&" + lt + ("mut " if v.get("is_mutable", v.get("mutable")) else "") + self.ty(v["type"])
        if k == "raw_pointer":
            return ("*mut " if v.get("is_mutable", v.get("mutable")) else "*const ") + self.ty(v["type"])
        if k == "impl_trait":
            return "impl " + " + ".join(self.bound(b) for b in v)
        if k == "dyn_trait":
            return "dyn " + " + ".join(self.path_of(p["trait"]) for p in v["traits"])
        if k == "qualified_path":
            return self.ty(v["self_type"]) + "::" + v["name"]
        if k == "infer":
            return "_"
        return k

    def generics(self, g):
        out = []
        for p in g.get("params", []):
            kind = p["kind"]
            if "type" in kind:
                if kind["type"].get("is_synthetic", kind["type"].get("synthetic")):
                    continue
                bounds = kind["type"].get("bounds", [])
                out.append(p["name"] + (": " + " + ".join(self.bound(b) for b in bounds) if bounds else ""))
            elif "lifetime" in kind:
                out.append(p["name"])
            elif "const" in kind:
                out.append("const " + p["name"] + ": " + self.ty(kind["const"]["type"]))
        return "<" + ", ".join(out) + ">" if out else ""

    def fn_sig(self, name, f):
        sig = f.get("sig") or f.get("decl")
        ins = []
        for n, t in sig["inputs"]:
            if n == "self":
                ins.append(self.ty(t).replace("&Self", "&self").replace("&mut Self", "&mut self")
                           if self.ty(t) != "Self" else "self")
            else:
                ins.append(f"{n}: {self.ty(t)}")
        out = f" -> {self.ty(sig['output'])}" if sig.get("output") else ""
        hdr = f.get("header", {})
        pre = ("const " if hdr.get("is_const", hdr.get("const")) else "")
        return f"{pre}fn {name}{self.generics(f.get('generics', {}))}({', '.join(ins)}){out}"

    # ---- walk --------------------------------------------------------------------------
    def public(self, item):
        return item.get("visibility") == "public"

    def collect_paths(self, mid, path, out):
        """Public path of every item reachable from the root (first one found wins)."""
        item = self.index.get(str(mid))
        if item is None:
            return
        inner = item["inner"]
        if "module" in inner:
            for cid in inner["module"]["items"]:
                c = self.index.get(str(cid))
                if c is None or not self.public(c):
                    continue
                if "use" in c["inner"]:
                    u = c["inner"]["use"]
                    if u.get("id") is None or u.get("is_glob", u.get("glob")):
                        continue
                    t = self.index.get(str(u["id"]))
                    if t is None:
                        continue
                    p = f"{path}::{u['name']}"
                    out.setdefault(str(u["id"]), p)
                    if "module" in t["inner"]:
                        self.collect_paths(u["id"], p, out)
                else:
                    p = f"{path}::{c['name']}"
                    out.setdefault(str(cid), p)
                    if "module" in c["inner"]:
                        self.collect_paths(cid, p, out)

    def walk(self, iid, path):
        item = self.index.get(str(iid))
        if item is None:
            return
        (k, v), = item["inner"].items()
        key = (str(iid), path)
        if key in self.seen:
            return
        self.seen.add(key)
        if k == "module":
            self.items.add(f"pub mod {path}")
            for cid in v["items"]:
                c = self.index.get(str(cid))
                if c is None or not self.public(c):
                    continue
                if "use" in c["inner"]:
                    u = c["inner"]["use"]
                    t = self.index.get(str(u.get("id")))
                    if t is None:
                        self.items.add(f"pub use {path}::{u['name']} = {u['source']}")
                    elif u.get("is_glob", u.get("glob")):
                        for gid in t["inner"].get("module", {}).get("items", []):
                            g = self.index.get(str(gid))
                            if g is not None and self.public(g) and g.get("name"):
                                self.walk(gid, f"{path}::{g['name']}")
                    else:
                        self.walk(u["id"], f"{path}::{u['name']}")
                else:
                    self.walk(cid, f"{path}::{c['name']}")
        elif k in ("struct", "union"):
            self.items.add(f"pub {k} {path}{self.generics(v.get('generics', {}))}")
            kind = v.get("kind", {})
            if isinstance(kind, dict) and "plain" in kind:
                self.fields(path, kind["plain"]["fields"])
            elif isinstance(kind, dict) and "tuple" in kind:
                for i, fid in enumerate(kind["tuple"]):
                    if fid is not None:
                        f = self.index[str(fid)]
                        self.members.add(f"pub {path}::{i}: {self.ty(f['inner']['struct_field'])}")
            elif k == "union":
                self.fields(path, v.get("fields", []))
            self.impl_list(path, v.get("impls", []))
        elif k == "enum":
            self.items.add(f"pub enum {path}{self.generics(v.get('generics', {}))}")
            for vid in v["variants"]:
                var = self.index[str(vid)]
                vk = var["inner"]["variant"]["kind"]
                vp = f"{path}::{var['name']}"
                if isinstance(vk, dict) and "tuple" in vk:
                    tys = [self.ty(self.index[str(f)]["inner"]["struct_field"]) if f is not None else "_"
                           for f in vk["tuple"]]
                    self.members.add(f"pub {vp}({', '.join(tys)})")
                elif isinstance(vk, dict) and "struct" in vk:
                    self.members.add(f"pub {vp} {{ .. }}")
                    self.fields(vp, vk["struct"]["fields"])
                else:
                    self.members.add(f"pub {vp}")
            self.impl_list(path, v.get("impls", []))
        elif k == "function":
            self.items.add("pub " + self.fn_sig(path, v))
        elif k == "constant":
            self.items.add(f"pub const {path}: {self.ty(v['type'])}")
        elif k == "static":
            self.items.add(f"pub static {path}: {self.ty(v['type'])}")
        elif k == "type_alias":
            self.items.add(f"pub type {path} = {self.ty(v['type'])}")
        elif k == "trait":
            self.items.add(f"pub trait {path}{self.generics(v.get('generics', {}))}")
            for aid in v["items"]:
                self.assoc(path, self.index[str(aid)], in_trait=True)
        elif k in ("macro", "proc_macro"):
            self.items.add(f"pub macro {path}!")
        else:
            self.items.add(f"pub {k} {path}")

    def fields(self, path, ids):
        for fid in ids:
            f = self.index[str(fid)]
            if self.public(f) or f.get("visibility") == "default":
                self.members.add(f"pub {path}::{f['name']}: {self.ty(f['inner']['struct_field'])}")

    def assoc(self, path, a, in_trait=False):
        (k, v), = a["inner"].items()
        if not in_trait and not self.public(a):
            return
        if k == "function":
            self.items.add("pub " + self.fn_sig(f"{path}::{a['name']}", v))
        elif k == "assoc_const":
            self.items.add(f"pub const {path}::{a['name']}: {self.ty(v['type'])}")
        elif k == "assoc_type":
            self.items.add(f"pub type {path}::{a['name']}")

    def impl_list(self, path, ids):
        for iid in ids:
            imp = self.index[str(iid)]["inner"]["impl"]
            if imp.get("is_synthetic", imp.get("synthetic")) or imp.get("blanket_impl"):
                continue
            if imp.get("trait") is None:
                for aid in imp["items"]:
                    self.assoc(path, self.index[str(aid)])
            else:
                neg = "!" if imp.get("is_negative", imp.get("negative")) else ""
                self.impls.add(f"impl{self.generics(imp.get('generics', {}))} {neg}{self.path_of(imp['trait'])} for {path}")

    def listing(self, crate):
        self.public_path = {}
        name = crate.replace("-", "_")
        self.collect_paths(self.root, name, self.public_path)
        self.walk(self.root, name)
        lines = sorted(self.items) + sorted(self.members) + sorted(self.impls)
        lines.append(f"# {len(self.items)} items, {len(self.members)} variants and fields, "
                     f"{len(self.impls)} trait impls")
        return "\n".join(lines) + "\n"


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0] not in ("list", "check"):
        sys.exit(__doc__)
    mode, crate = args[0], args[1]
    features = args[args.index("--features") + 1] if "--features" in args else None
    text = Api(rustdoc_json(crate, features)).listing(crate)
    if mode == "list":
        sys.stdout.write(text)
        return
    committed = ROOT / crate / "public-api.txt"
    old = committed.read_text() if committed.exists() else ""
    if old != text:
        import difflib
        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(True), text.splitlines(True), str(committed), "current API"))
        sys.exit(f"The public API of {crate} differs from {committed.relative_to(ROOT)}: if the "
                 f"change is intended, run `python3 .ci/public-api.py list {crate} > "
                 f"{crate}/public-api.txt` and commit it.")
    print(f"{crate}: public API matches {committed.relative_to(ROOT)} ({text.splitlines()[-1][2:]})")


if __name__ == "__main__":
    main()
