"""Webhook signature headers on their own (no engine): the two schemes, the window, the
fingerprint; and the trigger fields that choose them."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import ValidationError

from spane_py import WebhookSignatureError, WebhookTrigger, WorkflowDefinition
from spane_py.definitions.graph import content_hash
from spane_py.triggers import signatures
from spane_py.triggers.signatures import presented, sign, sign_github, verify

BODY = b'{"order": 42}'


def test_sign_is_hmac_sha256_of_the_timestamp_and_the_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", BODY, timestamp=1700000000) == f"t=1700000000,v1={expected}"
    assert sign("s3cret", BODY.decode(), timestamp=1700000000) == f"t=1700000000,v1={expected}"
    github = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert sign_github("s3cret", BODY) == f"sha256={github}"


def test_the_fingerprint_names_the_signed_request_not_the_header_spelling() -> None:
    header = sign("s3cret", BODY, timestamp=1000)
    digest = header.partition("v1=")[2]
    spellings = [header, f"t=1000, v1={digest.upper()}", f"v1={'0' * 64},t=1000,v1={digest}"]
    prints = {
        verify(
            "s3cret",
            presented("spane", {"x-spane-signature": h}, now=1000, tolerance_s=300, where="w"),
            BODY,
            where="w",
        )
        for h in spellings
    }
    assert prints == {digest}


@pytest.mark.parametrize(
    ("now", "reason"), [(1300.0, None), (700.0, None), (1300.5, "outside_window"),
                        (699.0, "outside_window")],
)  # fmt: skip
def test_the_window_holds_on_both_sides(now: float, reason: str | None) -> None:
    headers = {"x-spane-signature": sign("s", BODY, timestamp=1000)}
    if reason is None:
        presented("spane", headers, now=now, tolerance_s=300, where="w")
        return
    with pytest.raises(WebhookSignatureError) as exc:
        presented("spane", headers, now=now, tolerance_s=300, where="w")
    assert exc.value.details["reason"] == reason


def test_huge_timestamps_are_malformed_not_parsed() -> None:
    headers = {"x-spane-signature": f"t={'9' * 5000},v1={'0' * 64}"}
    with pytest.raises(WebhookSignatureError) as exc:
        presented("spane", headers, now=0, tolerance_s=300, where="w")
    assert exc.value.details["reason"] == "malformed"


def test_the_old_scheme_is_refused_with_the_way_forward() -> None:
    headers = {"x-spane-signature": sign_github("s", BODY)}  # sha256=<hex>, no timestamp
    with pytest.raises(WebhookSignatureError, match='"signature": "github"') as exc:
        presented("spane", headers, now=0, tolerance_s=300, where="w")
    assert exc.value.details["reason"] == "malformed"
    assert "t=<unix seconds>,v1=" in str(exc.value)


def test_webhook_trigger_signing_fields() -> None:
    hook = WebhookTrigger.model_validate(
        {"type": "webhook", "config": {"path": "/gh", "secret": "s", "signature": "github",
                                       "toleranceSeconds": 60}}
    )  # fmt: skip
    assert (hook.signature, hook.tolerance_seconds) == ("github", 60)
    assert hook.to_spane_json()["config"]["toleranceSeconds"] == 60
    # defaults stay out of dumps: definitions saved before keep their content hash
    plain = WebhookTrigger(path="x", secret="s")
    assert "signature" not in plain.model_dump()
    assert "tolerance_seconds" not in plain.model_dump()
    definition = {"id": "w", "nodes": [{"id": "a", "type": "t"}],
                  "triggers": [{"type": "webhook", "path": "x", "secret": "s"}]}  # fmt: skip
    same = {**definition, "triggers": [{**definition["triggers"][0], "signature": "spane"}]}  # type: ignore[dict-item]
    assert content_hash(WorkflowDefinition.model_validate(definition)) == content_hash(
        WorkflowDefinition.model_validate(same)
    )
    with pytest.raises(ValidationError, match="give it a 'secret' too"):
        WebhookTrigger(path="x", signature="github")
    with pytest.raises(ValidationError):
        WebhookTrigger(path="x", secret="s", signature="stripe")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        WebhookTrigger(path="x", secret="s", tolerance_seconds=0)
    assert signatures.SCHEMES == ("spane", "github")


@pytest.mark.parametrize("bad", [0, 0.5, 86_401, float("nan"), True, "300", None])
def test_the_engine_tolerance_is_checked(bad: object) -> None:
    from spane_py import ConfigurationError, NodeRegistry, WorkflowEngine

    with pytest.raises(ConfigurationError, match="webhook_tolerance_seconds must be 1-86400"):
        WorkflowEngine(NodeRegistry(), webhook_tolerance_seconds=bad)  # type: ignore[arg-type]
