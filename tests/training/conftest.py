"""Shared helpers of the training tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def crash_on_call(monkeypatch: pytest.MonkeyPatch) -> Callable[[object, str, int], Callable[[], None]]:
    """``crash_on_call(module, name, n)`` makes ``module.name`` raise ``RuntimeError("simulated crash")`` on its
    n-th call; the returned function puts the real one back (as a resumed run would find it)."""

    def install(module: object, name: str, n: int) -> Callable[[], None]:
        real = getattr(module, name)
        calls = {"n": 0}

        def crashing(*args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] == n:
                raise RuntimeError("simulated crash")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, crashing)
        return lambda: monkeypatch.setattr(module, name, real)

    return install
