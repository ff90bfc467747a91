"""Artifacts: named blobs of an execution, kept in the store beside its node results.

A node puts one with ``await ctx.put_artifact(name, data)`` — bytes as they are (content
type ``application/octet-stream`` unless given), any other value as JSON
(``application/json``) — and reads one with ``await ctx.get_artifact(name)``: the bytes, or
the value decoded. It is written when put, not with the node's result, so a node that fails
afterwards leaves it behind and a retried one replaces it (one artifact per execution and
name). Instead of large data, a node returns (or passes downstream) an ``ArtifactRef``: a
small JSON object naming the artifact, which any node — of this execution, of a parent
execution, anywhere — reads back with ``ctx.get_artifact(ref)``.

``Artifacts`` is what the engine hands every ``ExecutionContext``: the store, the size limit
(``WorkflowEngine(max_artifact_bytes=...)``, 64 MiB by default) and the clock. See
docs/artifacts.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spane_py import _json
from spane_py._text import text_problem
from spane_py.errors import ArtifactNotFoundError, NonRetryableError
from spane_py.records import ArtifactRecord

if TYPE_CHECKING:
    from spane_py.clock import Clock
    from spane_py.stores.base import ArtifactStore

DEFAULT_MAX_ARTIFACT_BYTES = 64 << 20
MAX_NAME_CHARS = 255
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
# The key naming the artifact in an ``ArtifactRef``.
REF_KEY = "$artifact"


class ArtifactRef(dict[str, str]):
    """A reference to an artifact: ``{"$artifact": name, "execution_id": id}``, a plain
    JSON object (a ``dict``), so a node can return it, or put it in its output, like any
    other data; downstream it arrives as a dict, which ``ctx.get_artifact`` takes as it is
    (``ArtifactRef.parse`` reads one)."""

    def __init__(self, execution_id: str, name: str) -> None:
        super().__init__({REF_KEY: name, "execution_id": execution_id})

    @property
    def name(self) -> str:
        return self[REF_KEY]

    @property
    def execution_id(self) -> str:
        return self["execution_id"]

    @classmethod
    def parse(cls, value: object) -> ArtifactRef | None:
        """The reference ``value`` holds (a dict of that shape), or None."""
        if not isinstance(value, Mapping) or set(value) != {REF_KEY, "execution_id"}:
            return None
        name, execution_id = value[REF_KEY], value["execution_id"]
        if not isinstance(name, str) or not isinstance(execution_id, str):
            return None
        return cls(execution_id, name)


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name an artifact (None: it can): 1 to 255 characters of text
    that can be stored."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        return f"must be 1 to {MAX_NAME_CHARS} characters long, got {len(name)}"
    return text_problem(name)


def encode(name: str, data: Any, content_type: str | None) -> tuple[bytes, str]:
    """The bytes stored for ``data`` and their content type."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), content_type or BINARY_TYPE
    if content_type is not None and content_type != JSON_TYPE:
        raise NonRetryableError(
            f"artifact {name!r}: a content_type is for bytes; other values are stored as JSON "
            f"({JSON_TYPE})"
        )
    return _json.dumps(data, what=f"artifact {name!r}").encode(), JSON_TYPE


def decode(data: bytes, content_type: str) -> Any:
    """What ``get_artifact`` gives back: a JSON artifact's value, else the bytes."""
    return _json.loads(data) if content_type == JSON_TYPE else data


class Artifacts:
    """The artifact methods of every ``ExecutionContext`` the engine makes go through this:
    the store, ``max_bytes`` (an artifact over it fails its node, naming both) and the
    clock that dates them."""

    __slots__ = ("clock", "max_bytes", "store")

    def __init__(self, store: ArtifactStore, *, max_bytes: int, clock: Clock) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.clock = clock

    async def put(
        self,
        execution_id: str,
        node_id: str | None,
        name: str,
        data: Any,
        content_type: str | None = None,
    ) -> ArtifactRef:
        problem = name_problem(name)
        if problem is not None:
            raise NonRetryableError(
                f"an artifact name {problem}", execution_id=execution_id, node_id=node_id
            )
        if content_type is not None and (
            not isinstance(content_type, str) or not content_type or text_problem(content_type)
        ):
            raise NonRetryableError(
                f"artifact {name!r}: content_type must be a non-empty string",
                execution_id=execution_id,
                node_id=node_id,
            )
        blob, kind = encode(name, data, content_type)
        if len(blob) > self.max_bytes:
            raise NonRetryableError(
                f"artifact {name!r} is {len(blob)} bytes, over the limit of {self.max_bytes} "
                "bytes (max_artifact_bytes)",
                execution_id=execution_id,
                node_id=node_id,
            )
        record = ArtifactRecord(
            execution_id=execution_id,
            name=name,
            content_type=kind,
            size=len(blob),
            created_at=self.clock.now(),
            node_id=node_id,
        )
        await self.store.put_artifact(record, blob)
        return ArtifactRef(execution_id, name)

    async def read(self, execution_id: str, name: str) -> tuple[ArtifactRecord, bytes]:
        """The artifact and its bytes; ``ArtifactNotFoundError`` when there is none."""
        found = None
        if name_problem(name) is None:
            found = await self.store.get_artifact(execution_id, name)
        if found is None:
            raise ArtifactNotFoundError(
                f"execution {execution_id!r} has no artifact {name!r}", execution_id=execution_id
            )
        return found


def target(execution_id: str, name_or_ref: object) -> tuple[str, str]:
    """The execution and name ``ctx.get_artifact`` reads: a reference's, or this
    execution's artifact of that name."""
    ref = ArtifactRef.parse(name_or_ref)
    if ref is not None:
        return ref.execution_id, ref.name
    if not isinstance(name_or_ref, str):
        raise NonRetryableError(
            f"get_artifact takes an artifact's name or an ArtifactRef, got "
            f"{type(name_or_ref).__name__}",
            execution_id=execution_id,
        )
    return execution_id, name_or_ref


__all__ = [
    "BINARY_TYPE",
    "DEFAULT_MAX_ARTIFACT_BYTES",
    "JSON_TYPE",
    "ArtifactRef",
    "Artifacts",
    "decode",
    "encode",
    "name_problem",
    "target",
]
