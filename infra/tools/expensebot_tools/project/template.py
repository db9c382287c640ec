"""Reads template.yaml, the single source of truth for wiring: the local runtime, the tests and the
ops tools take handlers, environment, schedules, queues, redrive and batch sizes from it."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[4]
MIGRATIONS_DIR = PROJECT_ROOT / "infra" / "migrations"
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...) read as their long forms."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    # !Ref and !Condition have no "Fn::" in their long forms.
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)


class UnresolvedReference(ValueError):
    pass


@dataclass
class Resolver:
    """Evaluates the intrinsic functions the template uses, against local stand-ins for resources."""

    parameters: Mapping[str, Any]
    refs: Mapping[str, Any] = field(default_factory=dict)  # logical id → what !Ref gives
    attributes: Mapping[tuple[str, str], Any] = field(default_factory=dict)  # (id, attr) → !GetAtt
    conditions: Mapping[str, Any] = field(default_factory=dict)
    pseudo: Mapping[str, str] = field(
        default_factory=lambda: {
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
            "AWS::StackName": "expensebot-local",
        }
    )

    NO_VALUE = object()

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not self.NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not self.NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return self.NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise UnresolvedReference(f"!Ref {name}: no such parameter or local resource")

    def _get_att(self, arg: list[str]) -> Any:
        key = (arg[0], arg[1])
        if key not in self.attributes:
            raise UnresolvedReference(f"!GetAtt {arg[0]}.{arg[1]}: not available locally")
        return self.attributes[key]

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name:
                return str(self._get_att(name.split(".", 1)))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def _condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def _if(self, arg: list[Any]) -> Any:
        return self.resolve(arg[1] if self._condition(arg[0]) else arg[2])

    def _equals(self, arg: list[Any]) -> bool:
        left, right = self.resolve(arg[0]), self.resolve(arg[1])
        return str(left) == str(right)

    def _not(self, arg: list[Any]) -> bool:
        return not self.resolve(arg[0])

    def _or(self, arg: list[Any]) -> bool:
        return any(self.resolve(item) for item in arg)

    def _and(self, arg: list[Any]) -> bool:
        return all(self.resolve(item) for item in arg)

    def _join(self, arg: list[Any]) -> str:
        items = self.resolve(arg[1])
        if isinstance(items, str):
            items = [items]
        return str(arg[0]).join(str(i) for i in items)

    _FUNCTIONS: ClassVar[dict[str, Callable[[Resolver, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::If": _if,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::Or": _or,
        "Fn::And": _and,
        "Condition": _condition,
        "Fn::Join": _join,
    }


@dataclass(frozen=True)
class ScheduleSpec:
    function_id: str
    name: str
    expression: str
    timezone: Any  # a value to resolve (usually !Ref TimeZone)
    input: str
    state: Any


@dataclass(frozen=True)
class QueueSubscription:
    function_id: str
    queue_id: str
    batch_size: int
    maximum_concurrency: int | None
    report_batch_item_failures: bool


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    properties: Mapping[str, Any]

    @property
    def module_path(self) -> Path:
        module, _ = self.handler.rsplit(".", 1)
        return self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def function_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


class Template:
    def __init__(self, path: Path = TEMPLATE_PATH) -> None:
        self.path = path
        self.root = path.parent
        self.raw = load_template(path)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.raw["Resources"]

    @property
    def globals(self) -> dict[str, Any]:
        return self.raw.get("Globals", {}).get("Function", {})

    def parameter_defaults(self) -> dict[str, Any]:
        return {name: spec.get("Default", "") for name, spec in self.raw.get("Parameters", {}).items()}

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    @cached_property
    def functions(self) -> dict[str, FunctionSpec]:
        found = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            found[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_uri=self.root / props["CodeUri"],
                handler=props["Handler"],
                timeout=int(props.get("Timeout", self.globals.get("Timeout", 3))),
                properties=props,
            )
        return found

    @property
    def queues(self) -> dict[str, dict[str, Any]]:
        return self.of_type("AWS::SQS::Queue")

    def schedules(self) -> list[ScheduleSpec]:
        found = []
        for function_id, spec in self.functions.items():
            for event in spec.properties.get("Events", {}).values():
                if event["Type"] == "ScheduleV2":
                    props = event["Properties"]
                    found.append(
                        ScheduleSpec(
                            function_id=function_id,
                            name=str(props.get("Name", function_id)),
                            expression=props["ScheduleExpression"],
                            timezone=props.get("ScheduleExpressionTimezone", "UTC"),
                            input=props.get("Input", "{}"),
                            state=props.get("State", "ENABLED"),
                        )
                    )
        return found

    def subscriptions(self) -> list[QueueSubscription]:
        found = []
        for function_id, spec in self.functions.items():
            for event in spec.properties.get("Events", {}).values():
                if event["Type"] == "SQS":
                    props = event["Properties"]
                    found.append(
                        QueueSubscription(
                            function_id=function_id,
                            queue_id=props["Queue"]["Fn::GetAtt"][0],
                            batch_size=int(props.get("BatchSize", 10)),
                            maximum_concurrency=(props.get("ScalingConfig") or {}).get("MaximumConcurrency"),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in props.get("FunctionResponseTypes", []),
                        )
                    )
        return found

    def environment(self, function_id: str | None, resolver: Resolver) -> dict[str, str]:
        """A function's environment as Lambda would see it: Globals merged with its own variables.
        With no function, only what Globals give every function."""
        merged = dict(self.globals.get("Environment", {}).get("Variables", {}))
        if function_id is not None:
            merged.update(self.own_environment(function_id))
        resolved = resolver.resolve(merged)
        return {k: str(v) for k, v in resolved.items()}

    def own_environment(self, function_id: str) -> dict[str, Any]:
        """The variables a function sets beyond Globals (unresolved)."""
        return dict(self.functions[function_id].properties.get("Environment", {}).get("Variables", {}))

    def load_handler(self, function_id: str) -> Callable[..., Any]:
        spec = self.functions[function_id]
        return getattr(load_module(spec.module_path), spec.function_name)


def load_module(path: Path) -> ModuleType:
    """Imports a handler file the way Lambda does (by path), under a name unique to the file, since every
    function's module is called `app`."""
    name = "lambda_" + "_".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
