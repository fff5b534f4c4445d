"""Termination messages: the per-container file and the log-tail fallback."""

from __future__ import annotations

import os
from pathlib import Path

from minik.agent.termination import MAX_LOG_BYTES, MAX_MESSAGE_BYTES, new_message_file, read_message


def cri_log(path: Path, *lines: str) -> str:
    path.write_text("".join(f"2024-01-01T00:00:0{i % 10}.000000000Z stdout F {line}\n"
                            for i, line in enumerate(lines)))
    return str(path)


def test_new_file_is_empty_writable_and_unique(tmp_path: Path) -> None:
    a = new_message_file(str(tmp_path), "main")
    b = new_message_file(str(tmp_path), "main")
    assert a != b and os.path.dirname(a) == str(tmp_path / "containers" / "main")
    assert os.path.getsize(a) == 0 and os.stat(a).st_mode & 0o777 == 0o666


def test_file_message_wins_and_keeps_the_last_4096_bytes(tmp_path: Path) -> None:
    f = new_message_file(str(tmp_path), "main")
    Path(f).write_text("x" * 10 + "y" * MAX_MESSAGE_BYTES)
    log = cri_log(tmp_path / "0.log", "from logs")
    assert read_message(f, log, fallback_to_logs=True, failed=True) == "y" * MAX_MESSAGE_BYTES


def test_log_fallback_only_for_failed_containers_with_the_policy(tmp_path: Path) -> None:
    f = new_message_file(str(tmp_path), "main")
    log = cri_log(tmp_path / "0.log", "first", "last words")
    assert read_message(f, log, fallback_to_logs=True, failed=True) == "first\nlast words\n"
    assert read_message(f, log, fallback_to_logs=False, failed=True) == ""
    assert read_message(f, log, fallback_to_logs=True, failed=False) == ""


def test_log_fallback_tail_is_bounded(tmp_path: Path) -> None:
    log = cri_log(tmp_path / "0.log", *(f"line-{i:04d}-" + "z" * 40 for i in range(200)))
    text = read_message("", log, fallback_to_logs=True, failed=True)
    assert len(text.encode()) <= MAX_LOG_BYTES and text.endswith("line-0199-" + "z" * 40 + "\n")
    assert "line-0119-" not in text    # only the last 80 lines are considered


def test_missing_files_give_no_message(tmp_path: Path) -> None:
    assert read_message(str(tmp_path / "gone"), str(tmp_path / "gone.log"),
                        fallback_to_logs=True, failed=True) == ""
