"""How spane_py's errors and pydantic's validation errors become HTTP answers."""

from __future__ import annotations

import pytest

from spane_py import errors as e
from spane_py.api.errors import describe_validation, status_for


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (e.WorkflowNotFoundError(), 404),
        (e.ExecutionNotFoundError(), 404),
        (e.DlqItemNotFoundError(), 404),
        (e.WorkflowValidationError(), 422),
        (e.NodeNotRegisteredError(), 422),
        (e.InvalidEnqueueOptionsError(), 422),
        (e.SerializationError(), 422),
        (e.MaxDepthExceededError(), 422),
        (e.InvalidExecutionStateError(), 409),
        (e.ResumeTokenError(details={"reason": "unknown"}), 404),
        (e.ResumeTokenError(details={"reason": "expired"}), 410),
        (e.ResumeTokenError(details={"reason": "used"}), 410),
        (e.ResumeTokenError(details={"reason": "revoked"}), 410),
        (e.ResumeTokenError(details={"reason": "not_waiting"}), 409),
        (e.ExecutionWaitTimeoutError(), 504),
        (e.ConfigurationError(), 503),
        (e.StatePersistenceError(), 503),
        (e.SchemaVersionError(), 503),
        (e.QueueError(), 503),
        (e.NodeExecutionError(), 500),
    ],
)
def test_status_of_each_error(error: e.SpaneError, status: int) -> None:
    assert status_for(error) == status


def test_errors_added_later_follow_their_code() -> None:
    class WebhookNotFoundError(e.SpaneError):
        code = "WEBHOOK_NOT_FOUND"

    class WebhookSignatureError(e.SpaneError):
        code = "WEBHOOK_SIGNATURE_INVALID"

    assert status_for(WebhookNotFoundError()) == 404
    assert status_for(WebhookSignatureError()) == 401


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"loc": ("body", "priority"), "msg": "Input should be less than or equal to 10",
          "type": "less_than_equal"},
         "body field 'priority': Input should be less than or equal to 10"),
        ({"loc": ("body", "x"), "msg": "Extra inputs are not permitted",
          "type": "extra_forbidden"}, "body field 'x': is not a known field"),
        ({"loc": ("body", 12), "msg": "JSON decode error", "type": "json_invalid",
          "ctx": {"error": "Expecting value"}},
         "the request body is not valid JSON: Expecting value"),
        ({"loc": ("body",), "msg": "Field required", "type": "missing"},
         "the request needs a JSON body"),
        ({"loc": ("query", "limit"), "msg": "Input should be greater than or equal to 1",
          "type": "greater_than_equal"},
         "query parameter 'limit': Input should be greater than or equal to 1"),
        ({"loc": ("path", "dlq_id"), "msg": "bad", "type": "int_parsing"},
         "path parameter 'dlq_id': bad"),
    ],
)  # fmt: skip
def test_validation_messages_name_the_field(error: dict[str, object], message: str) -> None:
    assert describe_validation([error]) == message


def test_several_problems_in_one_message() -> None:
    errs = [
        {"loc": ("body", "a"), "msg": "m1", "type": "t"},
        {"loc": ("query", "b"), "msg": "m2", "type": "t"},
    ]
    assert describe_validation(errs) == "body field 'a': m1; query parameter 'b': m2"
    assert describe_validation([]) == "the request is invalid"
