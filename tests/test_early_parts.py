"""A large download asks for its other parts on its first answer's head (``GetOp.on_early``):
the op-level rules, driven directly with the records a worker would send. The end-to-end
timing through a slow network is in ``test_inflight.py``."""

from __future__ import annotations

import os

import pytest

from fasts3.engine.plan import GetOp
from fasts3.engine.tasks import GetArgs, GetPlan, GetResult, Task

MiB = 1 << 20
SIZE = 20 * MiB
PART = 8 * MiB


def _op(tmp_path) -> GetOp:
    return GetOp("s3://b/k", "b", "k", str(tmp_path / "k"), str(tmp_path / ".k.part"), PART)


def _first(op: GetOp) -> Task:
    spec = op.start()[0]
    assert isinstance(spec.args, GetArgs) and spec.args.first
    return Task(1, spec.bucket, spec.key, spec.args)


def _result(task: Task, start: int, length: int, etag: str = "e1",
            complete: bool = False) -> GetResult:
    headers = {"etag": f'"{etag}"'} if task.args.first or start == 0 else None
    return GetResult(start, length, SIZE, 0, SIZE, complete, headers)


def _run_parts(op: GetOp, specs, etag: str = "e1") -> None:
    for i, spec in enumerate(specs):
        start, length = spec.args.expect
        task = Task(10 + i, spec.bucket, spec.key, spec.args)
        assert op.on_result(task, _result(task, start, length, etag), None) == []


@pytest.fixture
def op(tmp_path):
    op = _op(tmp_path)
    with open(op.temp, "wb") as f:  # what the worker's first answer created
        f.truncate(SIZE)
    return op


def test_parts_planned_early_and_the_first_answer_completes_like_a_part(op):
    first = _first(op)
    specs = op.on_early(first, GetPlan(0, PART, 0, SIZE, "e1"))
    assert [s.args.range for s in specs] == [f"bytes={PART}-{2 * PART - 1}",
                                              f"bytes={2 * PART}-{SIZE - 1}"]
    assert all(s.args.if_match == "e1" for s in specs)
    assert op.learned_bytes == SIZE
    assert op.on_early(first, GetPlan(0, PART, 0, SIZE, "e1")) == []  # a retry: once only
    _run_parts(op, specs)
    assert not op.done  # the first answer is still arriving
    op.learned_bytes = 0
    assert op.on_result(first, _result(first, 0, PART), None) == []
    assert op.done and op.error is None and os.path.exists(op.final)
    assert op.learned_bytes == 0  # the size was reported once, with the plan


@pytest.mark.parametrize("change", ["etag", "complete", "length"])
def test_a_retried_first_answer_of_another_version_fails_the_download(op, change):
    first = _first(op)
    specs = op.on_early(first, GetPlan(0, PART, 0, SIZE, "e1"))
    _run_parts(op, specs)
    r = {"etag": _result(first, 0, PART, etag="e2"),
         "complete": _result(first, 0, SIZE, complete=True),
         "length": _result(first, 0, PART - 1)}[change]
    assert op.on_result(first, r, None) == []
    assert op.done and op.error is not None and op.error.code == "ObjectChanged"
    assert not os.path.exists(op.final) and not os.path.exists(op.temp)


def test_without_an_early_word_the_first_result_plans_the_parts(op):
    first = _first(op)
    specs = op.on_result(first, _result(first, 0, PART), None)
    assert len(specs) == 2 and not op.done and op.learned_bytes == SIZE
    _run_parts(op, specs)
    assert op.done and op.error is None and os.path.exists(op.final)
