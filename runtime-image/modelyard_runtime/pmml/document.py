"""Reading a PMML 4.x document (pure: bytes in, element tree out).

Documents with a DOCTYPE are refused before parsing (no entity expansion, no external references), and every
element the compiler does not know is reported with its name and line, so a model we cannot compile exactly is
refused at validation instead of answering wrongly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, cast

MAX_BYTES = 256 * 1024 * 1024


class PMMLError(ValueError):
    """The document is not PMML this compiler can turn into an exactly equivalent ONNX model."""


@dataclass(frozen=True)
class Element:
    """A PMML element without its namespace, with the line it starts on."""

    tag: str
    attrib: dict[str, str]
    children: tuple[Element, ...]
    line: int
    text: str = ""

    def find(self, tag: str) -> Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[Element]:
        return [c for c in self.children if c.tag == tag]

    def require(self, tag: str) -> Element:
        found = self.find(tag)
        if found is None:
            raise PMMLError(f"<{self.tag}> at line {self.line} has no <{tag}>")
        return found

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrib.get(key, default)

    def number(self, key: str, default: float | None = None) -> float:
        raw = self.attrib.get(key)
        if raw is None:
            if default is None:
                raise PMMLError(f"<{self.tag}> at line {self.line} has no {key}")
            return default
        try:
            return float(raw)
        except ValueError:
            raise PMMLError(f"<{self.tag}> at line {self.line}: {key}={raw!r} is not a number") from None

    def refuse(self, what: str = "") -> PMMLError:
        return PMMLError(f"<{self.tag}> at line {self.line} is not supported{': ' + what if what else ''}")


def parse(data: bytes) -> Element:
    """The document's root <PMML> element."""
    if len(data) > MAX_BYTES:
        raise PMMLError(f"the document is {len(data)} bytes; at most {MAX_BYTES} are read")
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise PMMLError("a DOCTYPE or an entity declaration is not allowed in a PMML document")
    parser: ET.XMLPullParser[Any] = ET.XMLPullParser(events=("start", "end"))
    lines: dict[int, int] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PMMLError(f"the document is not UTF-8: {exc}") from None
    # ElementTree does not keep line numbers: feed line by line and note where each element started.
    stack: list[ET.Element] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        try:
            parser.feed(line)
            for item in parser.read_events():
                event, elem = cast(tuple[str, Any], item)
                if event == "start" and isinstance(elem, ET.Element):
                    lines[id(elem)] = number
                    stack.append(elem)
        except ET.ParseError as exc:
            raise PMMLError(f"not well-formed XML: {exc}") from None
    try:
        parser.close()
    except ET.ParseError as exc:
        raise PMMLError(f"not well-formed XML: {exc}") from None
    if not stack:
        raise PMMLError("the document is empty")
    root = _convert(stack[0], lines)
    if root.tag != "PMML":
        raise PMMLError(f"the root element is <{root.tag}>, not <PMML>")
    version = root.get("version", "")
    if not (version or "").startswith("4."):
        raise PMMLError(f"PMML version {version or '(none)'}: only PMML 4.x is compiled")
    return root


def _convert(elem: ET.Element, lines: dict[int, int]) -> Element:
    tag = elem.tag.rsplit("}", 1)[-1]
    children = tuple(_convert(c, lines) for c in elem if isinstance(c.tag, str))
    return Element(tag, dict(elem.attrib), children, lines.get(id(elem), 0), elem.text or "")
