"""The tar layout that modeflow's tar code reads and patches: 512-byte blocks, the ustar header's
fields, the typeflags of the members webdataset and tarfile write."""

from __future__ import annotations

import numpy as np

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)  # two zero blocks end a tar

NAME = slice(0, 100)
SIZE = slice(124, 136)
CHKSUM = slice(148, 156)
TYPEFLAG = 156
MAGIC = slice(257, 262)  # "ustar" begins both the POSIX ("ustar\0") and the GNU ("ustar  ") magic
PREFIX = slice(345, 500)  # ustar name prefix (GNU headers keep other fields here, zero as tarfile writes them)

FILE_TYPES = (ord("0"), 0)  # typeflags of plain files
PAX = ord("x")  # per-member pax header: part of the member that follows it
LONG_NAME = ord("L")  # GNU long-name header: part of the member that follows it
DIRECTORY = ord("5")

# The header fields, as a record over every 512-byte block: gathering one field of many headers
# copies just that field, several times faster than slicing rows of a (blocks, 512) array.
# "prefix" is the prefix's first byte only: enough to tell whether a header has one.
HEADER = np.dtype({"names": ["name", "size", "chksum", "typeflag", "magic", "prefix"],
                   "formats": ["V100", "V12", "V8", "u1", "V5", "u1"],
                   "offsets": [NAME.start, SIZE.start, CHKSUM.start, TYPEFLAG, MAGIC.start, PREFIX.start],
                   "itemsize": BLOCK})


def member_name(block: np.ndarray) -> str:
    """The name field of a header block, for messages."""
    return bytes(block[NAME]).split(b"\0", 1)[0].decode("utf-8", "replace")
