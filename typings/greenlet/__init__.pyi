# Type information for the parts of greenlet that greenmotor uses: greenlet ships none (no
# stubs, no py.typed). mypy finds it through mypy_path (pyproject.toml).
from collections.abc import Callable
from contextvars import Context
from types import TracebackType
from typing import Any

__version__: str

class GreenletExit(BaseException): ...

class greenlet:
    run: Callable[..., Any]
    parent: greenlet | None
    gr_context: Context | None
    def __init__(
        self, run: Callable[..., Any] | None = None, parent: greenlet | None = None
    ) -> None: ...
    def switch(self, *args: Any, **kwargs: Any) -> Any: ...
    def throw(
        self,
        typ: type[BaseException] | BaseException = ...,
        val: object = ...,
        tb: TracebackType | None = ...,
    ) -> Any: ...
    @property
    def dead(self) -> bool: ...
    def __bool__(self) -> bool: ...

def getcurrent() -> greenlet: ...
