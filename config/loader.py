"""Read the stack config once and turn it into a validated `StackConfig`.

`parse_stack_config` is pure (values in, model or ConfigError out) so it is tested without a
Pulumi runtime. `load_stack_config` feeds it from the Pulumi runtime, which is how both
`pulumi up` and the offline plan reach it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import BaseModel, ValidationError

from config.errors import ConfigError
from config.models import StackConfig
from config.presets import defaults_for, merge
from config.secrets import secret_problem

NAMESPACE = "sofacover"
# Keys read straight from the stack file (the rest of StackConfig is derived).
SCALAR_KEYS = ("environment", "role", "phase", "promote")
BOOLEAN_KEYS = ("promote",)
OBJECT_KEYS = ("primary", "tags", "regions", "network", "compute", "kubernetes", "database",
               "cache", "pgbouncer", "edge", "alerts")
# Secrets each role needs; they are checked for presence and secrecy, never read here.
_DATA_SECRETS = ("sofacover:redisAuthToken", "sofacover:dbAppPassword",
                 "sofacover:pgbouncerAdminPassword", "sofacover:pgbouncerStatsPassword")
REQUIRED_SECRETS: dict[str, tuple[str, ...]] = {
    "all-in-one": _DATA_SECRETS,
    "primary": _DATA_SECRETS,
    "secondary": (),
    "edge": ("cloudflare:apiToken",),
}
SECRET_KEYS = tuple(k.split(":", 1)[1] for k in _DATA_SECRETS)
VALID_KEYS = SCALAR_KEYS + OBJECT_KEYS + SECRET_KEYS


def stack_file(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def parse_stack_config(
    stack: str,
    values: Mapping[str, Any],
    secret_keys: frozenset[str] | set[str] = frozenset(),
) -> StackConfig:
    """Validate one stack's config.

    `values` maps full keys (`sofacover:phase`, `aws:region`) to what the Pulumi runtime
    hands a program: strings for scalars, JSON text (or already-parsed data) for objects.
    Raises ConfigError with one message per problem.
    """
    where = stack_file(stack)
    problems: list[str] = []
    own: dict[str, Any] = {}
    for key, value in values.items():
        namespace, _, name = key.partition(":")
        if namespace != NAMESPACE:
            continue
        if name not in VALID_KEYS:
            problems.append(f"{where}: {key} is not a known key; valid keys: "
                            + ", ".join(f"{NAMESPACE}:{k}" for k in VALID_KEYS))
        elif name in OBJECT_KEYS:
            parsed = _as_object(value)
            if parsed is None:
                problems.append(f"{where}: {key} must be a map of keys (YAML mapping); "
                                f"got {value!r}")
            else:
                own[name] = parsed
        elif name in BOOLEAN_KEYS:
            # The engine hands a boolean over as the text "true" or "false".
            if str(value).lower() not in ("true", "false"):
                problems.append(f"{where}: {key} is {value!r}; valid: true, false")
            else:
                own[name] = str(value).lower() == "true"
        elif name in SCALAR_KEYS:
            own[name] = value

    # A secret stored in plain text is reported whatever else is wrong (it needs no model).
    plain = [f"{where}: {key} is stored in plain text; it must be a secret: "
             f"`pulumi config set --secret {key} <value>`"
             for key in dict.fromkeys([*(f"{NAMESPACE}:{n}" for n in SECRET_KEYS),
                                       *(k for keys in REQUIRED_SECRETS.values() for k in keys)])
             if values.get(key) not in (None, "") and key not in secret_keys]
    phase = _phase(own.get("phase"), where, problems)
    environment, role = own.get("environment"), own.get("role")
    region = values.get("aws:region")
    if phase is None:  # the presets depend on it: nothing more can be checked
        raise ConfigError(problems + plain)

    layered = defaults_for(phase, str(environment), str(role), region, "edge" in own)
    raw = merge(layered, {k: v for k, v in own.items() if k != "phase"})
    raw.update(stack=stack, phase=phase, region=region)
    try:
        cfg = StackConfig.model_validate(raw)
    except ValidationError as exc:
        problems.extend(f"{where}: {msg}" for msg in _messages(exc))
        raise ConfigError(problems + plain) from None

    # A stack with its own edge, or one that writes its ACM validation records into the
    # Cloudflare zone (compute.dnsValidation cloudflare), talks to Cloudflare itself.
    cloudflare = (cfg.edge is not None and cfg.role != "edge") or (
        cfg.hosts_app and cfg.compute is not None
        and cfg.compute.dns_validation == "cloudflare")
    required = REQUIRED_SECRETS[cfg.role] + (("cloudflare:apiToken",) if cloudflare else ())
    # Each secret once: missing where the role needs it, plain text wherever it is set.
    for key in dict.fromkeys([*required, *(f"{NAMESPACE}:{n}" for n in SECRET_KEYS)]):
        if values.get(key) in (None, ""):
            if key in required:
                problems.append(f"{where}: {key} is required for the {cfg.role} role and "
                                f"missing; set it with `pulumi config set --secret {key} "
                                "<value>`")
        elif key in secret_keys and (problem := secret_problem(key, values.get(key))):
            problems.append(f"{where}: {problem}")
    problems += [p for p in plain if p not in problems]
    if problems:
        raise ConfigError(problems)
    return cfg


def load_stack_config(phase_override: int | None = None) -> StackConfig:
    """The current stack's config, from the Pulumi runtime (real engine or offline plan)."""
    values = _runtime_config()
    if phase_override is not None:
        values[f"{NAMESPACE}:phase"] = str(phase_override)
    secret = {k for k in values if pulumi.runtime.is_config_secret(k)}
    return parse_stack_config(pulumi.get_stack(), values, secret)


def _runtime_config() -> dict[str, Any]:
    # The engine passes config either through set_all_config or the PULUMI_CONFIG
    # environment variable, depending on the language host version; read both.
    from pulumi.runtime import config as runtime_config

    values = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    return values


def _as_object(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, (dict, list)) else None
    return None


def _phase(value: Any, where: str, problems: list[str]) -> int | None:
    if value is None:
        problems.append(f"{where}: {NAMESPACE}:phase is required; valid phases: 1, 2, 3")
        return None
    try:
        phase = int(str(value))
    except ValueError:
        phase = None
    if phase not in (1, 2, 3):
        problems.append(f"{where}: {NAMESPACE}:phase is {value!r}; valid phases: 1, 2, 3")
        return None
    return phase


def _key(loc: tuple[Any, ...], field: str | None = None) -> str:
    path = ""
    for part in (*loc, *([field] if field else [])):
        if isinstance(part, int):  # a list element: say which one
            path += f"[{part}]"
        elif part == "region" and not path:  # StackConfig.region is the AWS provider's key
            path = "aws:region"
        else:
            path += f".{part}" if path else str(part)
    if ":" in path:  # already a full key (another namespace)
        return path
    return f"{NAMESPACE}:{path}"


def _valid_keys_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = StackConfig
    for part in [p for p in loc[:-1] if not isinstance(p, int)]:
        field = next((f for n, f in model.model_fields.items()
                      if (f.alias or n) == part), None)
        if field is None:
            return []
        inner = [a for a in getattr(field.annotation, "__args__", (field.annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        model = inner[0]
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _messages(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc, kind, msg = tuple(err["loc"]), err["type"], err["msg"]
        if kind == "rule":
            out.append(f"{_key(loc, err['ctx']['field'])} {msg}")
        elif kind == "extra_forbidden":
            valid = _valid_keys_at(loc)
            out.append(f"{_key(loc)} is not a known key; valid keys here: {', '.join(valid)}")
        elif kind == "missing":
            out.append(f"{_key(loc)} is required")
        else:
            text = msg[0].lower() + msg[1:]
            out.append(f"{_key(loc)} is {err.get('input')!r}: {text}")
    return out
