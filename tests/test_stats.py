"""``stats()`` returns exactly the counters the stub's ``Stats`` TypedDict lists (the Rust
test ``monitor::tests::the_stub_types_every_counter`` checks that list against the core's
one table), before and after close."""

import ast
from pathlib import Path

import evospikenet

STUB = Path(evospikenet.__file__).with_name("_native.pyi")


def typed_fields() -> list[str]:
    tree = ast.parse(STUB.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Stats"]
    return [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)]


def test_stats_has_exactly_the_typed_counters(mesh):
    a = mesh.node("a")
    assert list(a.stats()) == typed_fields()
    assert all(isinstance(v, int) for v in a.stats().values())
    a.close()
    assert list(a.stats()) == typed_fields()
