"""bpr-decode on block files (written by the independent writer): the record
count and the records by name; damage an error with the byte offset."""

from __future__ import annotations

import block_files as bf
from bpr_ops.__main__ import main


def test_bpr_decode_reads_block_files(tmp_path, capsys):
    records = [bf.data_record(i) for i in range(23)]
    for name, content in (("t.block", bf.file_bytes(records, 5)), ("t.gz", bf.gz(bf.file_bytes(records, 7)))):
        p = tmp_path / name
        p.write_bytes(content)
        assert main([str(p), "--names", "a,d,s", "--format", "json"]) == 0
        out = capsys.readouterr().out
        import json

        rows = json.loads(out)
        assert len(rows) == 23
        assert [r["a"] for r in rows] == [float(i) for i in range(23)]
        assert [r["d"] for r in rows] == [7 * i for i in range(23)]
        assert [r["s"] for r in rows] == [f"v{i}" for i in range(23)]
        assert main([str(p)]) == 0
        assert capsys.readouterr().out.rstrip().endswith("(23 records)")


def test_bpr_decode_names_the_offset_of_damage(tmp_path, capsys):
    good = bf.file_bytes([bf.data_record(i) for i in range(4)], 2)
    n1 = len(bf.block([bf.data_record(0), bf.data_record(1)]))
    p = tmp_path / "bad.block"
    p.write_bytes(good[:n1] + b"junk" + good[n1:])
    assert main([str(p)]) == 2
    err = capsys.readouterr().err
    assert f"at byte {n1}: expected the 16-byte block marker" in err, err
