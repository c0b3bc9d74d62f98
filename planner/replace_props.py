"""Which input properties force a replacement, per resource type, and which types hold data.

The table is `planner/data/replace_properties.yaml`, written by `scripts/replace-properties`
from three inputs:

- `planner/data/replace_upstream.yaml`: per Terraform resource the bridged providers are
  built from, the attributes whose change forces a new resource, read from the providers'
  Go source (planner/replace_upstream.py; refreshed from fetched mirrors with
  `scripts/replace-properties --refresh-upstream ...`). This is the primary source for
  every AWS and Cloudflare type: the Pulumi bridge replaces a resource exactly when the
  Terraform plan does.
- `planner/data/replace_manual.yaml`: the Pulumi type -> Terraform type map, the hand-kept
  entries with their source (Kubernetes: the provider's own replacement table), and the types
  that hold data.
- the installed SDKs: the Terraform -> Pulumi property names (the Args classes' wire names and
  input types) and, as a cross-check only, their docstrings ("Changing this forces a new
  resource"); where a docstring names a property the upstream schema does not, the table
  lists it under `docstring_disagrees`.

tests/test_diff.py checks the table is what the generator derives and covers every type the
program creates.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data"
TABLE = DATA / "replace_properties.yaml"
MANUAL = DATA / "replace_manual.yaml"
UPSTREAM = DATA / "replace_upstream.yaml"

# libyaml's parser and emitter (PyYAML's wheels have them): the same documents and the same
# text (the data files round-trip byte for byte), for about a tenth of the pure-Python CPU.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)

# The docstring phrases that mark a replace-forcing property (matched case-insensitively).
FORCES = re.compile(
    r"forces? (?:a )?new resource|force a new|forcenew|force resource recreation|"
    r"will recreate the resource|this can't be changed|(?-i:\bCannot be updated\.)",
    re.IGNORECASE)
_PARAM = re.compile(r":param [^\n]*? (\w+): (.*?)(?=\n\s*:param |\Z)", re.DOTALL)

SDKS = {"aws": "pulumi_aws", "kubernetes": "pulumi_kubernetes", "cloudflare": "pulumi_cloudflare"}

# Every regional AWS resource of terraform-provider-aws v6 carries a top-level `region`
# attribute injected by the provider, and a change of it forces a new resource (unless it
# only spells out the provider's own region): internal/provider/sdkv2 forceNewIfRegionChanges
# and internal/provider/framework resourceForceNewIfRegionChangesInterceptor.
REGION_RULE = ("region: forced by the provider's injected attribute (hashicorp/terraform-"
               "provider-aws internal/provider/sdkv2/provider.go forceNewIfRegionChanges, "
               "internal/provider/framework resourceForceNewIfRegionChangesInterceptor)")


def sdk_class(token: str) -> tuple[type | None, type | None]:
    """The SDK's resource class and its Args class for a type token, or (None, None)."""
    pkg, module, name = token.split(":")
    if pkg == "pulumi" and module == "providers":
        pkg, module, name = name, "index", "Provider"
    if pkg not in SDKS:
        return None, None
    path = SDKS[pkg]
    if module != "index":
        group, _, version = module.partition("/")
        if pkg == "kubernetes":
            group = {"core": "core", "helm.sh": "helm"}.get(group, group.split(".")[0])
            path += f".{group}.{version}"
        elif group != "index":  # cloudflare:index/dnsRecord:DnsRecord lives at the top
            path += f".{group}"
    try:
        mod = importlib.import_module(path)
    except ImportError:
        return None, None
    cls = getattr(mod, name, None)
    if cls is None:
        return None, None
    # Where a nested input type has the name already (pulumi_aws.s3.BucketServerSide-
    # EncryptionConfigurationArgs is Bucket's input), the resource's is `<Name>InitArgs`.
    own = sys.modules.get(cls.__module__)
    return cls, getattr(own, f"{name}InitArgs", None) or getattr(mod, f"{name}Args", None)


def _wire_name(args_cls: type, python_name: str) -> str:
    prop = getattr(args_cls, python_name, None)
    fget = getattr(prop, "fget", None)
    return getattr(fget, "_pulumi_name", None) or python_name


def wire_properties(args_cls: type | None) -> dict[str, property]:
    """An Args (or input) class's properties by wire name."""
    out = {}
    for name in dir(args_cls) if args_cls else []:
        prop = getattr(args_cls, name, None)
        if isinstance(prop, property):
            out[getattr(prop.fget, "_pulumi_name", None) or name] = prop
    return out


def _input_class(args_cls: type, prop: property) -> type | None:
    """The input class a property takes (its element's, for a list or map), if any."""
    ann = str(getattr(prop.fget, "__annotations__", {}).get("return", ""))
    m = re.search(r"'?(\w+Args)'?", ann)
    if not m:
        return None
    return getattr(sys.modules[args_cls.__module__], m.group(1), None)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _candidates(snake: str) -> list[str]:
    """The Pulumi name of a Terraform attribute: camelCase, or pluralised (the bridge names a
    list or set block in the plural: `rule` -> `rules`, `tag_specifications` stays)."""
    c = _camel(snake)
    out = [c, c + "s", c + "es"]
    if c.endswith("y"):
        out.append(c[:-1] + "ies")
    return out


def pulumi_path(tf_path: str, args_cls: type | None,
                renames: dict[str, str] | None = None) -> str | None:
    """A Terraform attribute path (snake_case, `[*]` for a list element) as the Pulumi input
    path the plan's JSON uses (camelCase), checked against the SDK's input classes; None
    when a segment is no input (a computed-only attribute)."""
    out, cls = [], args_cls
    head, _, rest = tf_path.partition(".")
    bare = head.removesuffix("[*]")
    if renames and bare in renames:  # the bridge's own name for a top-level attribute
        tf_path = renames[bare] + head[len(bare):] + (f".{rest}" if rest else "")
    for seg in tf_path.split("."):
        many = seg.endswith("[*]")
        name = seg.removesuffix("[*]")
        props = wire_properties(cls)
        hit = next((c for c in _candidates(name) if c in props), None)
        if hit is None:
            if cls is not args_cls or not props:  # nested, no input class to check against
                hit = _camel(name)
                out.append(hit + ("[*]" if many else ""))
                cls = None
                continue
            return None
        out.append(hit + ("[*]" if many else ""))
        cls = _input_class(cls, props[hit])
    return ".".join(out)


def derive(token: str) -> dict[str, str] | None:
    """property (wire name) -> the docstring sentence saying it forces a new resource;
    None when the SDK has no class (or no Args docstring) for the type."""
    _, args_cls = sdk_class(token)
    doc = getattr(getattr(args_cls, "__init__", None), "__doc__", None)
    if not doc:
        return None
    found = {}
    for python_name, text in _PARAM.findall(doc):
        text = " ".join(text.split())
        match = FORCES.search(text)
        if match:
            sentences = re.split(r"(?<=\.) ", text)
            hit = next((s for s in sentences if FORCES.search(s)), text)
            found[_wire_name(args_cls, python_name)] = hit[:200]
    return dict(sorted(found.items()))


def sdk_versions() -> dict[str, str]:
    return {dist: importlib.metadata.version(dist) for dist in SDKS.values()}


# -- reading the upstream source (needs the fetched mirrors) -------------------------------

def read_upstream(tf_types: dict[str, str], aws: Any | None, cloudflare: Any | None,
                  old: dict[str, Any] | None = None) -> dict[str, Any]:
    """replace_upstream.yaml's content for `tf_types` (Pulumi token -> Terraform type), read
    from the mirrors (planner.replace_upstream.Tree); a provider whose mirror is not given
    keeps what `old` has."""
    from planner import replace_upstream as up

    doc = copy.deepcopy(old) if old else {}
    for key, tree, prefix in (("aws", aws, "aws_"), ("cloudflare", cloudflare, "cloudflare_")):
        if tree is None:
            continue
        if key == "aws":
            version, registry = up.aws_registry(tree)
            repo = "hashicorp/terraform-provider-aws"
            via = (f"lonegunmanb/terraform-provider-aws-index (per-function copies of the "
                   f"upstream source, index/internal/...) @ {tree.ref or 'HEAD'} = "
                   f"{tree.commit or 'a directory, no commit'}")
        else:
            version = tree.ref or "HEAD"
            repo = "cloudflare/terraform-provider-cloudflare"
            via = f"{repo} @ {version} = {tree.commit or 'a directory, no commit'}"
        types = {}
        for tf in sorted({t for t in tf_types.values() if t.startswith(prefix)}):
            found = (up.aws_resource(tree, tf, registry) if key == "aws"
                     else up.cloudflare_resource(tree, tf))
            if found.unresolved or not found.files:
                raise ValueError(f"{tf}: could not read its schema ({found.unresolved})")
            types[tf] = {"files": sorted(set(found.files)),
                         "forces": dict(sorted(found.forces.items())),
                         "conditional": dict(sorted(found.conditional.items())),
                         "attributes": sorted(found.top)}
        doc[key] = {"repository": repo, "version": version, "read_from": via, "types": types}
    return doc


# -- building the table ------------------------------------------------------------------------

def _upstream_entry(token: str, tf: str, up: dict[str, Any],
                    renames: dict[str, str]) -> dict[str, Any]:
    provider = "aws" if tf.startswith("aws_") else "cloudflare"
    side = up[provider]
    row = side["types"][tf]
    _, args_cls = sdk_class(token)
    inputs = set(wire_properties(args_cls))
    props, conditional, not_inputs = {}, {}, []
    for tf_path, how in row["forces"].items():
        path = pulumi_path(tf_path, args_cls, renames)
        if path is None:
            not_inputs.append(tf_path)
        else:
            props[path] = f"{tf_path}: {how}"
    for tf_path, how in row["conditional"].items():
        path = pulumi_path(tf_path, args_cls, renames)
        if path is not None and path not in props:
            conditional[path] = f"{tf_path}: {how}"
    if provider == "aws" and "region" in inputs:
        props.setdefault("region", REGION_RULE)
    mapped = {pulumi_path(a, args_cls, renames) for a in row["attributes"]}
    entry: dict[str, Any] = {
        "upstream": f"{side['repository']} {tf} @ {side['version']}",
        "files": row["files"],
        "read_from": side["read_from"],
        "properties": dict(sorted(props.items())),
    }
    if conditional:
        entry["conditional"] = dict(sorted(conditional.items()))
    if not_inputs:
        entry["forcing_but_not_inputs"] = sorted(not_inputs)
    sdk_only = sorted(inputs - mapped - {"region", "tagsAll"})
    if sdk_only:
        entry["sdk_inputs_not_upstream"] = sdk_only
    if not props:
        entry["reason"] = ("the upstream schema marks no input ForceNew / RequiresReplace: "
                           "every change is an update in place")
    return entry


def build(types: list[str], manual: dict[str, Any], upstream: dict[str, Any],
          today: dt.date) -> dict[str, Any]:
    """The table for `types`: per type, the upstream-derived properties (with the files they
    come from), the hand-kept ones (with their source), the docstring cross-check and, when
    a type has no forcing property, the stated reason."""
    hand = manual.get("types", {})
    tf_types = manual.get("upstream_types", {})
    table: dict[str, Any] = {}
    for token in sorted(set(types)):
        derived = derive(token) or {}
        if token in tf_types:
            entry = _upstream_entry(token, tf_types[token], upstream,
                                    manual.get("upstream_renames", {}).get(token, {}))
            known = set(entry["properties"]) | set(entry.get("conditional", {}))
            disagree = sorted(p for p in derived if p not in known)
            if disagree:
                entry["docstring_disagrees"] = {p: derived[p] for p in disagree}
        else:
            entry = {"derived": derived}
            if token in hand:
                entry["manual"] = copy.deepcopy(hand[token])
            if not derived and not hand.get(token, {}).get("properties") and \
                    not hand.get(token, {}).get("reason"):
                entry["reason"] = ("no upstream schema, docstring or hand-kept entry names a "
                                   "replace-forcing property: changes are shown as updates")
        table[token] = entry
    return {
        "generated_by": "scripts/replace-properties (do not edit; edit replace_manual.yaml or "
                        "refresh replace_upstream.yaml)",
        "generated": today.isoformat(),
        "sdks": sdk_versions(),
        "upstream": {k: {"repository": v["repository"], "version": v["version"],
                         "read_from": v["read_from"]} for k, v in upstream.items()},
        "docstring_phrases": FORCES.pattern,
        "data_holders": copy.deepcopy(manual.get("data_holders", {})),
        "not_data_holders": copy.deepcopy(manual.get("not_data_holders", {})),
        "types": table,
    }


def dump(doc: dict[str, Any], what: str = "table") -> str:
    head = {"table": ("# Generated by scripts/replace-properties from replace_upstream.yaml,\n"
                      "# replace_manual.yaml and the installed provider SDKs. Do not edit.\n"),
            "upstream": ("# Generated by scripts/replace-properties --refresh-upstream from the\n"
                         "# providers' Go source (see its --help). Do not edit by hand.\n")}[what]
    return head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100,
                            allow_unicode=True)


@functools.cache
def table() -> dict[str, Any]:
    return load_yaml(TABLE)


def replace_properties(token: str) -> dict[str, str]:
    """property path (dotted camelCase, `[*]` for a list element) -> why it forces a
    replacement, for a type token."""
    entry = table()["types"].get(token, {})
    out = {prop: f"upstream {why}" for prop, why in entry.get("properties", {}).items()}
    out.update({prop: f"SDK docstring: {why}" for prop, why in entry.get("derived", {}).items()})
    manual = entry.get("manual", {})
    for prop in manual.get("properties", []):
        out.setdefault(prop, f"{manual.get('source', 'hand-kept')}")
    return out


def conditional_properties(token: str) -> dict[str, str]:
    """property path -> the upstream condition under which its change forces a replacement
    (a CustomizeDiff or plan modifier the offline diff cannot evaluate)."""
    return dict(table()["types"].get(token, {}).get("conditional", {}))


def holds_data(token: str, inputs: dict[str, Any] | None = None) -> str | None:
    """Why a resource of this type (with these inputs) holds data; None: it does not."""
    entry = table()["data_holders"].get(token)
    if isinstance(entry, dict):
        when = entry.get("when", {})
        if any((inputs or {}).get(key) != value for key, value in when.items()):
            return None
        return entry["reason"]
    return entry
