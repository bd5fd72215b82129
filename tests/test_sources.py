"""Pool sources (modeflow.pool.sources): url lists and image folders → the canonical pool table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from modeflow.common.errors import ConfigError, InputDataError
from modeflow.pool.sources import read_image_folder, read_url_list
from modeflow.common.uids import derive_uid

URLS = ["http://h.invalid/a.png", "http://h.invalid/b.png", "http://h.invalid/c.png"]
CAPTIONS = ["a red square", "a blue circle, with a comma", "digit 7"]


def _write_text_list(path, header, rows, sep):
    """A csv file quoted the RFC 4180 way, or a tsv file (no quoting: fields hold no tab/newline)."""
    def field(value):
        value = str(value)
        quote = sep == "," and any(c in value for c in ',"\n')
        return '"' + value.replace('"', '""') + '"' if quote else value

    lines = [sep.join(header)] + [sep.join(field(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(params=["parquet", "csv", "tsv"])
def url_list(request, tmp_path):
    """The same three-row list with an extra `license` column, in each supported format."""
    fmt = request.param
    path = tmp_path / f"urls.{fmt}"
    columns = {"URL": URLS, "text": CAPTIONS, "license": ["cc0", "cc-by", "cc0"]}
    if fmt == "parquet":
        pq.write_table(pa.table(columns), path)
    else:
        _write_text_list(path, list(columns), list(zip(*columns.values())), "," if fmt == "csv" else "\t")
    return path


def test_url_list_formats_derive_uids_and_carry_extras(url_list):
    table, stats = read_url_list(url_list, url_col="URL", caption_col="text", extra_cols=["license"])
    assert table.column_names == ["row", "uid", "url", "caption", "license"]
    assert table.column("row").to_pylist() == [0, 1, 2]
    assert table.column("url").to_pylist() == URLS
    assert table.column("caption").to_pylist() == CAPTIONS
    assert table.column("uid").to_pylist() == [derive_uid(u, c) for u, c in zip(URLS, CAPTIONS)]
    assert table.column("license").to_pylist() == ["cc0", "cc-by", "cc0"]
    assert stats == {"source": str(url_list), "rows_read": 3, "rows": 3, "duplicates_dropped": 0,
                     "uids_derived": True}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_uid_column_is_taken_from_the_file(tmp_path, fmt):
    uids = ["0" * 31 + str(i) for i in range(3)]
    path = tmp_path / f"urls.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({"url": URLS, "caption": CAPTIONS, "uid": uids}), path)
    else:
        _write_text_list(path, ["url", "caption", "uid"], list(zip(URLS, CAPTIONS, uids)), ",")
    table, stats = read_url_list(path)
    assert table.column("uid").to_pylist() == uids
    assert stats["uids_derived"] is False


def test_caption_with_newline_in_quoted_csv_field(tmp_path):
    path = _write_text_list(tmp_path / "u.csv", ["url", "caption"], [(URLS[0], 'two\nlines "quoted"')], ",")
    table, _ = read_url_list(path)
    assert table.column("caption").to_pylist() == ['two\nlines "quoted"']


def test_tsv_quotes_are_text_not_quoting(tmp_path):
    captions = ['"Hello" she said', 'an "open quote', "fine"]
    path = _write_text_list(tmp_path / "u.tsv", ["url", "caption"], list(zip(URLS, captions)), "\t")
    table, stats = read_url_list(path)
    assert table.column("caption").to_pylist() == captions and stats["rows"] == 3


def test_ragged_csv_names_file(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text(f"url,caption\n{URLS[0]},one,extra field\n")
    with pytest.raises(InputDataError, match=f"{path}: cannot read as csv"):
        read_url_list(path)


def _csv(tmp_path, header, rows, name="bad.csv"):
    return _write_text_list(tmp_path / name, header, rows, ",")


@pytest.mark.parametrize(
    "header, rows, kwargs, expected",
    [
        (["link", "caption"], [(URLS[0], "x")], {}, [r"no url column 'url'", "link"]),
        (["url", "title"], [(URLS[0], "x")], {}, [r"no caption column 'caption'", "title"]),
        (["url", "caption"], [(URLS[0], "ok"), (URLS[1], "  ")], {},
         ["row 1", URLS[1], "caption is empty"]),
        (["url", "caption"], [(URLS[0], "ok"), ("", "no url")], {}, ["row 1", "url is empty"]),
        (["url", "caption", "uid"], [(URLS[0], "ok", "a" * 32), (URLS[1], "ok", "NOT-A-UID")], {},
         ["row 1", URLS[1], "'NOT-A-UID'", "32 lowercase hex"]),
        (["url", "caption"], [(URLS[0], "ok")], {"extra_cols": ["license"]}, ["['license'] not found"]),
    ],
    ids=["no-url-col", "no-caption-col", "blank-caption", "empty-url", "bad-uid", "missing-extra"],
)
def test_bad_url_lists_raise_naming_file_row_and_url(tmp_path, header, rows, kwargs, expected):
    path = _csv(tmp_path, header, rows)
    with pytest.raises(InputDataError) as err:
        read_url_list(path, **kwargs)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_caption_not_utf8_names_row_and_url(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"url,caption\n" + URLS[0].encode() + b",fine\n"
                     + URLS[1].encode() + b",caf\xe9 au lait\n")  # latin-1, not UTF-8
    expected = r"row 1 \(url 'http://h.invalid/b.png'\): caption is not valid UTF-8"
    with pytest.raises(InputDataError, match=expected) as err:
        read_url_list(path)
    assert str(path) in str(err.value)


def test_null_caption_in_parquet_is_empty(tmp_path):
    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"url": URLS[:2], "caption": ["ok", None]}), path)
    with pytest.raises(InputDataError, match=r"row 1 .*caption is empty"):
        read_url_list(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputDataError, match="pool file not found: .*nope.parquet"):
        read_url_list(tmp_path / "nope.parquet")
    with pytest.raises(ConfigError, match="format"):
        read_url_list(tmp_path / "urls.xlsx")


def test_unreadable_parquet_names_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(InputDataError, match=f"{path}: cannot read as parquet"):
        read_url_list(path)


def _dup_list(tmp_path):
    rows = [(URLS[0], "same"), (URLS[1], "other"), (URLS[0], "same"), (URLS[2], "third")]
    return _csv(tmp_path, ["url", "caption"], rows, name="dups.csv")


def test_duplicate_uids_error_names_both_rows(tmp_path):
    path = _dup_list(tmp_path)
    with pytest.raises(InputDataError) as err:
        read_url_list(path)
    message = str(err.value)
    assert str(path) in message and derive_uid(URLS[0], "same") in message
    assert "row 0" in message and "row 2" in message and "duplicate_uids" in message


def test_duplicate_uids_drop_keeps_first_and_original_rows(tmp_path):
    table, stats = read_url_list(_dup_list(tmp_path), duplicate_uids="drop")
    # `row` keeps the source position, so shard membership does not shift after a drop
    assert table.column("row").to_pylist() == [0, 1, 3]
    assert table.column("caption").to_pylist() == ["same", "other", "third"]
    assert stats["rows_read"] == 4 and stats["rows"] == 3 and stats["duplicates_dropped"] == 1


def test_config_errors(tmp_path):
    path = _csv(tmp_path, ["url", "caption", "key"], [(URLS[0], "x", "k")])
    with pytest.raises(ConfigError, match=r"\['key'\] clash"):
        read_url_list(path, extra_cols=["key"])
    with pytest.raises(ConfigError, match="duplicate_uids"):
        read_url_list(path, duplicate_uids="ignore")


def _image_folder(tmp_path, names):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for name in names:
        Image.new("RGB", (8, 8), "red").save(folder / name)
    return folder


def test_image_folder_gives_file_urls_and_location_independent_uids(tmp_path):
    names = ["a.png", "sub/b.png"]
    folder = _image_folder(tmp_path, names)
    captions = _csv(tmp_path, ["file", "caption"], [(names[0], "red"), (names[1], "also red")],
                    name="caps.csv")
    table, stats = read_image_folder(folder, captions)
    assert table.column("url").to_pylist() == [(folder / n).resolve().as_uri() for n in names]
    assert all(u.startswith("file:///") for u in table.column("url").to_pylist())
    assert table.column("uid").to_pylist() == [derive_uid("a.png", "red"),
                                               derive_uid("sub/b.png", "also red")]
    assert stats["image_folder"] == str(folder.resolve()) and stats["rows"] == 2


def test_image_folder_counts_images_without_a_caption(tmp_path):
    folder = _image_folder(tmp_path, ["a.png", "b.jpg", "sub/c.PNG", "sub/d.png"])
    (folder / "notes.txt").write_text("not an image")
    captions = _csv(tmp_path, ["file", "caption"], [("a.png", "red"), ("./sub/d.png", "red too")],
                    name="caps.csv")
    table, stats = read_image_folder(folder, captions)
    assert table.num_rows == 2
    assert stats["images_without_caption"] == 2
    assert stats["images_without_caption_examples"] == ["b.jpg", "sub/c.PNG"]


def test_image_folder_missing_file_is_named(tmp_path):
    folder = _image_folder(tmp_path, ["a.png"])
    captions = _csv(tmp_path, ["file", "caption"], [("a.png", "red"), ("gone.png", "lost")], name="caps.csv")
    expected = r"1 listed image file\(s\) do not exist .*row 1: .*gone.png"
    with pytest.raises(InputDataError, match=expected) as err:
        read_image_folder(folder, captions)
    assert str(captions) in str(err.value)


def test_image_folder_missing_image_column(tmp_path):
    folder = _image_folder(tmp_path, ["a.png"])
    captions = _csv(tmp_path, ["path", "caption"], [("a.png", "red")], name="caps.csv")
    with pytest.raises(InputDataError, match="no image file column 'file'"):
        read_image_folder(folder, captions)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_plan_counts_the_rows_the_pool_step_reads(tmp_path, fmt):
    """A quoted newline inside a csv caption is one row for the shard plan and for the pool step,
    so the plan gets no phantom shard (one parser decides both: modeflow.pool.table)."""
    from modeflow.config.schema import validate_config
    from modeflow.pool.plan import plan_shards
    from modeflow.pool.table import count_rows

    captions = ['a dog\nplaying "fetch", in the park', "a cat", "a bird"] * 2
    if fmt == "csv":
        captions[1] = 'say "hi"\n\nthen leave'
    if fmt == "tsv":  # tsv has no quoting: fields hold no newline
        captions = [c.replace("\n", " ") for c in captions]
    urls = [f"http://h.invalid/{i}.png" for i in range(len(captions))]
    path = tmp_path / f"u.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({"url": urls, "caption": captions}), path)
    else:
        _write_text_list(path, ["url", "caption"], list(zip(urls, captions)), "," if fmt == "csv" else "\t")
    table, _ = read_url_list(str(path))
    assert count_rows(str(path)) == table.num_rows == 6
    cfg = validate_config({"pool": {"source": "url_list", "url_list": {"path": str(path)}},
                           "download": {"shard_size": 3}})
    assert plan_shards(cfg).shards == ("00000", "00001")


def test_row_count_of_an_empty_or_missing_table(tmp_path):
    from modeflow.pool.table import count_rows

    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("url,caption\n")
    assert count_rows(str(tmp_path / "empty.csv")) == 0
    assert count_rows(str(tmp_path / "header.csv")) == 0
    with pytest.raises(InputDataError, match="not found.*nope.csv"):
        count_rows(str(tmp_path / "nope.csv"))
