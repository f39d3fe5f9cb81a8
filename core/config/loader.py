"""Load backfill.yaml into a validated Config, or fail with one message naming file:line and key.

The file is read as bounded UTF-8 text (source.py) and composed into nodes with a mark each,
within budgets of size and depth (compose.py); the nodes are turned into plain data while
recording the line of every key path, then validated by the pydantic model and by the semantic
checks. Every problem is reported against the line of the key it concerns.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor

from core.config.checks import Problem, semantic_problems
from core.config.compose import KeyPath, Refused, compose
from core.config.model import Config
from core.config.source import read_config_text
from core.errors import ConfigError


def load_config(path: Path) -> Config:
    path = Path(path)
    data, lines = _parse_yaml(path, read_config_text(path))
    if not isinstance(data, dict):
        raise ConfigError(path, 1, "", "expected a mapping of keys (name, warehouse, phases, ...)")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _first(path, lines, _pydantic_problems(exc, data)) from None
    problems = semantic_problems(config)
    if problems:
        raise _first(path, lines, problems)
    config._path = path.resolve()
    return config


# -- YAML with lines -------------------------------------------------------------------------


def _parse_yaml(path: Path, text: str) -> tuple[Any, dict[KeyPath, int]]:
    try:
        node = compose(text)
        if node is None:
            raise ConfigError(path, 1, "", "the file is empty")
        lines: dict[KeyPath, int] = {}
        return _to_data(SafeConstructor(), node, (), lines, path), lines
    except Refused as exc:
        line = exc.mark.line + 1 if exc.mark else None
        raise ConfigError(path, line, _short_key(exc.at), exc.text) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        context = exc.context or ""
        if exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            context += f" (opened on line {exc.context_mark.line + 1})"
        problem = ", ".join(p for p in (context, exc.problem) if p) or "not valid YAML"
        raise ConfigError(path, line, "", f"malformed YAML: {_one_line(problem)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, "", f"malformed YAML: {_one_line(str(exc))}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _to_data(
    constructor: SafeConstructor,
    node: yaml.Node,
    at: KeyPath,
    lines: dict[KeyPath, int],
    path: Path,
) -> Any:
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        _refuse_repeated_keys(node, at, path)
        constructor.flatten_mapping(node)  # resolves `<<: *anchor`; explicit keys come last and win
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _text_key(key_node, at, path)
            lines[(*at, key)] = key_node.start_mark.line + 1
            result[key] = _to_data(constructor, value_node, (*at, key), lines, path)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_data(constructor, item, (*at, i), lines, path) for i, item in enumerate(node.value)
        ]
    try:
        return constructor.construct_object(node)
    except yaml.YAMLError:
        raise
    except Exception:
        # PyYAML's constructors trust that the text fits its tag: 2024-13-45 looks like a date
        # but is none (ValueError), `!!timestamp x` or `!!bool maybe` break them in other ways.
        # The text goes on as text, and validation names the key.
        return node.value


def _refuse_repeated_keys(node: yaml.MappingNode, at: KeyPath, path: Path) -> None:
    written: set[str] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = _text_key(key_node, at, path)
        if key in written:
            line = key_node.start_mark.line + 1
            raise ConfigError(path, line, format_key((*at, key)), "key given twice")
        written.add(key)


def _text_key(node: yaml.Node, at: KeyPath, path: Path) -> str:
    """The key as written, if YAML reads it as text: `1:`, `null:`, `yes:` and `? [a, b]:` are
    a number, nothing, true and a list, which no key of the config is."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        return str(node.value)
    if isinstance(node, yaml.ScalarNode):
        shown = node.value if node.value.isprintable() else repr(node.value)
        got = f"{shown or 'nothing'} (write it in quotes if it is meant as text)"
    else:
        got = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
    raise ConfigError(
        path, node.start_mark.line + 1, format_key(at), f"keys must be text, got {got}"
    )


# -- problems -> one message -------------------------------------------------------------------


def format_key(at: Iterable[str | int]) -> str:
    out = ""
    for part in at:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.isprintable() or not part:
            out += f"[{part!r}]"  # a newline or an escape sequence in a key is shown, not sent
        else:
            out += f".{part}" if out else part
    return out


def _short_key(at: KeyPath, parts: int = 6) -> str:
    """The first parts of a key path: nesting fifty levels deep needs no fifty-part path."""
    return format_key(at[:parts]) + ("..." if len(at) > parts else "")


def _line_of(lines: dict[KeyPath, int], at: KeyPath) -> int | None:
    while at:
        if at in lines:
            return lines[at]
        at = at[:-1]
    return lines.get(())


def _first(path: Path, lines: dict[KeyPath, int], problems: list[Problem]) -> ConfigError:
    problems = sorted(problems, key=lambda p: (_line_of(lines, p.at) or 0, format_key(p.at)))
    first = problems[0]
    more = len(problems) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    text = first.text
    if first.also is not None:
        other = f"{path.name}:{_line_of(lines, first.also)} {format_key(first.also)}"
        text += f"; the other is at {other}"
    return ConfigError(path, _line_of(lines, first.at), format_key(first.at), text + suffix)


def _pydantic_problems(exc: ValidationError, data: Any) -> list[Problem]:
    errors = []
    seen: set[KeyPath] = set()
    for err in exc.errors(include_url=False):
        at = _data_path(err["loc"], data)
        if at not in seen:  # a union reports once per member; the first says enough
            seen.add(at)
            errors.append((err, at))
    # A list whose item failed is also reported as too short; the item's own error says more.
    inside = {other[:n] for _, other in errors for n in range(len(other))}
    return [
        Problem(at, _describe(err, at, data))
        for err, at in errors
        if not (err["type"] == "too_short" and at in inside)
    ]


def _data_path(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """Drop the parts pydantic adds that are not in the data (discriminator tags, `int`, ...)."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and (part in node or last):
            out.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
    return tuple(out)


_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "date_type": "a date YYYY-MM-DD",
}


def _describe(err: Any, at: KeyPath, data: Any) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        known = _known_keys(at[:-1], data)
        hint = f" (expected one of: {', '.join(known)})" if known else ""
        return f"unknown key{hint}"
    if kind in _TYPE_WORDS:
        if "command" in at[-2:]:
            return f"command must be a list of strings (argv, no shell), got {value!r}"
        return f"expected {_TYPE_WORDS[kind]}, got {_show(value)}"
    if kind == "string_pattern_mismatch":
        return f"{value!r} is not a safe name (letters, digits and _ only{_dotted(at)})"
    if kind == "union_tag_invalid":
        ctx = err["ctx"]
        return f"unknown kind {ctx['tag']!r} (expected one of: {ctx['expected_tags']})"
    if kind == "union_tag_not_found":
        return "required key 'kind' is missing"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "literal_error":
        return f"expected {err['ctx']['expected']}, got {_show(value)}"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_show(value)}"


def _dotted(at: KeyPath) -> str:
    return "; write dataset.table" if at and at[-1] == "table" else ""


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    if isinstance(value, date):
        return value.isoformat()
    return repr(value)


def _known_keys(at: KeyPath, data: Any) -> list[str]:
    """Field names of the model that sits at `at`, for 'expected one of' hints."""
    model: Any = Config
    node = data
    for i, part in enumerate(at):
        if isinstance(part, int):
            node = node[part] if isinstance(node, dict | list) else None
            continue
        node = node[part] if isinstance(node, dict) else None
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_for(field.annotation, _item(node, at[i + 1 : i + 2]))
    return list(getattr(model, "model_fields", {}))


def _item(node: Any, index: KeyPath) -> Any:
    """The item of a list the path goes on into: its own `kind` picks its model (and a list of
    thousands of items is not searched once per problem)."""
    if index and isinstance(index[0], int) and isinstance(node, list) and index[0] < len(node):
        return node[index[0]]
    return node


def _model_for(annotation: Any, node: Any) -> type[BaseModel] | None:
    """The model inside an annotation (through list, Optional, Annotated, unions by `kind`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [m for arg in typing.get_args(annotation) if (m := _model_for(arg, node))]
    items = node if isinstance(node, list) else [node]
    kinds = {item.get("kind") for item in items if isinstance(item, dict)}
    for member in members:
        kind = member.model_fields.get("kind")
        if kind is None or set(typing.get_args(kind.annotation)) & kinds:
            return member
    return members[0] if members else None
