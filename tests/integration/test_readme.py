"""README's Python example, run as written (a tiny RoBERTa for roberta-base, 96 real reviews for the files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path, monkeypatch, tiny_roberta, small_csv, capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    assert code.count("TrainConfig(") == 2
    code = code.replace('"roberta-base"', repr(tiny_roberta)).replace('"reviews.csv"', repr(str(small_csv)))
    code = code.replace('"held_out.csv"', repr(str(small_csv)))
    # Short runs: the example's own settings, with fewer tokens and one epoch.
    code = code.replace("TrainConfig(", "TrainConfig(max_length=32, epochs=1, ")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()  # train's own log lines too, between the example's prints
    scores = [line for line in printed if re.fullmatch(r"[\d.]+ [\d.]+", line)]
    answers = [line for line in printed if re.fullmatch(r"(Negative|Positive)( [\d.]+)?", line)]
    assert len(scores) == 1 and all(0 <= float(s) <= 1 for s in scores[0].split())  # accuracy, baseline's
    assert len(answers) == 2 and 0 <= float(answers[0].split()[1]) <= 1  # label and F1, then the set's answer
    assert (tmp_path / "runs" / "reviews" / "adapter_model.safetensors").is_file()
