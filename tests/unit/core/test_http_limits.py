"""What the server decides from headers alone: read a body or not, let a status reader in or not."""

from __future__ import annotations

import pytest

from gitops_agent.core.http_limits import Refusal, bearer_refusal, body_refusal, declared_length


@pytest.mark.parametrize(
    ("headers", "required", "expected"),
    [
        ({"content-length": "10"}, True, None),
        ({"content-length": "100"}, True, None),  # exactly the cap
        ({"content-length": "101"}, True, 413),
        ({"content-length": "101"}, False, 413),
        ({}, True, 411),
        ({}, False, None),  # a GET without a body
        ({"content-length": "-1"}, True, 411),
        ({"content-length": "1e3"}, True, 411),
        ({"transfer-encoding": "chunked"}, False, 411),  # any size: never read to find out
        ({"transfer-encoding": "gzip, Chunked", "content-length": "5"}, True, 411),
    ],
)
def test_body_refusal(headers: dict[str, str], required: bool, expected: int | None) -> None:
    refusal = body_refusal(headers, cap=100, required=required)
    assert (refusal.status if refusal else None) == expected


def test_a_refusal_says_the_cap() -> None:
    assert body_refusal({"content-length": "20000000"}, cap=100, required=True) == Refusal(
        413, "payload too large: at most 100 bytes"
    )


def test_declared_length() -> None:
    assert declared_length({"content-length": "42"}) == 42
    assert declared_length({}) == 0


@pytest.mark.parametrize(
    ("authorization", "admitted"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),  # the scheme is case-insensitive (RFC 7235)
        ("Bearer s3cret ", True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer s3cre", False),
        ("Bearer s3cret2", False),
        ("Basic s3cret", False),
        ("Bearer sécret", False),
    ],
)
def test_bearer_refusal(authorization: str | None, admitted: bool) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    assert (bearer_refusal(headers, b"s3cret") is None) is admitted


def test_without_a_token_everyone_is_admitted() -> None:
    assert bearer_refusal({}, None) is None
