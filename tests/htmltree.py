"""
HTML tree
=========

A small element tree built with the standard library's ``html.parser``, so the report
tests check structure (elements, attributes, links) rather than substrings.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Dict, Iterator, List, Optional

__all__ = ("Element", "parse_html")

# HTML Living Standard §13.1.2: void elements have no end tag.
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: Dict[str, Optional[str]], parent: Optional[Element]):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: List = []

    def iter(self, tag: Optional[str] = None) -> Iterator[Element]:
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter(tag)

    def find_all(self, tag: Optional[str] = None, cls: Optional[str] = None) -> List[Element]:
        return [e for e in self.iter(tag) if cls is None or cls in (e.attrs.get("class") or "").split()]

    def find(self, tag: Optional[str] = None, cls: Optional[str] = None) -> Optional[Element]:
        found = self.find_all(tag, cls)
        return found[0] if found else None

    def by_id(self, ident: str) -> Optional[Element]:
        return next((e for e in self.iter() if e.attrs.get("id") == ident), None)

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is None:
            raise AssertionError(f"end tag </{tag}> without a start tag")
        self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_html(text: str) -> Element:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root
