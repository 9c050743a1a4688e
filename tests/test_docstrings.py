"""``help()`` helps: every public class, function, method and property of the package has
a docstring at run time, and the extension's docstrings are the stub's, word for word."""

from __future__ import annotations

import ast
import importlib
import inspect
import pydoc
from pathlib import Path

import pytest

PUBLIC_MODULES = [
    "evospikenet",
    "evospikenet.zenoh_comm",
    "evospikenet.brain",
    "evospikenet.kernels",
    "evospikenet.errors",
    "evospikenet._native",
]
STUB = Path(__file__).resolve().parents[1] / "python" / "evospikenet" / "_native.pyi"


def _public(name: str) -> bool:
    return not name.startswith("_")


def _doc_of_member(member: object) -> str | None:
    if isinstance(member, (classmethod, staticmethod)):
        member = member.__func__
    return getattr(member, "__doc__", None)


def _is_documentable_member(member: object) -> bool:
    """Methods, properties and class/static methods; not plain class attributes (a
    dataclass field's default, a constant)."""
    if isinstance(member, (property, classmethod, staticmethod)):
        return True
    if inspect.isfunction(member) or inspect.ismethoddescriptor(member):
        return True
    return inspect.isdatadescriptor(member) and type(member).__name__ == "getset_descriptor"


def public_api() -> list[tuple[str, object]]:
    """(qualified name, object) of every public class, function, method and property that
    the public modules export, each once."""
    seen: set[int] = set()
    found: list[tuple[str, object]] = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [n for n in dir(module) if _public(n)]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isroutine(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            found.append((f"{module_name}.{name}", obj))
            if not inspect.isclass(obj) or issubclass(obj, BaseException):
                continue
            for member_name, member in vars(obj).items():
                if _public(member_name) and _is_documentable_member(member):
                    found.append((f"{module_name}.{name}.{member_name}", member))
    return found


def test_the_walk_sees_the_api():
    names = {name for name, _ in public_api()}
    for expected in (
        "evospikenet.zenoh_comm.ZenohCommunicator.publish",
        "evospikenet.zenoh_comm.ZenohCommunicator.subscribe",
        "evospikenet.zenoh_comm.ZenohCommunicator.request",
        "evospikenet.zenoh_comm.ZenohCommunicator.serve",
        "evospikenet.zenoh_comm.ZenohCommunicator.subscribe_queue",
        "evospikenet.zenoh_comm.ZenohConfig.mode",
        "evospikenet.zenoh_comm.MessageQueue.get",
        "evospikenet.brain.BrainNode.run",
        "evospikenet.kernels.lif_step",
        "evospikenet.errors.RemoteHandlerError",
    ):
        assert expected in names


def test_every_public_item_has_a_docstring():
    undocumented = [name for name, obj in public_api() if not (_doc_of_member(obj) or "").strip()]
    assert not undocumented, "no docstring: " + ", ".join(undocumented)


def _stub_docstrings() -> dict[str, str]:
    """``{"Class.member" or "function": docstring}`` of the documented stub items."""
    docs: dict[str, str] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef) and (doc := ast.get_docstring(node)):
            docs[node.name] = doc
        elif isinstance(node, ast.ClassDef):
            if doc := ast.get_docstring(node):
                docs[node.name] = doc
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (doc := ast.get_docstring(item)):
                    docs.setdefault(f"{node.name}.{item.name}", doc)
    return docs


def _runtime_docstring(native, dotted: str) -> str | None:
    obj = native
    for part in dotted.split("."):
        obj = inspect.getattr_static(obj, part, None)
        if obj is None:
            return None
    return _doc_of_member(obj)


# The classes and functions `evospikenet.zenoh_comm` exports, whose docstrings are written
# twice (stub and Rust doc comments). The kernels' native functions are documented for
# users in `evospikenet.kernels`.
COMPARED = (
    "ZenohConfig",
    "ZenohCommunicator",
    "Handle",
    "Subscription",
    "Service",
    "MessageQueue",
    "generate_identity_key",
    "identity_fingerprint",
)


def test_extension_docstrings_are_the_stubs():
    native = importlib.import_module("evospikenet._native")
    stub = _stub_docstrings()
    compared = {k: v for k, v in stub.items() if k.split(".")[0] in COMPARED}
    assert "ZenohCommunicator.publish" in compared
    differing = []
    for dotted, doc in sorted(compared.items()):
        if dotted.rsplit(".", 1)[-1].startswith("__"):
            continue  # dunders: the protocol's own documentation
        runtime = _runtime_docstring(native, dotted)
        if inspect.cleandoc(runtime or "") != doc:
            differing.append(f"{dotted}:\n  stub:    {doc!r}\n  runtime: {runtime!r}")
    assert not differing, "docstring differs from the stub:\n" + "\n".join(differing)


@pytest.mark.parametrize("method", ["publish", "subscribe", "request", "serve"])
def test_help_shows_the_signature_and_the_documentation(method):
    from evospikenet.zenoh_comm import ZenohCommunicator

    text = pydoc.render_doc(getattr(ZenohCommunicator, method), renderer=pydoc.plaintext)
    assert f"{method}(self, /, topic" in text  # the signature
    summary = getattr(ZenohCommunicator, method).__doc__.splitlines()[0]
    assert len(summary) > 30 and summary in text


def test_serve_documents_what_a_raising_handler_does():
    from evospikenet.zenoh_comm import ZenohCommunicator

    doc = ZenohCommunicator.serve.__doc__
    assert "RemoteHandlerError" in doc and "time out" not in doc


def test_complete_key_exchange_names_its_parameter_as_it_is():
    from evospikenet.zenoh_comm import ZenohCommunicator

    sig = inspect.signature(ZenohCommunicator.complete_key_exchange)
    assert list(sig.parameters)[1:] == ["peer_public_key", "peer_id"]
