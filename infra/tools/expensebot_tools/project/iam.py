"""What each function may do in AWS, read from what CloudFormation would deploy: template.yaml expanded by the
SAM translator (the policy templates SAM turns into statements, the AWS managed policies it attaches), every
intrinsic resolved against given resources, and the AWS managed policies' documents from
infra/iam/aws_managed_policies.json. The tests run every function's AWS calls under exactly these roles
(iam_emulator.py), and list what a role grants that nothing uses."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from expensebot_tools.project.template import PROJECT_ROOT, TEMPLATE_PATH, Resolver, UnresolvedReference

MANAGED_POLICIES_PATH = PROJECT_ROOT / "infra" / "iam" / "aws_managed_policies.json"


class IamModelError(ValueError):
    """The template grants something this module cannot resolve (an unknown managed policy, say)."""


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    source: str  # which policy it came from: the inline policy's name or the managed policy's ARN
    condition: Mapping[str, Any] | None = None
    not_actions: tuple[str, ...] = ()  # NotAction: every action but these (a permissions boundary uses it)

    def covers(self, action: str) -> bool:
        if self.not_actions:
            return not any(matches_pattern(pattern, action, ignore_case=True) for pattern in self.not_actions)
        return any(matches_pattern(pattern, action, ignore_case=True) for pattern in self.actions)

    def matches(self, action: str, resource: str) -> bool:
        return self.covers(action) and any(
            matches_pattern(pattern, resource, ignore_case=False) for pattern in self.resources
        )


def _allowed_by(statements: list[Statement], action: str, resource: str) -> bool:
    """IAM's evaluation of one policy set: an explicit Deny wins, then any Allow; conditions are not
    evaluated (none of ours restrict what the code does)."""
    relevant = [s for s in statements if s.matches(action, resource)]
    if any(s.effect == "Deny" for s in relevant):
        return False
    return any(s.effect == "Allow" for s in relevant)


@dataclass
class Role:
    """A function's execution role (or an operator's policy) as a flat list of statements, and the role's
    permissions boundary if it has one (an action is allowed only when both allow it)."""

    name: str
    statements: list[Statement] = field(default_factory=list)
    boundary: list[Statement] | None = None

    def allows(self, action: str, resource: str) -> bool:
        within = self.boundary is None or _allowed_by(self.boundary, action, resource)
        return within and _allowed_by(self.statements, action, resource)

    def _within_boundary(self, action: str) -> bool:
        return self.boundary is None or any(s.effect == "Allow" and s.covers(action) for s in self.boundary)

    def granted(self) -> list[tuple[str, str, str]]:
        """(action pattern, resource pattern, source) for every Allow the boundary lets through."""
        return [(a, r, s.source) for s in self.statements if s.effect == "Allow" for a in s.actions
                if self._within_boundary(a) for r in s.resources]

    def documents(self) -> dict[str, dict[str, Any]]:
        """Policy documents by name, as IAM would store them, with the boundary already applied (moto does
        not evaluate permissions boundaries), for the emulator's roles."""
        by_source: dict[str, list[dict[str, Any]]] = {}
        for s in self.statements:
            actions = [a for a in s.actions if s.effect == "Deny" or self._within_boundary(a)]
            if not actions:
                continue
            entry: dict[str, Any] = {"Effect": s.effect, "Action": actions, "Resource": list(s.resources)}
            if s.condition:
                entry["Condition"] = dict(s.condition)
            by_source.setdefault(s.source, []).append(entry)
        return {_policy_name(source): {"Version": "2012-10-17", "Statement": statements}
                for source, statements in by_source.items()}


def _policy_name(source: str) -> str:
    return re.sub(r"[^\w+=,.@-]", "-", source.rsplit("/", 1)[-1])[:128]


def matches_pattern(pattern: str, value: str, *, ignore_case: bool) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
    return re.match(regex, value, re.IGNORECASE if ignore_case else 0) is not None


@cache
def aws_managed_policies() -> dict[str, dict[str, Any]]:
    """ARN → document of the AWS managed policies SAM attaches (kept as data: see the file's _about)."""
    data = json.loads(MANAGED_POLICIES_PATH.read_text(encoding="utf-8"))
    return {arn: entry["document"] for arn, entry in data["policies"].items()}


def expand_template(path: Path = TEMPLATE_PATH, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """template.yaml as CloudFormation receives it after the SAM transform (sam_expand.expand)."""
    from expensebot_tools.project.sam_expand import expand

    return expand(path, dict(parameters or {}))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: Mapping[str, Any], source: str) -> list[Statement]:
    found = []
    for raw in _as_list(document.get("Statement", [])):
        if "NotResource" in raw:
            raise IamModelError(f"{source}: NotResource is not modelled")
        found.append(Statement(
            effect=raw["Effect"],
            actions=tuple(str(a) for a in _as_list(raw.get("Action", []))),
            not_actions=tuple(str(a) for a in _as_list(raw.get("NotAction", []))),
            resources=tuple(str(r) for r in _as_list(raw.get("Resource", "*"))),
            source=source,
            condition=raw.get("Condition"),
        ))
    return found


def _policy_statements(expanded: Mapping[str, Any], resolver: Resolver, entry: Any) -> list[Statement]:
    """One ManagedPolicyArns entry: an AWS managed policy's ARN, or a Ref to one of the template's own
    AWS::IAM::ManagedPolicy resources (whose document is resolved like the rest)."""
    if isinstance(entry, dict) and set(entry) == {"Ref"}:
        resource = expanded["Resources"].get(entry["Ref"], {})
        if resource.get("Type") == "AWS::IAM::ManagedPolicy":
            if "Condition" in resource and not resolver.resolve({"Fn::If": [resource["Condition"], True, False]}):
                return []
            return _statements(resolver.resolve(resource["Properties"]["PolicyDocument"]), entry["Ref"])
    arn = resolver.resolve(entry)
    if arn is Resolver.NO_VALUE:
        return []
    if isinstance(arn, dict) and set(arn) == {"Ref"}:  # an If that chose one of the template's policies
        return _policy_statements(expanded, resolver, arn)
    documents = aws_managed_policies()
    if arn not in documents:
        raise IamModelError(f"managed policy {arn} is attached but its document is not in {MANAGED_POLICIES_PATH}")
    return _statements(documents[arn], arn)


class _KeepingRefsResolver(Resolver):
    """Resolves Fn::If in ManagedPolicyArns without resolving a Ref to the template's own policy (whose
    document, not its ARN, is what matters here)."""

    own_policies: frozenset[str] = frozenset()

    def _keep_own_policy(self, name: str) -> Any:
        if name in self.own_policies:
            return {"Ref": name}
        return self._ref(name)

    _FUNCTIONS: ClassVar[dict[str, Callable[[Resolver, Any], Any]]] = {
        **Resolver._FUNCTIONS, "Ref": _keep_own_policy,  # type: ignore[dict-item]
    }


def role_of(expanded: Mapping[str, Any], role_id: str, resolver: Resolver) -> Role:
    properties = expanded["Resources"][role_id]["Properties"]
    role = Role(name=role_id)
    own = frozenset(k for k, v in expanded["Resources"].items() if v["Type"] == "AWS::IAM::ManagedPolicy")
    keeping = _KeepingRefsResolver(parameters=resolver.parameters, refs=resolver.refs,
                                   attributes=resolver.attributes, conditions=resolver.conditions,
                                   pseudo=resolver.pseudo)
    keeping.own_policies = own
    for entry in properties.get("ManagedPolicyArns", []):
        role.statements.extend(_policy_statements(expanded, keeping, entry))
    for policy in properties.get("Policies", []):
        document = resolver.resolve(policy["PolicyDocument"])
        role.statements.extend(_statements(document, policy["PolicyName"]))
    if "PermissionsBoundary" in properties:
        # Empty when the condition left the role without one (the boundary's If chose NoValue).
        role.boundary = _policy_statements(expanded, keeping, properties["PermissionsBoundary"]) or None
    return role


def function_roles(expanded: Mapping[str, Any], resolver: Resolver, function_ids: Iterable[str]) -> dict[str, Role]:
    """Each SAM function's execution role. SAM names the role <Function>Role and points the function at it."""
    roles = {}
    for function_id in function_ids:
        function = expanded["Resources"][function_id]
        role_ref = function["Properties"]["Role"]
        if not (isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref):
            raise IamModelError(f"{function_id}: its role is not one the template creates ({role_ref})")
        roles[function_id] = role_of(expanded, role_ref["Fn::GetAtt"][0], resolver)
    return roles


def managed_policy(expanded: Mapping[str, Any], policy_id: str, resolver: Resolver) -> Role:
    """One of the template's own AWS::IAM::ManagedPolicy resources (OperatorPolicy) as a role."""
    resource = expanded["Resources"][policy_id]
    return Role(name=policy_id, statements=_statements(resolver.resolve(resource["Properties"]["PolicyDocument"]),
                                                       policy_id))


__all__ = [
    "IamModelError",
    "Role",
    "Statement",
    "UnresolvedReference",
    "aws_managed_policies",
    "expand_template",
    "function_roles",
    "managed_policy",
    "matches_pattern",
    "role_of",
]
