"""A flag the chosen task does not take is exit 2 naming the flag and the task (issue 21: these were
silently ignored), refused before anything is read or written; the task's own flags still pass."""
import json

import pytest

from conftest import run_cli
from odrun.tasks import TASKS


@pytest.mark.parametrize("argv, flags, task", [
    (["train", "--task", "classify", "--gpus", "2", "--augment", "flip", "--eval-every", "50", "--config", "x"],
     ["--augment", "--config", "--eval-every", "--gpus"], "classify"),
    (["train", "--epochs", "3"], ["--epochs"], "detect"),
    (["train", "--task", "segment", "--fine-tune-from", "default"], ["--fine-tune-from"], "segment"),
    (["demo", "--task", "classify", "--threshold", "0.2"], ["--threshold"], "classify"),
    (["convert", "SRC", "--task", "classify", "--check", "--max-size", "640"], ["--check", "--max-size"], "classify"),
])
def test_a_flag_the_task_does_not_take_is_exit_2(tmp_path, argv, flags, task):
    work = tmp_path / "w"
    proc = run_cli("odrun", *(argv + (["--out", work] if argv[0] == "convert" else ["--workdir", work])), check=2)
    line = proc.stderr.splitlines()[0]
    assert line.startswith("error: " + ", ".join(flags) + ": ") and "the {} task".format(task) in line
    assert "odrun {}".format(argv[0]) in line and not work.exists()


def test_eval_reads_the_task_from_the_run_directory(tmp_path):
    """`odrun eval --api tf1` on a classifier run: --api is a detect flag."""
    (tmp_path / "run.json").write_text(json.dumps({"task": "classify"}))
    proc = run_cli("odrun", "eval", "--workdir", tmp_path, "--api", "tf1", check=2)
    assert "--api" in proc.stderr and "the classify task" in proc.stderr


def test_the_task_s_own_flags_pass_the_check(tmp_path):
    """--epochs is classify's: the refusal that follows is about the missing data, not the flag."""
    proc = run_cli("odrun", "train", "--task", "classify", "--epochs", "2", "--workdir", tmp_path / "w", check=2)
    assert "no training data" in proc.stderr and "--epochs" not in proc.stderr.splitlines()[0]


def test_every_task_has_each_pipeline_verb_and_segment_is_detect_with_masks():
    for name, task in TASKS.items():
        assert {"convert", "train", "eval", "export", "detect", "demo"} <= set(task.stages), name
    segment, detect = TASKS["segment"].stages, TASKS["detect"].stages
    assert segment["convert"].preset == {"masks": True}
    assert segment["train"] is detect["train"] and segment["detect"] is detect["detect"]
