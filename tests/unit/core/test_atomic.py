"""atomic.claimed: one writer per output place, and no stale claim after a crash."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lora_sentiment.atomic import claimed
from lora_sentiment.errors import UserError

HOLD = """
import sys, time
from pathlib import Path
from lora_sentiment.atomic import claimed
with claimed(Path(sys.argv[1]), "--output-dir"):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(place: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(place)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_place_held_by_another_process_is_refused_naming_it_and_freed_when_it_is_killed(tmp_path):
    place = tmp_path / "runs" / "imdb"
    holder = _holder(place)
    try:
        with pytest.raises(UserError, match=rf"--output-dir .*imdb is being written by .*\(process {holder.pid}\)"):
            with claimed(place, "--output-dir"):
                pytest.fail("claimed twice")
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: the lock file stays, its lock does not
        holder.wait()
    assert (tmp_path / "runs" / ".imdb.lock").exists()
    with claimed(place, "--output-dir"):
        assert (tmp_path / "runs" / ".imdb.lock").read_text() == str(os.getpid())
    assert list((tmp_path / "runs").iterdir()) == []  # released: the lock file goes


def test_a_claim_removes_the_folders_it_made_to_hold_its_lock_unless_they_were_filled(tmp_path):
    with claimed(tmp_path / "a" / "b" / "out", "OUT_DIR"):
        assert (tmp_path / "a" / "b" / ".out.lock").is_file()
    assert list(tmp_path.iterdir()) == []
    with claimed(tmp_path / "a" / "b" / "out", "OUT_DIR"):
        (tmp_path / "a" / "b" / "out").mkdir()
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out"]


def test_a_thread_may_claim_again_what_it_holds_and_another_thread_may_not(tmp_path):
    """A compile claims its cache folder and calls export_run, which claims it again: one thread, one claim. Another
    thread (a server's) is refused, or waits with `wait`, like another process."""
    place = tmp_path / "out"
    with claimed(place, "--output-dir"):
        with claimed(place, "--output-dir"):
            pass
        assert (tmp_path / ".out.lock").is_file()  # the inner claim did not release the outer one
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(UserError, match=rf"another lora-sentiment command \(process {os.getpid()}\)"):
                pool.submit(_claim, place).result()
    assert not (tmp_path / ".out.lock").exists()


def _claim(place: Path) -> None:
    with claimed(place, "--output-dir"):
        pass


def test_a_claim_that_waits_starts_when_the_holder_ends_and_says_whom_it_waited_for(tmp_path):
    place, said, order = tmp_path / "cache", [], []
    holder = _holder(place)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_claim_waiting, place, said, order)
        while not said:
            time.sleep(0.05)
        assert said == [str(holder.pid)] and not order  # told the holder, and waiting
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        waiting.result(timeout=30)
    assert order == ["claimed"] and list(tmp_path.iterdir()) == []


def _claim_waiting(place: Path, said: list, order: list) -> None:
    with claimed(place, "the compiled model", wait=said.append):
        order.append("claimed")


def test_a_folder_that_cannot_take_the_lock_file_leaves_the_verdict_to_the_commands_checks(tmp_path, monkeypatch):
    import lora_sentiment.atomic

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lora_sentiment.atomic.os, "open", refused)
    with claimed(tmp_path / "out", "--output-dir"):
        ran = True
    assert ran and list(tmp_path.iterdir()) == []


def test_the_root_folder_is_refused_as_an_output_in_one_line():
    """`--output-dir /` (or `..` from a folder under it) failed in a traceback ("PosixPath('/') has an empty name"),
    and `tune` wrote its study, trials and plots into `/` itself."""
    from lora_sentiment.runs.run import RunWorkspace

    for place in (Path("/"), Path("/tmp/../")):
        with pytest.raises(UserError, match="is the root folder; give a folder of its own"):
            with claimed(place, "OUT_DIR"):
                pytest.fail("claimed the root")
        with pytest.raises(UserError, match=r"--output-dir .* is the root folder; give the run a folder of its own"):
            RunWorkspace(place)
