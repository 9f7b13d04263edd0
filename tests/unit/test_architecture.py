"""The structure README and DESIGN promise, checked on the source: one-way dependencies, no
module reading another's private names, modules of a readable size."""

import ast
import importlib.util
import os

import pytest

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "lightning_tune")
MAX_LINES = 300


def modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield relative.removesuffix(".__init__"), path


def package_of(module):
    return module.rpartition(".")[0]


def imports_of(path):
    """(imported module, imported name or None, line) for every import in the file."""
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                yield node.module, alias.name, node.lineno


@pytest.mark.parametrize("module, path", sorted(modules()))
def test_no_private_names_read_across_modules(module, path):
    own_package = package_of(module)
    for imported, name, line in imports_of(path):
        if not imported.startswith("lightning_tune"):
            continue
        private_module = any(part.startswith("_") for part in imported.split("."))
        assert not (private_module and package_of(imported) != own_package), (
            f"{path}:{line} imports the private module {imported} from outside its package")
        assert not (name and name.startswith("_")), (
            f"{path}:{line} imports the private name {name} from {imported}")
    tree = ast.parse(open(path).read())
    modules_here = set()  # local names bound to one of our modules, however imported
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules_here |= {alias.asname for alias in node.names
                             if alias.name.startswith("lightning_tune.") and alias.asname}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lightning_tune"):
            modules_here |= {alias.asname or alias.name for alias in node.names
                             if is_package(node.module)
                             and importlib.util.find_spec(f"{node.module}.{alias.name}")}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules_here and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            pytest.fail(f"{path}:{node.lineno} reads {node.value.id}.{node.attr}")


def is_package(module):
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.submodule_search_locations is not None


def test_spaces_and_curated_spaces_depend_one_way():
    for module, path in modules():
        assert all(not imported.startswith("search_spaces") for imported, _, _ in imports_of(path)), (
            f"{module} imports search_spaces: it must read the curated files as data")


@pytest.mark.parametrize("module, path", sorted(modules()))
def test_modules_stay_readable(module, path):
    lines = open(path).read().splitlines()
    if len(lines) > MAX_LINES:
        assert "longer than" in "\n".join(lines[:15]), (
            f"{path} has {len(lines)} lines and no reason for it at its top")


def test_every_raised_error_of_ours_has_the_common_root():
    from lightning_tune import errors

    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == errors.__name__:
            assert issubclass(value, errors.LightningTuneError), name


@pytest.mark.parametrize("module, path", sorted(modules()))
def test_no_bare_builtin_errors_raised(module, path):
    """Input errors are ours (so the CLI reports them as one line), still built-in subclasses.

    The example model is user code and raises what a user would."""
    if module.startswith("lightning_tune.examples"):
        return
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and isinstance(node.exc.func, ast.Name):
            assert node.exc.func.id not in ("ValueError", "TypeError", "KeyError",
                                            "FileNotFoundError", "FileExistsError"), (
                f"{path}:{node.lineno} raises a bare {node.exc.func.id}")
