"""`triage classify` and `triage evaluate` read standard input and `classify` streams: a batch is
written as soon as it is tagged, so memory does not grow with the input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from services.cli import main

ROOT = Path(__file__).parents[2]
LINE = '{"id": "%d", "text": "My parcel arrived broken and nobody answers my e-mails."}\n'


def test_classify_tags_standard_input_onto_standard_output() -> None:
    lines = "".join(LINE % n for n in range(5))
    result = CliRunner().invoke(main, ["classify"], input=lines)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == [str(n) for n in range(5)]
    assert all(row["category"] for row in rows)
    assert "5 lines tagged" in result.stderr


def test_classify_writes_a_batch_before_the_input_ends() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "classify", "--batch-size", "4"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write("".join(LINE % n for n in range(4)))
        process.stdin.flush()
        # The input is still open: the first batch's rows arrive all the same.
        first = json.loads(process.stdout.readline())
        assert first["id"] == "0"
        process.stdin.close()
        rest = process.stdout.read().splitlines()
        assert [json.loads(line)["id"] for line in rest] == ["1", "2", "3"]
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_line_leaves_no_output_file(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(LINE % n for n in range(40)) + '{"id": 1}\n')
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main, ["classify", "--input", str(source), "--output", str(out), "--batch-size", "8"]
    )
    assert result.exit_code == 1
    assert "in.jsonl:41: 'text' must be a non-empty string" in result.output
    assert list(tmp_path.iterdir()) == [source]


def test_evaluate_reads_labelled_lines_from_standard_input() -> None:
    labelled = "".join(
        json.dumps({"text": text, "label_category": label}) + "\n"
        for text, label in [
            ("My parcel arrived broken.", "product_fault"),
            ("You charged me twice this month.", "billing"),
            ("The delivery is three weeks late.", "delay"),
        ]
    )
    result = CliRunner().invoke(main, ["evaluate", "-"], input=labelled)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 3
    assert report["metrics"]["category"]["examples"] == 3
