"""PostgreSQL settings under which an acknowledged commit can be lost.

spane_py's exactly-once bookkeeping rests on one promise: a write the store saw commit is
still there after a crash. Two settings break it on the server itself:

* ``synchronous_commit = off``: the server answers COMMIT before the WAL reaches disk; a
  server (or machine) crash loses the last few hundred milliseconds of acknowledged
  commits. A node whose completion was lost runs again, and an execution id a caller was
  given may no longer exist.
* ``fsync = off``: nothing is forced to disk at all; an operating-system crash can lose
  commits or corrupt the cluster.

``local``, ``remote_write``, ``on`` and ``remote_apply`` all flush the WAL to the primary's
own disk before answering; they differ only in what they wait for from synchronous
replicas, which matters for a failover to a replica, not for a crash of the primary. They
are not reported (docs/deploying.md, "Durability", says what to choose with replicas).
"""

from __future__ import annotations


def durability_problems(synchronous_commit: str, fsync: str) -> list[str]:
    """One sentence per setting that can lose acknowledged commits; empty when none."""
    problems: list[str] = []
    if synchronous_commit.strip().lower() == "off":
        problems.append(
            "PostgreSQL's synchronous_commit is off for this store's sessions: a database "
            "crash can lose commits spane_py already acknowledged (executions that were "
            "started, nodes that completed), and lost completions make nodes run twice; "
            "set synchronous_commit = on (see docs/deploying.md, 'Durability')"
        )
    if fsync.strip().lower() == "off":
        problems.append(
            "PostgreSQL runs with fsync = off: an operating-system crash can lose "
            "acknowledged commits or corrupt the database; turn fsync on (see "
            "docs/deploying.md, 'Durability')"
        )
    return problems


__all__ = ["durability_problems"]
