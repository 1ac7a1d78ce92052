"""The google.api.http path-template language: parse once, match raw paths, decode once.

Grammar (google/api/http.proto):

    Template  = "/" Segments [ Verb ] ;
    Segments  = Segment { "/" Segment } ;
    Segment   = "*" | "**" | LITERAL | Variable ;
    Variable  = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb      = ":" LITERAL ;

Matching works on the raw (still percent-encoded) path, so an encoded "/" (%2F) stays inside one
segment; each variable is then percent-decoded exactly once. A single-segment variable decodes
fully (%2F becomes "/"); a multi-segment one keeps %2F encoded, as http.proto prescribes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL = re.compile(r"[A-Za-z0-9\-._~!$&'()+,;=@%]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SINGLE = "[^/]+"
_MULTI = ".+"


class TemplateError(ValueError):
    """A path template that the grammar does not allow; the message names the template."""


class PathDecodeError(ValueError):
    """A path variable whose percent-decoding is not UTF-8."""

    def __init__(self, field: str) -> None:
        super().__init__(f"path variable {field} is not valid percent-encoded UTF-8")
        self.field = field


@dataclass(frozen=True, slots=True)
class Variable:
    field_path: str
    """Dotted request field the variable fills, e.g. "checkpoint.id"."""
    pattern: tuple[str, ...]
    """Its segments: "*", "**" or literals."""

    @property
    def multi_segment(self) -> bool:
        return len(self.pattern) > 1 or "**" in self.pattern


Segment = str | Variable


@dataclass(frozen=True)
class PathTemplate:
    source: str
    segments: tuple[Segment, ...]
    verb: str
    regex: re.Pattern[str]
    variables: tuple[Variable, ...]
    """The variables among segments, in order (group vN of regex is variables[N])."""

    @property
    def shape(self) -> str:
        """The template without variable names: templates of one shape match the same paths."""
        parts = []
        for segment in self.segments:
            parts.append("/".join(segment.pattern) if isinstance(segment, Variable) else segment)
        return "/" + "/".join(parts) + (f":{self.verb}" if self.verb else "")

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """Sort key: a verb first, then more literal segments, fewer "**", more segments."""
        literals = sum(1 for s in self.segments if isinstance(s, str) and s not in ("*", "**"))
        deep = sum(
            1 for s in self.segments if s == "**" or (isinstance(s, Variable) and "**" in s.pattern)
        )
        return (-bool(self.verb), -literals, deep, -len(self.segments))

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field path -> decoded value for a raw path (latin-1 str of the request's bytes), or None.

        Raises:
            PathDecodeError: a variable does not decode to UTF-8.
        """
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, variable in enumerate(self.variables):
            raw = found.group(f"v{index}")
            values[variable.field_path] = _decode(raw, variable)
        return values


def parse_template(source: str) -> PathTemplate:
    """Parse and compile a path template.

    Raises:
        TemplateError: the template breaks the grammar or repeats a field.
    """
    if not source.startswith("/"):
        raise TemplateError(f"path template {source!r} must start with '/'")
    body, verb = source[1:], ""
    # The verb is a ":" after the last "/" that is outside braces.
    depth, colon = 0, -1
    for i, ch in enumerate(body):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ":" and depth == 0:
            colon = i
    if colon >= 0 and "/" not in body[colon:]:
        body, verb = body[:colon], body[colon + 1 :]
        if not _LITERAL.fullmatch(verb):
            raise TemplateError(f"path template {source!r} has an invalid verb {verb!r}")
    segments = _split_segments(source, body)
    parsed: list[Segment] = []
    fields: set[str] = set()
    for segment in segments:
        if segment.startswith("{"):
            variable = _parse_variable(source, segment)
            if variable.field_path in fields:
                raise TemplateError(f"path template {source!r} binds {variable.field_path} twice")
            fields.add(variable.field_path)
            parsed.append(variable)
        elif segment in ("*", "**") or _LITERAL.fullmatch(segment):
            parsed.append(segment)
        else:
            raise TemplateError(f"path template {source!r} has an invalid segment {segment!r}")
    flat = [p for s in parsed for p in (s.pattern if isinstance(s, Variable) else (s,))]
    if "**" in flat[:-1]:
        raise TemplateError(f"path template {source!r}: '**' must be the last segment")
    variables = tuple(s for s in parsed if isinstance(s, Variable))
    return PathTemplate(source, tuple(parsed), verb, _compile(parsed, verb), variables)


def _split_segments(source: str, body: str) -> list[str]:
    segments, depth, current = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
            if depth > 1:
                raise TemplateError(f"path template {source!r} nests braces")
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise TemplateError(f"path template {source!r} has an unmatched '}}'")
        if ch == "/" and depth == 0:
            segments.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise TemplateError(f"path template {source!r} has an unclosed '{{'")
    segments.append(current)
    if any(not s for s in segments):
        raise TemplateError(f"path template {source!r} has an empty segment")
    return segments


def _parse_variable(source: str, segment: str) -> Variable:
    inner = segment[1:-1] if segment.endswith("}") else ""
    if not inner:
        raise TemplateError(f"path template {source!r} has an invalid variable {segment!r}")
    field_path, _, pattern = inner.partition("=")
    if not all(_IDENT.fullmatch(part) for part in field_path.split(".")):
        raise TemplateError(f"path template {source!r} has an invalid field path {field_path!r}")
    parts = tuple(pattern.split("/")) if pattern else ("*",)
    for part in parts:
        if part not in ("*", "**") and not _LITERAL.fullmatch(part):
            raise TemplateError(
                f"path template {source!r} has an invalid variable pattern {pattern!r}"
            )
    return Variable(field_path, parts)


def _compile(segments: list[Segment], verb: str) -> re.Pattern[str]:
    pieces: list[str] = []
    index = 0
    for segment in segments:
        if isinstance(segment, Variable):
            inner = "/".join(_piece(p) for p in segment.pattern)
            pieces.append(f"(?P<v{index}>{inner})")
            index += 1
        else:
            pieces.append(_piece(segment))
    suffix = ":" + re.escape(verb) if verb else ""
    return re.compile("/" + "/".join(pieces) + suffix)


def _piece(part: str) -> str:
    if part == "*":
        return _SINGLE
    if part == "**":
        return _MULTI
    return re.escape(part)


def percent_decode(raw: str) -> str:
    """Decode %XX escapes exactly once, strictly: raw is the latin-1 text of the request bytes.

    Raises:
        ValueError: a "%" not followed by two hex digits, or bytes that are not UTF-8.
    """
    if "%" not in raw and raw.isascii():
        return raw  # nothing to decode, and ASCII is UTF-8: most ids and names
    if _BAD_ESCAPE.search(raw):
        raise ValueError("invalid percent-encoding")
    return unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")


def _decode(raw: str, variable: Variable) -> str:
    try:
        if not variable.multi_segment:
            return percent_decode(raw)
        return "/".join(percent_decode(part).replace("/", "%2F") for part in raw.split("/"))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise PathDecodeError(variable.field_path) from exc
