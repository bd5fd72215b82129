"""config/README.md, rendered from the schema so the docs cannot drift from what is validated."""

from __future__ import annotations

from pathlib import Path

from modeflow.config.schema import load_schema


def schema_markdown(schema: dict | str | Path | None = None) -> str:
    """The markdown table of every config key: its type, default and description."""
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    lines = [
        "# Configuration keys",
        "",
        "Generated from the schema, `src/modeflow/config/config.schema.yaml`, by `modeflow config-docs`;",
        "a test keeps it in sync.",
        "Pass your own file with `snakemake --configfile my.yaml`: it replaces the demo's",
        "`config/config.yaml`, and keys you leave out take the defaults below. Unknown keys and wrong",
        "types stop the run with the key's name.",
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
            if "properties" in sub.get("items", {}):  # a list of mappings: each entry's keys
                walk(sub["items"], f"{name}[].")
            elif "properties" in sub:  # a mapping that may also be null
                walk(sub, f"{name}.")

    walk(schema, "")
    return "\n".join(lines) + "\n"
