"""The backend registry: backends by id, filled by the ``pytest_traceparity_register_backends`` hook."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import UsageError
from .base import Backend

DEFAULT_REFERENCE = "sqlalchemy-sqlite"


class BackendRegistry:
    """Backends by id, in registration order."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}

    def register(self, backend: Backend) -> None:
        if not isinstance(backend, Backend):
            raise UsageError(
                f"register() takes a Backend instance, got {backend!r}; "
                "subclass pytest_traceparity.backends.Backend and pass an instance"
            )
        backend_id = getattr(backend, "id", None)
        if not backend_id or not isinstance(backend_id, str):
            raise UsageError(f"{type(backend).__qualname__} has no string 'id' class attribute")
        if backend_id in self._backends:
            other = type(self._backends[backend_id])
            raise UsageError(
                f"backend id {backend_id!r} is registered twice "
                f"({other.__module__}.{other.__qualname__} and "
                f"{type(backend).__module__}.{type(backend).__qualname__}); rename one"
            )
        self._backends[backend_id] = backend

    def get(self, backend_id: str) -> Backend:
        try:
            return self._backends[backend_id]
        except KeyError:
            raise UsageError(f"unknown backend {backend_id!r}; valid ids: {', '.join(self.ids())}") from None

    def ids(self) -> list[str]:
        return list(self._backends)

    def __contains__(self, backend_id: object) -> bool:
        return backend_id in self._backends

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends.values())

    def __len__(self) -> int:
        return len(self._backends)

    @staticmethod
    def in_all(backend: Backend) -> bool:
        """Whether ``--backends=all`` takes ``backend``.

        Every backend unless it says otherwise (``in_all = False``) or is ``optional`` (an
        extra or an external binary) and cannot run here; naming it explicitly still works,
        and fails with what to install.
        """
        if not getattr(backend, "in_all", True):
            return False
        return not (getattr(backend, "optional", False) and backend.unavailable_reason())

    def select(self, spec: str | Iterable[str] | None, reference: str) -> list[str]:
        """Resolve ``--backends``: ``all``, a comma list, or nothing (the reference only)."""
        self.get(reference)
        if spec is None or spec == "" or spec == []:
            return [reference]
        items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [s.strip() for s in spec]
        items = [s for s in items if s]
        if items == ["all"]:
            return [backend.id for backend in self if self.in_all(backend)]
        if "all" in items:
            raise UsageError("--backends=all cannot be combined with other ids")
        chosen: list[str] = []
        for item in items:
            self.get(item)
            if item not in chosen:
                chosen.append(item)
        if not chosen:
            raise UsageError(f"--backends is empty; valid ids: {', '.join(self.ids())}, or 'all'")
        return chosen
