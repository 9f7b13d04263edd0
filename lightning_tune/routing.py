"""Which constructor each key of a trial's config goes to.

A key goes to the model's ``__init__`` if it names one of its parameters, to the datamodule's
likewise (to both when both take it); a class whose ``__init__`` takes a single ``config``
gets the whole dict. Unknown keys, and required parameters no key gives, are an error
before any trial starts.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List

from lightning_tune.errors import InvalidArgumentError


@dataclass(frozen=True)
class _Constructor:
    cls: type
    parameters: FrozenSet[str]
    required: FrozenSet[str]
    takes_whole_config: bool
    takes_any_keyword: bool

    @classmethod
    def of(cls, target: type) -> "_Constructor":
        signature = inspect.signature(target.__init__)
        params = [p for name, p in signature.parameters.items() if name != "self"]
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return cls(
            cls=target,
            parameters=frozenset(p.name for p in named),
            required=frozenset(p.name for p in named if p.default is p.empty),
            takes_whole_config=len(named) == 1 and named[0].name == "config",
            takes_any_keyword=any(p.kind == p.VAR_KEYWORD for p in params),
        )

    def accepts(self, key: str) -> bool:
        return self.takes_whole_config or self.takes_any_keyword or key in self.parameters

    def build(self, config: Dict[str, Any]) -> Any:
        if self.takes_whole_config:
            return self.cls(dict(config))
        return self.cls(**{key: value for key, value in config.items() if self.accepts(key)})


class ConfigRouting:
    """Routes a trial's config to ``model_cls`` and, when it is a class, the datamodule."""

    def __init__(self, model_cls: type, datamodule: Any = None) -> None:
        self.model = _Constructor.of(model_cls)
        self.datamodule_instance = None if isinstance(datamodule, type) else datamodule
        self.datamodule = _Constructor.of(datamodule) if isinstance(datamodule, type) else None

    def _targets(self) -> List[_Constructor]:
        return [self.model] + ([self.datamodule] if self.datamodule else [])

    def check_keys(self, keys: Iterable[str]) -> None:
        """Raise on keys no constructor takes, and on required parameters no key gives."""
        keys = list(keys)
        targets = self._targets()
        unknown = [key for key in keys if not any(t.accepts(key) for t in targets)]
        if unknown:
            accepted = sorted(set().union(*(t.parameters for t in targets)))
            owners = " or ".join(t.cls.__name__ for t in targets)
            raise InvalidArgumentError(
                f"Search space key(s) {unknown} are not parameters of {owners}. Accepted keys: "
                f"{accepted}. Rename the key, or add it to the __init__ that should receive it.")
        for target in targets:
            if target.takes_whole_config:
                continue
            missing = sorted(target.required - set(keys))
            if missing:
                raise InvalidArgumentError(
                    f"{target.cls.__name__}.__init__ requires {missing}, which the search space "
                    f"does not give. Add them to the space (a constant is fine, e.g. "
                    f"{{{missing[0]!r}: ...}}) or give them defaults.")

    def build_model(self, config: Dict[str, Any]) -> Any:
        self.check_keys(config)
        return self.model.build(config)

    def build(self, config: Dict[str, Any]) -> tuple:
        """(model, datamodule or None) for one trial's config."""
        model = self.build_model(config)
        if self.datamodule is not None:
            return model, self.datamodule.build(config)
        return model, self.datamodule_instance
