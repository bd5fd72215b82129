"""Reading a config file: a missing, unreadable or malformed yaml is one line naming the file (and,
for a syntax error, its line and column), never a traceback."""

from __future__ import annotations

from pathlib import Path

import yaml

from modeflow.common.errors import ConfigError


def read_config_file(path: str | Path) -> dict:
    """The mapping a yaml (or json) config file holds; an empty file is an empty config."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{path}{_where(exc.problem_mark)}: not valid YAML: {_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got a {type(data).__name__}")
    return data



def _where(mark) -> str:
    return f":{mark.line + 1}:{mark.column + 1}" if mark else ""


def _problem(exc: yaml.MarkedYAMLError) -> str:
    """What the parser expected, and where the construct it was reading began."""
    problem = exc.problem or exc.context or "syntax error"
    if exc.context and exc.problem and exc.context_mark:
        mark = exc.context_mark
        problem += f" ({exc.context} that began at line {mark.line + 1}, column {mark.column + 1})"
    return problem
