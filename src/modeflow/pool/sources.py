"""Pool sources → the canonical pool table: `row`, `uid`, `url`, `caption` (+ requested extras).

`row` is the row's position in the source file. It is kept through validation and duplicate
dropping so that shard `s` (rows [s * shard_size, (s + 1) * shard_size), see plan.py) always holds
the same rows, whatever was dropped elsewhere in the file.

Every problem is an InputDataError naming the file, and for a bad sample its 0-based row and url:
a pool of millions of rows must say where to look.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from modeflow.common.errors import ConfigError, InputDataError
from modeflow.pool.table import read_table, table_format
from modeflow.common.uids import UID_PATTERN, derive_uid
from modeflow.wds.reader import IMAGE_EXTENSIONS

# Columns img2dataset reserves for itself (its arguments_validator) plus the pool table's own:
# an extra column with one of these names would be overwritten or refused at download time.
RESERVED_COLUMNS = frozenset(
    {"row", "uid", "url", "caption", "key", "width", "height", "original_width", "original_height",
     "status", "error_message", "exif", "md5", "sha256", "sha512"}
)


def read_url_list(path, *, fmt="auto", url_col="url", caption_col="caption", uid_col="uid",
                  extra_cols=(), duplicate_uids="error") -> tuple[pa.Table, dict]:
    """Read a parquet/csv/tsv url list (local or any fsspec url such as s3://).

    uids come from `uid_col` when the file has it, else derive_uid(url, caption).
    duplicate_uids: "error" raises naming both rows; "drop" keeps the first occurrence and counts
    the others in stats["duplicates_dropped"].
    """
    return _read_pool(str(path), fmt, url_col, caption_col, uid_col, tuple(extra_cols),
                      duplicate_uids, url_role="url")


def read_image_folder(folder, captions_path, *, image_col="file", caption_col="caption",
                      duplicate_uids="error") -> tuple[pa.Table, dict]:
    """Local images listed with their captions in a csv/tsv/parquet file → the pool table.

    url = file:///abs/path (img2dataset downloads file:// urls); uid = derive_uid(file name as
    listed, caption), so uids do not depend on where the folder lives.
    """
    # The listed (relative) name stands in for the url while reading, which makes uids
    # location-independent; the real file:// url replaces it below.
    table, stats = _read_pool(str(captions_path), "auto", image_col, caption_col, None, (),
                              duplicate_uids, url_role="image file")
    root = Path(folder).resolve()
    paths = [root / name for name in table.column("url").to_pylist()]
    missing = [(row, str(p)) for row, p in zip(table.column("row").to_pylist(), paths) if not p.is_file()]
    if missing:
        shown = "; ".join(f"row {row}: {p}" for row, p in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise InputDataError(
            f"{captions_path}: {len(missing)} listed image file(s) do not exist in {root}: {shown}{more}"
        )
    urls = pa.array([p.as_uri() for p in paths], pa.string())
    table = table.set_column(table.schema.get_field_index("url"), "url", urls)
    stats["image_folder"] = str(root)
    uncaptioned = _images_not_listed(root, paths)
    stats["images_without_caption"] = len(uncaptioned)
    stats["images_without_caption_examples"] = uncaptioned[:5]
    return table, stats


def _images_not_listed(root: Path, listed: list[Path]) -> list[str]:
    """Image files under `root` that the captions file does not list (sorted, relative): they are
    not in the pool, and the pool step says how many rather than leaving them out without a word."""
    listed_set = {p.resolve() for p in listed}
    found = (p for p in root.rglob("*") if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS and p.is_file())
    return sorted(p.relative_to(root).as_posix() for p in found if p.resolve() not in listed_set)


def _read_pool(path, fmt, url_col, caption_col, uid_col, extra_cols, duplicate_uids, *, url_role):
    if duplicate_uids not in ("error", "drop"):
        raise ConfigError(f"duplicate_uids must be 'error' or 'drop', not {duplicate_uids!r}")
    clashing = sorted(set(extra_cols) & RESERVED_COLUMNS)
    if clashing:
        raise ConfigError(f"extra column(s) {clashing} clash with columns the pool table or "
                          "img2dataset reserve; rename them in the source")
    fmt = table_format(path, fmt)
    raw = read_table(path, fmt, text_cols=[c for c in (url_col, caption_col, uid_col) if c])

    for col, role in ((url_col, url_role), (caption_col, "caption")):
        if col not in raw.column_names:
            raise InputDataError(f"{path}: no {role} column '{col}'; the file has columns {raw.column_names}")
    missing_extra = [c for c in extra_cols if c not in raw.column_names]
    if missing_extra:
        raise InputDataError(f"{path}: extra column(s) {missing_extra} not found; "
                             f"the file has columns {raw.column_names}")

    rows = pa.array(range(raw.num_rows), pa.int64())
    urls = _as_utf8(raw.column(url_col), path, url_role, None)
    _check_non_empty(urls, path, url_role, None)
    captions = _as_utf8(raw.column(caption_col), path, "caption", urls)
    _check_non_empty(captions, path, "caption", urls)

    if uid_col and uid_col in raw.column_names:
        uids = _as_utf8(raw.column(uid_col), path, "uid", urls)
        bad = pc.fill_null(pc.invert(pc.match_substring_regex(uids, UID_PATTERN)), True)
        if pc.any(bad).as_py():
            i = pc.index(bad, True).as_py()
            raise InputDataError(f"{path}: row {i} ({url_role} {urls[i].as_py()!r}): uid "
                                 f"{uids[i].as_py()!r} is not 32 lowercase hex characters")
        derived = False
    else:
        uids = pa.array([derive_uid(u, c) for u, c in zip(urls.to_pylist(), captions.to_pylist())],
                        pa.string())
        derived = True

    table = pa.table({"row": rows, "uid": uids, "url": urls, "caption": captions,
                      **{c: raw.column(c) for c in extra_cols}})
    table, dropped = _handle_duplicates(table, path, duplicate_uids, url_role)
    stats = {"source": path, "rows_read": raw.num_rows, "rows": table.num_rows,
             "duplicates_dropped": dropped, "uids_derived": derived}
    return table, stats


def _as_utf8(column, path, role, urls) -> pa.Array:
    """A text column as a string array; bytes that are not UTF-8 raise naming the first bad row."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return pc.cast(column, pa.string())  # numbers etc.: their text form
    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        # Arrow does not say which value failed: find it (error path only, so a Python loop is fine).
        for i, value in enumerate(column.to_pylist()):
            if value is not None and not _is_utf8(value):
                raise InputDataError(f"{path}: row {i}{_where(urls, i)}: {role} is not valid UTF-8: "
                                     f"{value[:80]!r}") from None
        raise


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_non_empty(values: pa.Array, path, role, urls) -> None:
    empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0), True)
    if pc.any(empty).as_py():
        i = pc.index(empty, True).as_py()
        raise InputDataError(f"{path}: row {i}{_where(urls, i)}: {role} is empty")


def _where(urls, i) -> str:
    return "" if urls is None else f" (url {urls[i].as_py()!r})"


def _handle_duplicates(table, path, mode, url_role) -> tuple[pa.Table, int]:
    uids = table.column("uid")
    if len(pc.unique(uids)) == table.num_rows:
        return table, 0
    first_row: dict[str, int] = {}
    keep = []
    for i, uid in enumerate(uids.to_pylist()):
        if uid in first_row:
            if mode == "error":
                j = first_row[uid]
                url_of = table.column("url")
                raise InputDataError(
                    f"{path}: uid {uid} appears in row {j} ({url_role} {url_of[j].as_py()!r}) and "
                    f"row {i} ({url_role} {url_of[i].as_py()!r}); set duplicate_uids to 'drop' to "
                    "keep the first occurrence"
                )
            keep.append(False)
        else:
            first_row[uid] = i
            keep.append(True)
    return table.filter(pa.array(keep)), keep.count(False)
