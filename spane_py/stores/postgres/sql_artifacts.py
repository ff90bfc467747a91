"""The statements of artifacts (``ArtifactStore``): one row per execution and name."""

from __future__ import annotations

_COLUMNS = "execution_id::text, name, node_id, content_type, size, created_at"

# Written only for an execution that exists (no row: it does not); a name put again is
# replaced, record and bytes.
PUT_ARTIFACT = """
INSERT INTO artifacts (execution_id, name, node_id, content_type, size, data, created_at)
SELECT $1, $2, $3, $4, $5, $6, $7
WHERE EXISTS (SELECT 1 FROM executions WHERE execution_id = $1)
ON CONFLICT (execution_id, name) DO UPDATE SET
    node_id = EXCLUDED.node_id, content_type = EXCLUDED.content_type,
    size = EXCLUDED.size, data = EXCLUDED.data, created_at = EXCLUDED.created_at
"""
GET_ARTIFACT = f"SELECT {_COLUMNS}, data FROM artifacts WHERE execution_id = $1 AND name = $2"
LIST_ARTIFACTS = f"SELECT {_COLUMNS} FROM artifacts WHERE execution_id = $1 ORDER BY name"
