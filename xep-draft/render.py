#!/usr/bin/env python3
"""Render the XEP source (xep-otr4.xml) to Markdown (xep-otr4.md).

    python3 xep-draft/render.py           # (re)write xep-draft/xep-otr4.md
    python3 xep-draft/render.py --check   # exit 1 if the committed .md differs from a fresh render

Standard library only (xml.etree). Handles the subset of the XSF XEP format this draft uses:
header, section1/2/3, p, ul/ol/li, dl/di/dt/dd, example, code, table/tr/th/td, and the inline
elements tt, code, em, strong, link, url, span and note (notes become Markdown footnotes).
Entities are declared in the document's internal DTD subset, so expat expands them.
"""

import argparse
import difflib
import re
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "xep-otr4.xml"
OUT = HERE / "xep-otr4.md"


def esc(text):
    """Escape plain text for Markdown (not used inside code)."""
    return re.sub(r"([\\`*_<])", r"\\\1", text)


def code_span(text):
    text = re.sub(r"\s+", " ", text)
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


class Renderer:
    def __init__(self, root):
        self.root = root
        self.notes = []  # footnote texts, in order of first use
        self.examples = 0
        self.tables = 0

    # ---- inline ------------------------------------------------------------------------
    def inline(self, el):
        """Markdown for el's content (text, children and their tails), whitespace collapsed."""
        out = [esc(re.sub(r"\s+", " ", el.text or ""))]
        for child in el:
            out.append(self.inline_child(child))
            out.append(esc(re.sub(r"\s+", " ", child.tail or "")))
        return re.sub(r" {2,}", " ", "".join(out))

    def inline_child(self, c):
        tag = c.tag
        if tag in ("tt", "code"):
            return code_span("".join(c.itertext()))
        if tag == "em":
            return f"*{self.inline(c).strip()}*"
        if tag == "strong":
            return f"**{self.inline(c).strip()}**"
        if tag == "link":
            label = self.inline(c).strip()
            url = c.get("url", "")
            return f"[{label}]({url})" if label else f"<{url}>"
        if tag == "url":
            url = "".join(c.itertext()).strip()
            return f"<{url}>"
        if tag == "span":
            return self.inline(c)
        if tag == "note":
            text = self.inline(c).strip()
            if text not in self.notes:
                self.notes.append(text)
            return f"\x00[^{self.notes.index(text) + 1}]"  # \x00: glue to the previous word
        if tag == "br":
            return "  \n"
        # unknown inline element: keep its text
        return self.inline(c)

    def para(self, el):
        text = self.inline(el).strip()
        text = re.sub(r"\s*\x00", "", text)
        return text

    # ---- blocks ------------------------------------------------------------------------
    def blocks(self, el, depth, number):
        """Markdown blocks for the children of a section (or of header/legal)."""
        out = []
        sub = 0
        for c in el:
            tag = c.tag
            if tag in ("section2", "section3", "section4"):
                sub += 1
                out.append(self.section(c, depth + 1, f"{number}.{sub}"))
            elif tag == "p":
                out.append(self.para(c))
            elif tag in ("ul", "ol"):
                out.append(self.listing(c))
            elif tag == "dl":
                out.append(self.deflist(c))
            elif tag == "table":
                out.append(self.table(c))
            elif tag == "example":
                self.examples += 1
                caption = c.get("caption", "")
                head = f"**Example {self.examples}.** {esc(caption)}" if caption else f"**Example {self.examples}.**"
                out.append(head + "\n\n" + self.fenced(c.text or ""))
            elif tag == "code":
                caption = c.get("caption")
                block = self.fenced(c.text or "")
                out.append((f"*{esc(caption)}*\n\n" if caption else "") + block)
            else:
                text = self.para(c)
                if text:
                    out.append(text)
        return "\n\n".join(x for x in out if x)

    @staticmethod
    def fenced(text):
        body = textwrap.dedent(text.replace("\t", "    ")).strip("\n")
        body = "\n".join(line.rstrip() for line in body.splitlines())
        return f"```xml\n{body}\n```"

    def listing(self, el):
        lines = []
        for i, li in enumerate(el.findall("li"), 1):
            bullet = f"{i}." if el.tag == "ol" else "-"
            text = self.para(li)
            indent = " " * (len(bullet) + 1)
            lines.append(f"{bullet} " + text.replace("\n", "\n" + indent))
        return "\n".join(lines)

    def deflist(self, el):
        lines = []
        for di in el.findall("di"):
            dt = di.find("dt")
            dd = di.find("dd")
            term = self.para(dt) if dt is not None else ""
            desc = self.para(dd) if dd is not None else ""
            lines.append(f"- **{term}**: {desc}")
        return "\n".join(lines)

    def table(self, el):
        self.tables += 1
        rows = []
        for tr in el.findall("tr"):
            cells = [self.para(c).replace("|", "\\|") for c in tr if c.tag in ("th", "td")]
            rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        caption = el.get("caption")
        head = f"**Table {self.tables}.** {esc(caption)}\n\n" if caption else ""
        return head + "\n".join(lines)

    def section(self, el, depth, number):
        topic = esc(re.sub(r"\s+", " ", el.get("topic", "")).strip())
        anchor = el.get("anchor")
        head = ("#" * (depth + 1)) + f" {number}. {topic}" if depth == 1 else ("#" * (depth + 1)) + f" {number} {topic}"
        parts = []
        if anchor:
            parts.append(f'<a id="{anchor}"></a>\n\n{head}')
        else:
            parts.append(head)
        body = self.blocks(el, depth, number)
        if body:
            parts.append(body)
        return "\n\n".join(parts)

    # ---- document ----------------------------------------------------------------------
    def header(self):
        h = self.root.find("header")

        def text(path):
            node = h.find(path)
            return re.sub(r"\s+", " ", "".join(node.itertext())).strip() if node is not None else ""

        title = text("title")
        number = text("number")
        out = [f"# XEP-{number}: {esc(title)}"]
        out.append(
            "<!-- Generated from xep-otr4.xml by render.py; do not edit by hand. -->"
        )
        out.append(f"**Abstract:** {self.para(h.find('abstract'))}")
        deps = ", ".join(esc(re.sub(r"\s+", " ", s.text or "").strip()) for s in h.findall("dependencies/spec"))
        authors = []
        for a in h.findall("author"):
            name = " ".join(x for x in (text_of(a.find("firstname")), text_of(a.find("surname"))) if x)
            mail = text_of(a.find("email"))
            authors.append(f"{esc(name)} <{mail}>" if mail else esc(name))
        rev = h.find("revision")
        rows = [
            ("Number", number),
            ("Status", text("status")),
            ("Type", text("type")),
            ("SIG", text("sig")),
            ("Approver", text("approver")),
            ("Dependencies", deps),
            ("Short name", text("shortname")),
            ("Author", "; ".join(authors)),
        ]
        if rev is not None:
            rows.append(("Version", f"{text_of(rev.find('version'))} ({text_of(rev.find('date'))})"))
        table = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows if v]
        out.append("\n".join(table))
        return "\n\n".join(out)

    def toc(self):
        lines = ["## Table of Contents", ""]
        for i, s1 in enumerate(self.root.findall("section1"), 1):
            lines.append(f"- [{i}. {esc(s1.get('topic', ''))}](#{s1.get('anchor', '')})")
            for j, s2 in enumerate(s1.findall("section2"), 1):
                lines.append(f"  - [{i}.{j} {esc(s2.get('topic', ''))}](#{s2.get('anchor', '')})")
        return "\n".join(lines)

    def appendices(self):
        h = self.root.find("header")
        out = []
        legal = h.find("legal")
        if legal is not None:
            out.append('<a id="appendix-legal"></a>\n\n## Appendix A: Legal Notice')
            for part in legal:
                title = {
                    "copyright": "Copyright",
                    "permissions": "Permissions",
                    "warranty": "Disclaimer of Warranty",
                    "liability": "Limitation of Liability",
                    "conformance": "IPR Conformance",
                }.get(part.tag, part.tag)
                out.append(f"### {title}\n\n{self.para(part)}")
        revs = h.findall("revision")
        if revs:
            out.append('<a id="appendix-revs"></a>\n\n## Appendix B: Revision History')
            for r in revs:
                remark = r.find("remark")
                note = self.blocks(remark, 2, "") if remark is not None and len(remark) else (
                    self.para(remark) if remark is not None else "")
                out.append(
                    f"### Version {text_of(r.find('version'))} ({text_of(r.find('date'))})\n\n"
                    f"{note}\n\n({esc(text_of(r.find('initials')))})"
                )
        return "\n\n".join(out)

    def render(self):
        parts = [self.header(), self.toc()]
        for i, s1 in enumerate(self.root.findall("section1"), 1):
            parts.append(self.section(s1, 1, str(i)))
        parts.append(self.appendices())
        if self.notes:
            parts.append("## Notes\n\n" + "\n".join(f"[^{n}]: {t}" for n, t in enumerate(self.notes, 1)))
        text = "\n\n".join(p for p in parts if p)
        text = re.sub(r"\n{3,}", "\n\n", text)
        return text.rstrip("\n") + "\n"


def text_of(node):
    return re.sub(r"\s+", " ", "".join(node.itertext())).strip() if node is not None else ""


def render(src=SRC):
    root = ET.parse(src).getroot()
    if root.tag != "xep":
        raise SystemExit(f"{src}: root element is <{root.tag}>, expected <xep>")
    return Renderer(root).render()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the committed Markdown differs from a fresh render")
    args = ap.parse_args()
    fresh = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current == fresh:
            print(f"{OUT.name} is up to date")
            return 0
        diff = difflib.unified_diff(current.splitlines(), fresh.splitlines(),
                                    f"{OUT.name} (committed)", f"{OUT.name} (fresh render)", lineterm="")
        for n, line in enumerate(diff):
            if n >= 60:
                print("... (diff truncated)")
                break
            print(line)
        print(f"{OUT.name} is stale: run python3 xep-draft/render.py", file=sys.stderr)
        return 1
    OUT.write_text(fresh, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
