"""Lightning's two class trees, and our public classes that exist once in each.

Lightning 2.x ships one Trainer twice: as ``lightning.pytorch`` and as ``pytorch_lightning``.
Each Trainer accepts only strategies and callbacks of its own tree. So every public class
here that subclasses a Lightning class (a strategy, a callback) is written once, as an
implementation mixin, and declared twice: ``lightning_tune.RayDDPStrategy`` subclasses
``lightning.pytorch``'s base (what IDEs, type checkers and ``LightningCLI`` see) and
``lightning_tune.pytorch_lightning.RayDDPStrategy`` subclasses ``pytorch_lightning``'s.

``TreeTwin`` ties the twins together: constructing the ``lightning.pytorch`` class from code
that trains with ``pytorch_lightning`` gives the twin instead (so ``RayDDPStrategy(...)``
works in either Trainer), ``isinstance`` accepts either twin, and ``for_tree`` names one.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from abc import ABCMeta
from typing import Any, ClassVar, Dict, Optional, Tuple

from lightning_tune.errors import InvalidArgumentError

LIGHTNING = "lightning.pytorch"
PYTORCH_LIGHTNING = "pytorch_lightning"
TREES = (LIGHTNING, PYTORCH_LIGHTNING)
_FABRIC = {LIGHTNING: "lightning.fabric", PYTORCH_LIGHTNING: "lightning_fabric"}
# declares the pytorch_lightning twins, importing every lightning.pytorch one on the way
_TWINS_MODULE = "lightning_tune.pytorch_lightning"
# the trees a user had imported before this toolkit imported any (``import lightning_tune``
# imports this module first, before any of ours imports a tree)
LOADED_BEFORE_US = tuple(tree for tree in TREES if tree in sys.modules)


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
    explicit = getattr(cls, "lightning_tree", None)
    if explicit in TREES:
        return explicit
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

    The calling module's names decide when they refer to one tree only; else the one tree
    the user had imported before this toolkit was; else the one tree imported at all;
    else ``lightning.pytorch``. ``SomeClass.for_tree(...)`` is the explicit choice.
    """
    if frame is not None:
        referred = {tree_of(value) for value in frame.f_globals.values()
                    if isinstance(value, (type, types.ModuleType))
                    and not _is_ours(value)} & set(TREES)
        if len(referred) == 1:
            return referred.pop()
    if len(LOADED_BEFORE_US) == 1:
        return LOADED_BEFORE_US[0]
    loaded = [tree for tree in TREES if tree in sys.modules]
    return loaded[0] if len(loaded) == 1 else LIGHTNING


def _is_ours(value: Any) -> bool:
    """Our own classes and modules name a tree too, but say nothing of the user's."""
    name = value.__name__ if isinstance(value, types.ModuleType) else value.__module__
    return name == "lightning_tune" or name.startswith("lightning_tune.")


_twins: Dict[Tuple[str, str], type] = {}  # (family, tree) -> the class declared for that tree


class TreeTwin(ABCMeta):
    """Metaclass of a public class declared once per tree (see the module docstring).

    A class that sets ``family`` and ``lightning_tree`` in its own body is registered as that
    family's class for that tree; its subclasses (a user's) are ordinary classes. Only a call
    of the ``lightning.pytorch`` class itself looks at the caller's tree: unpickling and
    copying make the class they are given.
    """

    def __init__(cls, name: str, bases: tuple, namespace: dict, **kwargs: Any) -> None:
        super().__init__(name, bases, namespace, **kwargs)
        if "family" in namespace and "lightning_tree" in namespace:
            _twins[(namespace["family"], namespace["lightning_tree"])] = cls
        # what inspect (and jsonargparse, for LightningCLI) reads instead of __call__ below
        init = inspect.signature(cls.__init__)
        cls.__signature__ = init.replace(parameters=list(init.parameters.values())[1:])

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if _twins.get((cls.__dict__.get("family"), LIGHTNING)) is cls:
            tree = guess_user_tree(sys._getframe(1))
            if tree != LIGHTNING:
                cls = cls.for_tree(tree)
        return super(TreeTwin, cls).__call__(*args, **kwargs)

    def __instancecheck__(cls, instance: Any) -> bool:
        if super().__instancecheck__(instance):
            return True
        twin = _registered_twin(cls)
        return twin is not None and super(TreeTwin, twin).__instancecheck__(instance)


def _registered_twin(cls: type) -> Optional[type]:
    """For a registered class, its twin of the other tree if that is declared yet."""
    family, tree = cls.__dict__.get("family"), cls.__dict__.get("lightning_tree")
    if family is None or _twins.get((family, tree)) is not cls:
        return None
    other = PYTORCH_LIGHTNING if tree == LIGHTNING else LIGHTNING
    return _twins.get((family, other))


class PerTree:
    """Base of the implementation mixins of twin classes.

    ``family`` names the public class; ``lightning_tree`` is set by each declared twin.
    """

    family: ClassVar[str]
    lightning_tree: ClassVar[str]

    @classmethod
    def for_tree(cls, tree: str) -> type:
        """This class's twin for ``tree`` ("lightning.pytorch" or "pytorch_lightning")."""
        if tree not in TREES:
            raise InvalidArgumentError(f"Unknown Lightning tree {tree!r}; expected one of {TREES}.")
        key = (cls.family, tree)
        if key not in _twins:
            importlib.import_module(_TWINS_MODULE)
        return _twins[key]

    @classmethod
    def make_for_tree(cls, tree: str, *args: Any, **kwargs: Any) -> Any:
        """An instance of this class's twin for ``tree``, that tree and no guess.

        (``for_tree(tree)(...)`` on the ``lightning.pytorch`` class still looks at the
        caller's tree; code that knows the tree, such as the trial runner, makes it here.)
        """
        twin = cls.for_tree(tree)
        return super(TreeTwin, twin).__call__(*args, **kwargs)
