"""Which of Lightning's two class trees a user is on, and classes made for that tree.

Lightning 2.x ships one Trainer twice: as ``lightning.pytorch`` and as ``pytorch_lightning``.
Each Trainer accepts only strategies of its own tree, so a public class here (a strategy, a
callback) is written once as a mixin and made concrete for a tree the first time it is used.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
from typing import Any, ClassVar, Optional

LIGHTNING = "lightning.pytorch"
PYTORCH_LIGHTNING = "pytorch_lightning"
TREES = (LIGHTNING, PYTORCH_LIGHTNING)
_FABRIC = {LIGHTNING: "lightning.fabric", PYTORCH_LIGHTNING: "lightning_fabric"}


def _tree_of_module_name(name: str) -> Optional[str]:
    if name == "lightning" or name.startswith("lightning."):
        return LIGHTNING
    if name == PYTORCH_LIGHTNING or name.startswith(PYTORCH_LIGHTNING + "."):
        return PYTORCH_LIGHTNING
    return None


def tree_of(obj: Any) -> Optional[str]:
    """The tree a class, an instance of it or a module belongs to (None when neither)."""
    if isinstance(obj, types.ModuleType):
        return _tree_of_module_name(obj.__name__)
    cls = obj if isinstance(obj, type) else type(obj)
    for klass in cls.__mro__:
        tree = _tree_of_module_name(klass.__module__)
        if tree is not None:
            return tree
    return None


def tree_module(tree: str, submodule: str = "") -> types.ModuleType:
    """``lightning.pytorch.<submodule>`` or ``pytorch_lightning.<submodule>``."""
    return importlib.import_module(f"{tree}.{submodule}" if submodule else tree)


def fabric_module(tree: str, submodule: str = "") -> types.ModuleType:
    """The Fabric package that belongs to ``tree`` (``lightning.fabric`` or ``lightning_fabric``)."""
    base = _FABRIC[tree]
    return importlib.import_module(f"{base}.{submodule}" if submodule else base)


def guess_user_tree(frame: Optional[types.FrameType]) -> str:
    """The tree a user who constructs one of our classes most likely trains with.

    Only one tree imported: that one. Both imported: the one the calling module refers to.
    Otherwise ``lightning.pytorch``; ``SomeClass.for_tree(...)`` is the explicit choice.
    """
    loaded = [tree for tree in TREES if tree in sys.modules]
    if len(loaded) == 1:
        return loaded[0]
    if frame is not None:
        referred = {tree_of(value) for value in frame.f_globals.values()
                    if isinstance(value, (type, types.ModuleType))}
        referred &= set(TREES)
        if len(referred) == 1:
            return referred.pop()
    return LIGHTNING


class PerTree:
    """Mixin for a public class that must subclass a Lightning class of the user's tree.

    ``_tree_base`` names the Lightning base inside a tree, e.g. ``"strategies.DDPStrategy"``.
    Instantiating the public class gives an instance of its concrete subclass for the tree
    that :func:`guess_user_tree` picks; ``for_tree`` picks explicitly.
    """

    _tree_base: ClassVar[str]
    lightning_tree: ClassVar[Optional[str]] = None

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls.lightning_tree is None:
            cls = cls.for_tree(guess_user_tree(sys._getframe(1)))
        return super().__new__(cls)

    @classmethod
    def for_tree(cls, tree: str) -> type:
        """This class made concrete for ``tree`` ("lightning.pytorch" or "pytorch_lightning")."""
        if tree not in TREES:
            raise ValueError(f"Unknown Lightning tree {tree!r}; expected one of {TREES}.")
        public = cls.__dict__.get("_public_class", cls)
        return _concrete_class(public, tree)

    def __reduce_ex__(self, protocol: int):
        # Concrete classes are made at run time, so they pickle as (public class, tree).
        public = type(self)._public_class
        return (_new_instance, (public, self.lightning_tree), self.__getstate__())


@functools.cache
def _concrete_class(public: type, tree: str) -> type:
    module_path, _, class_name = public._tree_base.rpartition(".")
    base = getattr(tree_module(tree, module_path), class_name)
    namespace = {
        "lightning_tree": tree,
        "_public_class": public,
        "__module__": public.__module__,
        "__qualname__": public.__qualname__,
        "__doc__": public.__doc__,
    }
    return type(public.__name__, (public, base), namespace)


def _new_instance(public: type, tree: str) -> Any:
    return object.__new__(_concrete_class(public, tree))
