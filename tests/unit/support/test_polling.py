"""The tests' one polling helper: returns the condition's value, fails with what it waited for."""

from __future__ import annotations

import pytest

from tests.support.polling import WaitTimeout, wait_until


def test_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", {"ready": True}])
    assert wait_until(lambda: next(answers), interval=0) == {"ready": True}


def test_a_timeout_is_a_test_failure_naming_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(AssertionError) as failed:
        wait_until(lambda: [], timeout=0.05, message="two pods")
    assert isinstance(failed.value, WaitTimeout)
    assert "waiting for two pods; the last value was []" in str(failed.value)


def test_the_condition_is_tried_even_with_no_time_left_and_its_errors_propagate() -> None:
    assert wait_until(lambda: "now", timeout=0) == "now"
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0)


def test_a_message_function_is_asked_only_on_timeout() -> None:
    asked: list[int] = []

    def message() -> str:
        asked.append(1)
        return "the state seen last"

    assert wait_until(lambda: True, message=message)
    assert asked == []
    with pytest.raises(WaitTimeout, match="the state seen last"):
        wait_until(lambda: False, timeout=0, message=message)
