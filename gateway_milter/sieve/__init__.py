"""Bulwark's Sieve engine (RFC 5228 and extensions; docs/policy/sieve.md).

``compile_script(source)`` parses and compiles once; ``Program.execute(message)`` runs the
closures and returns the actions. ``validate(source)`` lists errors with line and column for
the web editor; importing this package registers the validator used by ``policy import``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway_milter.sieve import bulwark as _bulwark  # noqa: F401 - registers vnd.bulwark
from gateway_milter.sieve.compiler import (
    Exec,
    ExtensionRegistry,
    ScriptLoader,
    compile_source,
)
from gateway_milter.sieve.grammar import SieveError
from gateway_milter.sieve.language import REGISTRY
from gateway_milter.sieve.runtime import (
    DEFAULT_LIMITS,
    Environment,
    Limits,
    MessageData,
    ReturnScript,
    Runtime,
    SieveAction,
    SieveRuntimeError,
    StopScript,
)

__all__ = [
    "REGISTRY",
    "CompileError",
    "ExecutionResult",
    "Limits",
    "MessageData",
    "Program",
    "SieveAction",
    "SieveError",
    "SieveRuntimeError",
    "compile_script",
    "validate",
]


class CompileError(Exception):
    def __init__(self, errors: list[SieveError], warnings: list[SieveError] | None = None) -> None:
        super().__init__("; ".join(f"{e.line}:{e.column}: {e.message}" for e in errors))
        self.errors = errors
        self.warnings = warnings or []


@dataclass
class ExecutionResult:
    actions: list[SieveAction]
    implicit_keep: bool
    error: SieveRuntimeError | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "actions": [a.as_dict() for a in self.actions],
            "implicit_keep": self.implicit_keep,
            "error": str(self.error) if self.error else None,
        }


@dataclass
class Program:
    name: str
    source: str
    body: Exec
    required: frozenset[str]

    def run(self, rt: Runtime) -> None:
        """Run inside an existing runtime (several scripts may share one result)."""
        saved = rt.script
        rt.script = self.name
        try:
            self.body(rt)
        except (StopScript, ReturnScript):
            pass
        finally:
            rt.script = saved

    def execute(self, msg: MessageData, env: Environment | None = None, limits: Limits = DEFAULT_LIMITS,
                **kw: Any) -> ExecutionResult:
        rt = Runtime(msg, env, limits, **kw)
        rt.script = self.name
        try:
            self.body(rt)
        except (StopScript, ReturnScript):
            pass
        except SieveRuntimeError as e:
            # RFC 5228 2.10.6: on a run-time error the implicit keep is done.
            return ExecutionResult([], True, e, list(rt.headers))
        except RecursionError:
            return ExecutionResult([], True, SieveRuntimeError("script too deeply nested", rt.line, self.name),
                                   list(rt.headers))
        return ExecutionResult(list(rt.actions), rt.implicit_keep, None, list(rt.headers))


def compile_script(source: str, name: str = "script", *, loader: ScriptLoader | None = None,
                   registry: ExtensionRegistry | None = None,
                   setup: Any = None) -> Program:
    """Compile or raise :class:`CompileError` listing every error with line and column."""
    body, cc = compile_source(source, registry or REGISTRY, loader=loader, name=name, setup=setup)
    if body is None:
        raise CompileError(cc.errors, cc.warnings)
    return Program(name, source, body, frozenset(cc.required))


def validate(source: str, *, loader: ScriptLoader | None = None) -> list[dict[str, Any]]:
    """Errors as ``[{"line", "column", "message"}]`` (empty when the script is valid)."""
    if not isinstance(source, str):
        return [{"line": 1, "column": 1, "message": "the script must be text"}]
    # At save/import time an included script may not exist yet: it is checked on publish.
    _, cc = compile_source(source, REGISTRY, loader=loader or (lambda n, loc: ""))
    return [e.as_dict() for e in sorted(cc.errors, key=lambda e: (e.line, e.column))]


def _script_validator(source: str) -> str | None:
    errs = validate(source)
    if not errs:
        return None
    e = errs[0]
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{e['line']}:{e['column']}: {e['message']}{more}"


def _register_validator() -> None:
    from gateway_milter.policy import snapshot

    snapshot.script_validator = _script_validator


_register_validator()
