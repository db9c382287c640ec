"""Parsing of ``parse_mode`` text (HTML, MarkdownV2, legacy Markdown) as Telegram does it.

Each parser returns the plain text a user would see, or fails with a reason
worded like Telegram's "can't parse entities" error; ``visible_text`` is the one
entry point the methods use. It lives apart from the methods because it is pure
text processing with its own rules (byte offsets, nesting, escapes) and no state.
"""

from __future__ import annotations

import re

from expensebot_tools.local.telegram.errors import bad_request


class _EntityError(Exception):
    """A formatting problem; becomes "can't parse entities: <reason>"."""


def _byte_offset(text: str, index: int) -> int:
    # Telegram reports positions in UTF-8 bytes, not characters.
    return len(text[:index].encode("utf-8"))


# --------------------------------------------------------------------------
# Formatting parsers: each returns the plain text a user would see, or raises
# _EntityError with a reason worded like Telegram's.
# --------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_HTML_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_START_TAG_RE = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)")
_HTML_ATTR_RE = re.compile(r"""\s+([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


def _decode_html_entity(match: re.Match[str]) -> str | None:
    name = match.group(1)
    if name in _HTML_NAMED:
        return _HTML_NAMED[name]
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    if code <= 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _decode_attribute(value: str) -> str:
    # Inside attribute values (mostly hrefs with query strings) we stay as
    # lenient as Telegram: unknown '&' sequences are kept verbatim.
    def replace(match: re.Match[str]) -> str:
        decoded = _decode_html_entity(match)
        return match.group(0) if decoded is None else decoded

    return _HTML_ENTITY_RE.sub(replace, value)


def _parse_html(text: str) -> str:
    out: list[str] = []
    stack: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "&":
            match = _HTML_ENTITY_RE.match(text, i)
            decoded = _decode_html_entity(match) if match else None
            if match is None or decoded is None:
                raise _EntityError(f'Unescaped "&" at byte offset {_byte_offset(text, i)}')
            out.append(decoded)
            i = match.end()
        elif char == ">":
            raise _EntityError(f'Unescaped ">" at byte offset {_byte_offset(text, i)}')
        elif char != "<":
            out.append(char)
            i += 1
        elif text.startswith("</", i):
            close = text.find(">", i)
            if close < 0:
                raise _EntityError(f"Unclosed end tag at byte offset {_byte_offset(text, i)}")
            name = text[i + 2 : close].strip().lower()
            if not stack:
                raise _EntityError(f"Unexpected end tag at byte offset {_byte_offset(text, i)}")
            if name != stack[-1]:
                raise _EntityError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, i)}, "
                    f'expected "</{stack[-1]}>", found "</{name}>"'
                )
            stack.pop()
            i = close + 1
        else:
            i = _parse_html_start_tag(text, i, stack)
    if stack:
        raise _EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _parse_html_start_tag(text: str, start: int, stack: list[str]) -> int:
    """Validate one start tag at ``start``, push it, return the index after it."""
    match = _HTML_START_TAG_RE.match(text, start)
    if match is None:
        raise _EntityError(f'Unescaped "<" at byte offset {_byte_offset(text, start)}')
    name = match.group(1).lower()
    if name not in _HTML_TAGS:
        raise _EntityError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, start)}')
    attributes: dict[str, str] = {}
    pos = match.end()
    while attr := _HTML_ATTR_RE.match(text, pos):
        raw_value = attr.group(2) or ""
        if raw_value[:1] in {'"', "'"}:
            raw_value = raw_value[1:-1]
        attributes[attr.group(1).lower()] = _decode_attribute(raw_value)
        pos = attr.end()
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text) or text[pos] != ">":
        raise _EntityError(f"Unclosed start tag at byte offset {_byte_offset(text, start)}")
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise _EntityError('Tag "span" must have class "tg-spoiler"')
    if name == "tg-emoji" and not attributes.get("emoji-id"):
        raise _EntityError('Tag "tg-emoji" must have attribute "emoji-id"')
    stack.append(name)
    return pos + 1


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strike": "Strikethrough",
    "spoiler": "Spoiler",
    "text_url": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
}


def _is_mdv2_escape(text: str, i: int) -> bool:
    # Telegram lets a backslash escape any character with code 1..126.
    return text[i] == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) <= 126


def _parse_markdown_v2(text: str) -> str:
    """Approximation of tdlib's MarkdownV2 parser.

    Only the innermost open entity can be closed (as in tdlib). Inside code and
    pre everything except the closing marker and backslash escapes is literal.
    '>' is accepted at the start of a line (blockquote), and '**>' / a trailing
    '||' on such a line are accepted as expandable-blockquote markers.
    """
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i = 0
    n = len(text)
    quote_line = False
    while i < n:
        char = text[i]
        top = stack[-1][0] if stack else None
        if char == "\n":
            quote_line = False
        if _is_mdv2_escape(text, i):
            out.append(text[i + 1])
            i += 2
            continue
        if top in {"code", "pre"}:
            marker = "```" if top == "pre" else "`"
            if text.startswith(marker, i):
                stack.pop()
                i += len(marker)
            else:
                out.append(char)
                i += 1
            continue
        at_line_start = i == 0 or text[i - 1] == "\n"
        if at_line_start and text.startswith("**>", i):
            quote_line = True
            i += 3
            continue
        if at_line_start and char == ">":
            quote_line = True
            i += 1
            continue
        if char not in _MDV2_RESERVED:
            out.append(char)
            i += 1
            continue
        i = _mdv2_marker(text, i, stack, quote_line)
    if stack:
        kind, start = stack[-1]
        raise _EntityError(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {_byte_offset(text, start)}")
    return "".join(out)


def _mdv2_marker(text: str, i: int, stack: list[tuple[str, int]], quote_line: bool) -> int:
    """Handle a reserved character outside code; return the next index."""
    char = text[i]
    top = stack[-1][0] if stack else None
    n = len(text)
    # Closing the innermost entity takes precedence over opening a new one.
    if top == "bold" and char == "*":
        stack.pop()
        return i + 1
    if top == "underline" and text.startswith("__", i):
        stack.pop()
        return i + 2
    if top == "italic" and char == "_":
        stack.pop()
        return i + 1
    if top == "strike" and char == "~":
        stack.pop()
        return i + 1
    if top == "spoiler" and text.startswith("||", i):
        stack.pop()
        return i + 2
    if top in {"text_url", "custom_emoji"} and char == "]":
        kind = top
        stack.pop()
        if i + 1 < n and text[i + 1] == "(":
            return _skip_mdv2_url(text, i + 1)
        if kind == "custom_emoji":
            raise _EntityError(
                f"Custom emoji entity must contain a tg://emoji URL at byte offset {_byte_offset(text, i)}"
            )
        return i + 1
    if quote_line and text.startswith("||", i) and (i + 2 == n or text[i + 2] == "\n"):
        return i + 2
    if text.startswith("__", i):
        stack.append(("underline", i))
        return i + 2
    openers = {"*": "bold", "_": "italic", "~": "strike", "[": "text_url"}
    if char in openers:
        stack.append((openers[char], i))
        return i + 1
    if text.startswith("||", i):
        stack.append(("spoiler", i))
        return i + 2
    if text.startswith("![", i):
        stack.append(("custom_emoji", i))
        return i + 2
    if text.startswith("```", i):
        stack.append(("pre", i))
        return _skip_pre_language(text, i + 3)
    if char == "`":
        stack.append(("code", i))
        return i + 1
    raise _EntityError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def _skip_mdv2_url(text: str, open_paren: int) -> int:
    i = open_paren + 1
    while i < len(text):
        if _is_mdv2_escape(text, i):
            i += 2
            continue
        if text[i] == ")":
            return i + 1
        i += 1
    raise _EntityError(f"Can't find end of a URL at byte offset {_byte_offset(text, open_paren)}")


def _skip_pre_language(text: str, i: int) -> int:
    # "```python\ncode```": a first line without spaces names the language and
    # is not part of the visible text.
    newline = text.find("\n", i)
    if newline >= 0 and text.find("```", i) > newline:
        first_line = text[i:newline]
        if first_line and not any(c.isspace() for c in first_line):
            return newline + 1
    return i


def _parse_markdown_legacy(text: str) -> str:
    """Telegram's legacy Markdown: no nesting, only unclosed markers fail."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            i += 1
            continue
        start = i
        if text.startswith("```", i):
            end_marker = "```"
            i = _skip_pre_language(text, i + 3)
        else:
            end_marker = "]" if char == "[" else char
            i += 1
        end = text.find(end_marker, i)
        if end < 0:
            raise _EntityError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, start)}")
        out.append(text[i:end])
        i = end + len(end_marker)
        if char == "[" and i < n and text[i] == "(":
            close = text.find(")", i)
            if close >= 0:
                i = close + 1
    return "".join(out)


def visible_text(text: str, parse_mode: str) -> str:
    mode = parse_mode.lower()
    try:
        if mode == "html":
            plain = _parse_html(text)
        elif mode == "markdownv2":
            plain = _parse_markdown_v2(text)
        elif mode == "markdown":
            plain = _parse_markdown_legacy(text)
        else:
            plain = text
    except _EntityError as error:
        raise bad_request(f"can't parse entities: {error}") from None
    return plain.strip()
