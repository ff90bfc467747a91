"""Job payloads: a node's run and an execution's deadline are told apart by kind."""

from __future__ import annotations

import pytest

from spane_py.queue.jobs import (
    LEGACY_DEADLINE_NODE,
    DeadlineJob,
    NodeJob,
    job_from_payload,
)


def test_a_node_job_round_trips_with_its_flags() -> None:
    job = NodeJob("e1", "wf", 3, "a", 2, wake=True, first=True)
    assert job_from_payload(job.payload()) == job
    assert job.job_id("p") == "p:e1:a:2:wake"
    # "first" says how the job was sent, not which job it is: same id.
    assert NodeJob("e1", "wf", 3, "a", 2).job_id("p") == "p:e1:a:2"
    assert NodeJob("e1", "wf", 3, "a", 2, first=True).job_id("p") == "p:e1:a:2"


def test_a_deadline_job_is_its_own_kind() -> None:
    job = DeadlineJob("e1", "wf", 3)
    assert job_from_payload(job.payload()) == job
    assert job.job_id("p") == "p:e1:deadline"


def test_a_deadline_sent_by_an_older_version_is_still_understood() -> None:
    old = NodeJob("e1", "wf", 3, LEGACY_DEADLINE_NODE).payload()
    assert job_from_payload(old) == DeadlineJob("e1", "wf", 3)
    assert DeadlineJob("e1", "wf", 3).legacy_job_id("p") == NodeJob(
        "e1", "wf", 3, LEGACY_DEADLINE_NODE
    ).job_id("p")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "must be an object"),
        ({"e": "x", "w": "wf", "v": 1}, "lacks field 'n'"),
        ({"kind": "deadline", "e": "x", "w": "wf"}, "deadline job payload"),
        ({"kind": "deadline", "e": "x", "w": "wf", "v": "1"}, "deadline job payload"),
    ],
)
def test_a_malformed_payload_is_refused_with_what_is_wrong(payload: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        job_from_payload(payload)
