"""Command-line values of the mixture commands: a list given as a file or inline, the experts to
use. Bad values are errors that name the value (or the file)."""

from __future__ import annotations

from pathlib import Path

from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_index


def _file_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read: {exc}") from None


def class_list(value: str) -> list[str]:
    """--classes: a file with one class name a line, or names separated by commas."""
    path = Path(value)
    if path.is_file():
        names = _file_lines(path)
        if not names:
            raise InputDataError(f"{path}: the class list is empty")
        return names
    if "," not in value and (path.suffix == ".txt" or "/" in value):
        raise InputDataError(f"{value}: no such class-list file")
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise InputDataError(f"--classes {value!r}: the class list is empty")
    return names


def template_list(value: str) -> list[str]:
    """--templates: a file with one prompt template a line (clip_benchmark's
    zeroshot_classification_templates.txt), or one template; `{c}` is where the class name goes."""
    path = Path(value)
    if path.is_file():
        return _file_lines(path)
    if "{c}" not in value and (path.suffix == ".txt" or "/" in value):
        raise InputDataError(f"{value}: no such template file")
    return [value]


def expert_list(value: str | None) -> list[int] | None:
    """--experts: indices or names separated by commas (0,2 or 00,02 or expert_00,expert_02)."""
    if value is None:
        return None
    try:
        chosen = [expert_index(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise InputDataError(f"--experts {value!r}: {exc}") from None
    if not chosen:
        raise InputDataError(f"--experts {value!r}: no expert named")
    return chosen
