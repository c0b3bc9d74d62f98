"""Which Terraform attributes force a replacement, read from the upstream providers' Go source.

pulumi-aws bridges hashicorp/terraform-provider-aws and pulumi-cloudflare bridges
cloudflare/terraform-provider-cloudflare; the bridge replaces a resource when the Terraform
plan says so, and the Terraform plan says so for:

- SDKv2 resources: an attribute with `ForceNew: true` in the resource's schema
  (terraform-plugin-sdk helper/schema), or one named by `customdiff.ForceNewIf`,
  `customdiff.ForceNewIfChange` or `d.ForceNew(...)` in its CustomizeDiff (conditional);
- Plugin Framework resources: an attribute whose PlanModifiers hold `RequiresReplace()` or
  `RequiresReplaceIfConfigured()` (terraform-plugin-framework resource/schema/*planmodifier),
  or `RequiresReplaceIf(...)` / another `RequiresReplace*` modifier (conditional).

This module reads that Go source with a small brace-matching scanner (no Go toolchain needed)
from a checkout or a bare git mirror (`Tree`). For AWS it reads the per-function copies of
the upstream source kept by lonegunmanb/terraform-provider-aws-index (one tag per upstream
release, index/internal/service/<pkg>/func.<name>.goindex and method.<type>.<name>.goindex:
the function's text verbatim with its file's imports), because the provider's own repository
is too large to mirror here; for Cloudflare it reads internal/services/<name>/schema.go of
the provider's repository at a release tag.

The result is Terraform paths (snake_case, `[*]` for a list or set element); planner/
replace_props.py maps them to the Pulumi property paths with the installed SDK.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# -- reading a source tree -----------------------------------------------------------------


class Tree:
    """Files of a repository: a checkout (a directory) or a git directory at a ref."""

    def __init__(self, path: Path, ref: str | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such directory")
        self.git_dir = self.path / ".git" if (self.path / ".git").exists() else self.path
        self.git = (self.git_dir / "HEAD").exists()  # a checkout or a bare mirror
        self.ref = ref if self.git else None  # a plain directory: what it holds
        self.commit = self._rev_parse() if self.git else None

    def _git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args],
                              capture_output=True, text=True)

    def _rev_parse(self) -> str:
        out = self._git("rev-parse", f"{self.ref or 'HEAD'}^{{commit}}")
        if out.returncode:
            raise FileNotFoundError(f"{self.path}: no ref {self.ref!r} ({out.stderr.strip()})")
        return out.stdout.strip()

    def read(self, rel: str) -> str | None:
        if self.git:
            out = self._git("show", f"{self.commit}:{rel}")
            return out.stdout if out.returncode == 0 else None
        file = self.path / rel
        return file.read_text() if file.is_file() else None

    def listdir(self, rel: str) -> list[str]:
        if self.git:
            out = self._git("ls-tree", "--name-only", f"{self.commit}:{rel}")
            return out.stdout.split() if out.returncode == 0 else []
        d = self.path / rel
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


# -- scanning Go composite literals ---------------------------------------------------------

_OPEN = {"{": "}", "(": ")", "[": "]"}


def _skip(text: str, i: int) -> int:
    """Index after a string, rune or comment starting at i (i itself if none starts there)."""
    c = text[i]
    if c == '"' or c == "'":
        j = i + 1
        while j < len(text) and text[j] != c:
            j += 2 if text[j] == "\\" else 1
        return j + 1
    if c == "`":
        return text.index("`", i + 1) + 1
    if text.startswith("//", i):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("/*", i):
        return text.index("*/", i + 2) + 2
    return i


def matching(text: str, i: int) -> int:
    """The index of the bracket closing the one at text[i]."""
    stack = []
    while i < len(text):
        j = _skip(text, i)
        if j != i:
            i = j
            continue
        c = text[i]
        if c in _OPEN:
            stack.append(_OPEN[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return i
        i += 1
    raise ValueError("unbalanced brackets")


def split_top(body: str, sep: str) -> list[str]:
    """body split at `sep` characters outside brackets, strings and comments."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(body):
        j = _skip(body, i)
        if j != i:
            i = j
            continue
        c = body[i]
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(body[start:i])
            start = i + 1
            if sep == ":":  # only the first colon splits a key from its value
                break
        i += 1
    parts.append(body[start:])
    return parts


def _strip_comments(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        j = _skip(text, i)
        if j != i:
            if text[i] in "\"'`":
                out.append(text[i:j])
            i = j
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def literal_body(text: str) -> str | None:
    """The inside of the first `{...}` in text (a composite literal's fields)."""
    i = text.find("{")
    return None if i < 0 else text[i + 1:matching(text, i)]


def fields(body: str) -> dict[str, str]:
    """A struct or map literal's `key: value` entries, values as text (keys unquoted)."""
    out = {}
    for part in split_top(body, ","):
        part = _strip_comments(part).strip()
        if not part:
            continue
        kv = split_top(part, ":")
        if len(kv) == 2:
            out[kv[0].strip()] = kv[1].strip()
    return out


# -- attribute names ---------------------------------------------------------------------------

_ACRONYMS = sorted(["ARNs", "ARN", "IDs", "ID", "VPC", "KMS", "DNS", "IPv6", "IPv4", "IP", "URLs",
                    "URL", "URI", "AZ", "SSL", "TLS", "HTTPS", "HTTP", "JSON", "SNS", "SQS", "IAM",
                    "MAC", "CIDR", "ACL", "AMI", "EBS", "EC2", "S3", "SSM", "TTL", "UUID", "API",
                    "OU", "RAM", "DB", "SHA", "MFA", "SAML", "OIDC", "EKS", "ECS", "ECR"],
                   key=len, reverse=True)


def attr_const(name: str) -> str:
    """The string of a names.AttrX constant. names/attr_consts_gen.go is generated from
    names/attr_consts.csv with the constant named after the attribute in Go's initialism
    style (AttrKMSKeyID = "kms_key_id", AttrSecurityGroupIDs = "security_group_ids"); this
    is that naming undone. The mapping is checked downstream: every attribute must name a
    property of the installed SDK."""
    s, words = name.removeprefix("Attr"), []
    while s:
        acr = next((a for a in _ACRONYMS if s.startswith(a) and
                    not (len(s) > len(a) and s[len(a)].islower())), None)
        if acr:
            words.append(acr.lower())
            s = s[len(acr):]
            continue
        m = re.match(r"[A-Z]?[a-z0-9]+|[A-Z]+", s)
        words.append(m.group(0).lower())
        s = s[m.end():]
    return "_".join(words)


def key_name(key: str, resolve=None) -> str | None:
    """A schema map key as its attribute name: a string literal, a names.AttrX constant or a
    package-level constant (resolved by `resolve`)."""
    key = key.strip()
    if key.startswith('"'):
        return key.strip('"')
    m = re.fullmatch(r"names\.(Attr\w+)", key)
    if m:
        return attr_const(m.group(1))
    if resolve and re.fullmatch(r"\w+", key):
        return resolve(key)
    return None


# -- results -----------------------------------------------------------------------------------

@dataclass
class Found:
    forces: dict[str, str] = field(default_factory=dict)
    """Terraform path -> how the source says it forces a new resource."""
    conditional: dict[str, str] = field(default_factory=dict)
    """Terraform path -> the condition's source (replaces only when it holds)."""
    lists: set[str] = field(default_factory=set)
    """Terraform paths that are lists/sets of blocks (their sub-paths carry `[*]`)."""
    top: set[str] = field(default_factory=set)
    """The schema's top-level attribute names (to compare with the SDK's inputs)."""
    files: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


# -- SDKv2 (helper/schema) -------------------------------------------------------------------

_SDK_MAP = "map[string]*schema.Schema{"


def _outermost(text: str, needle: str) -> int:
    """The occurrence of needle on the least indented line (a resource's own schema map,
    not one nested in an Elem or a closure defined before it); -1 if none."""
    best, best_indent, i = -1, 1 << 30, text.find(needle)
    while i >= 0:
        line = text[text.rfind("\n", 0, i) + 1:i]
        indent = len(line) - len(line.lstrip("\t "))
        if indent < best_indent:
            best, best_indent = i, indent
        i = text.find(needle, i + 1)
    return best


class SDKv2Reader:
    def __init__(self, tree: Tree, package_dir: str):
        self.tree, self.dir, self.resolve = tree, package_dir, self

    def __call__(self, ident: str) -> str | None:
        return package_const(self.tree, self.dir, ident)

    def func_text(self, name: str, found: Found) -> str | None:
        rel = f"{self.dir}/func.{name}.goindex"
        text = self.tree.read(rel)
        if text is None:  # a package variable holding a function (`x = sync.OnceValue(...)`)
            rel = f"{self.dir}/var.{name}.goindex"
            text = self.tree.read(rel)
            if text is not None:
                if rel not in found.files:
                    found.files.append(rel)
                return text[text.find(f"{name} "):]
        if text is None:  # a closure in the resource's own function (`x := func() ...`)
            i = self.context.find(f"{name} := func(")
            if i >= 0:
                return self.context[i:]
            found.unresolved.append(f"{self.dir} func {name}")
            return None
        if rel not in found.files:
            found.files.append(rel)
        return text[text.find(f"func {name}("):]

    def resource(self, factory: str) -> Found:
        found = Found()
        self.context = ""
        text = self.func_text(factory, found)
        if text is None:
            return found
        self.context = text
        self._schema_map(text, "", found, depth=0)
        self._customize_diff(text, found)
        return found

    def _schema_map(self, text: str, prefix: str, found: Found, depth: int) -> None:
        i = _outermost(text, _SDK_MAP)
        if i < 0:  # Schema: someFunc() / SchemaFunc: someFunc
            m = re.search(r"\bSchema(?:Func)?:\s*(?:maps\.Clone\()?(\w+)\b", text)
            if m and depth < 6 and m.group(1) not in ("func", "map"):
                rel = f"{self.dir}/var.{m.group(1)}.goindex"
                sub = self.tree.read(rel)
                if sub is not None:
                    found.files.append(rel)
                else:
                    sub = self.func_text(m.group(1), found)
                if sub:
                    self._schema_map(sub, prefix, found, depth + 1)
            return
        body = text[i + len(_SDK_MAP) - 1:]
        body = body[1:matching(body, 0)]
        for key, value in fields(body).items():
            name = key_name(key, self.resolve)
            if name is None:
                found.unresolved.append(f"{prefix}{key}")
                continue
            if not prefix:
                found.top.add(name)
            self._attribute(value, f"{prefix}{name}", found, depth)

    def _attribute(self, value: str, path: str, found: Found, depth: int) -> None:
        m = re.match(r"(\w+(?:\.\w+)?)\((.*)\)$", value, re.DOTALL)
        if m and "{" not in value.split("(")[0]:  # a helper returning *schema.Schema
            func = m.group(1)
            if "." not in func and depth < 6:
                sub = self.func_text(func, found)
                if sub:
                    ret = sub.find("&schema.Schema{")
                    if ret >= 0:
                        self._attribute(sub[ret:matching(sub, sub.index("{", ret)) + 1],
                                        path, found, depth + 1)
            return  # tftags.TagsSchema() and the like: never ForceNew
        body = literal_body(value)
        if body is None:
            return
        f = fields(body)
        if f.get("ForceNew") == "true":
            found.forces[path] = "ForceNew: true"
        elem = f.get("Elem", "")
        kind = f.get("Type", "")
        many = kind in ("schema.TypeList", "schema.TypeSet") and f.get("MaxItems") != "1"
        if elem.startswith("&schema.Resource") or re.fullmatch(r"\w+\(\)", elem):
            if many:
                found.lists.add(path)
            sub_prefix = f"{path}[*]." if many else f"{path}."
            if elem.startswith("&schema.Resource"):
                self._schema_map(elem, sub_prefix, found, depth + 1)
            elif depth < 6:
                sub = self.func_text(elem[:-2], found)
                if sub:
                    self._schema_map(sub, sub_prefix, found, depth + 1)

    def _customize_diff(self, text: str, found: Found) -> None:
        i = text.find("CustomizeDiff:")
        if i < 0:
            return
        j = i + len("CustomizeDiff:")
        part = split_top(text[j:], ",")[0]
        if "(" in part:  # customdiff.All( ... ) / Sequence(...)
            k = text.index("(", j)
            part = text[j:matching(text, k) + 1]
        self._conditions(part, "CustomizeDiff", found, seen=set(), depth=0)

    def _conditions(self, text: str, where: str, found: Found, seen: set, depth: int) -> None:
        """ForceNewIf / ForceNewIfChange / d.ForceNew(...) in text and in the package's
        functions it names (three calls deep)."""
        pattern = (r"(?:ForceNewIfChange|ForceNewIf|\.ForceNew)\(\s*"
                   r"(\"[\w.]+\"|names\.Attr\w+)")
        for m in re.finditer(pattern, text):
            name = key_name(m.group(1), self.resolve)
            if name and name not in found.forces:
                found.conditional.setdefault(name.replace(".0.", "."),
                                             f"{where}: {m.group(0).split('(')[0].strip('.')}")
        if depth >= 3:
            return
        for func in sorted(set(re.findall(r"\b([a-z]\w*[A-Z]\w*)\b(?!\s*:)", text)) - seen):
            seen.add(func)
            rel = f"{self.dir}/func.{func}.goindex"
            sub = self.tree.read(rel)
            if sub and "ForceNew" in sub:
                found.files.append(rel)
                self._conditions(sub[sub.find(f"func {func}("):], func, found, seen, depth + 1)
            elif sub:
                self._conditions(sub[sub.find(f"func {func}("):], where, found, seen, depth + 1)


# -- Plugin Framework (resource/schema) ------------------------------------------------------

_FORCING = ("RequiresReplace()", "RequiresReplaceIfConfigured()")


def framework_attributes(body: str, prefix: str, found: Found, resolve,
                         outer_many: bool = False) -> None:
    """Walk `Attributes: map[string]schema.Attribute{...}` and `Blocks: ...` of a schema."""
    f = fields(body)
    for kind in ("Attributes", "Blocks"):
        value = f.get(kind)
        if not value:
            continue
        entries = literal_body(value)
        for key, attr in fields(entries or "").items():
            name = key_name(key, resolve)
            if name is None:
                found.unresolved.append(f"{prefix}{key}")
                continue
            path = f"{prefix}{name}"
            if not prefix:
                found.top.add(name)
            head = attr.split("{", 1)[0]
            abody = literal_body(attr) or ""
            af = fields(abody)
            mods = af.get("PlanModifiers", "")
            if any(x in mods for x in _FORCING):
                found.forces[path] = next(x for x in _FORCING if x in mods)
            elif "RequiresReplace" in mods:
                found.conditional[path] = re.search(r"\w*RequiresReplace\w*", mods).group(0)
            nested = af.get("NestedObject")
            many = any(w in head for w in ("List", "Set", "Map")) and \
                "SizeAtMost(1)" not in af.get("Validators", "")
            if nested:
                if many:
                    found.lists.add(path)
                framework_attributes(literal_body(nested) or "",
                                     f"{path}[*]." if many else f"{path}.", found, resolve)
            elif "Attributes" in af or "Blocks" in af:  # SingleNested*
                framework_attributes(abody, f"{path}.", found, resolve)


def framework_schema(text: str, found: Found, resolve) -> None:
    i = text.find("schema.Schema{")
    if i < 0:
        found.unresolved.append("no schema.Schema literal")
        return
    body = text[i + len("schema.Schema"):]
    body = body[1:matching(body, 0)]
    framework_attributes(body, "", found, resolve)


# -- the providers ---------------------------------------------------------------------------

AWS_INDEX = "index/terraform-provider-aws-index.json"
AWS_SERVICES = "index/internal/service"


def package_const(tree: Tree, pkg_dir: str, ident: str) -> str | None:
    """A package-level string constant or variable (`ident = "..."`) from the index."""
    for kind in ("const", "var"):
        text = tree.read(f"{pkg_dir}/{kind}.{ident}.goindex")
        if text:
            m = re.search(rf"\b{ident}\s*(?:string\s*)?=\s*\"([^\"]+)\"", text)
            if m:
                return m.group(1)
    return None


def aws_registry(tree: Tree) -> tuple[str, dict[str, dict[str, str]]]:
    """The upstream version and tf type -> {package dir, factory, kind}: from each service
    package's generated registration (service_package_gen.go: SDKResources and
    FrameworkResources, `Factory: x, TypeName: "aws_..."`)."""
    import json

    version = json.loads(tree.read(AWS_INDEX) or "{}").get("version", "?")
    out: dict[str, dict[str, str]] = {}
    for pkg in tree.listdir(AWS_SERVICES):
        pkg_dir = f"{AWS_SERVICES}/{pkg}"
        for kind in ("SDKResources", "FrameworkResources"):
            text = tree.read(f"{pkg_dir}/method.servicePackage.{kind}.goindex") or ""
            for m in re.finditer(r"Factory:\s*(\w+),\s*TypeName:\s*\"(\w+)\"", text):
                out[m.group(2)] = {"dir": pkg_dir, "factory": m.group(1), "kind": kind}
    return version, out


def _framework_struct(tree: Tree, pkg_dir: str, factory: str) -> list[str]:
    """The struct a framework factory returns, then the types it embeds (the Schema method
    may be an embedded type's)."""
    text = tree.read(f"{pkg_dir}/func.{factory}.goindex") or ""
    m = re.search(r"&(\w+)\{", text[text.find(f"func {factory}("):])
    if not m:
        return []
    names = [m.group(1)]
    typ = tree.read(f"{pkg_dir}/type.{m.group(1)}.goindex") or ""
    i = typ.find("struct {")
    if i >= 0:
        body = typ[i + len("struct "):]
        body = body[1:matching(body, 0)]
        names += [ln.strip().lstrip("*") for ln in body.splitlines()
                  if re.fullmatch(r"\s*\*?\w+\s*", ln)]
    return names


def aws_resource(tree: Tree, tf_type: str, registry: dict) -> Found:
    """ForceNew / RequiresReplace of one terraform-provider-aws resource, from the index."""
    entry = registry.get(tf_type)
    found = Found()
    if entry is None:
        found.unresolved.append(f"{tf_type}: registered by no service package")
        return found
    pkg_dir = entry["dir"]
    reader = SDKv2Reader(tree, pkg_dir)
    if entry["kind"] == "SDKResources":
        return reader.resource(entry["factory"])
    found.files.append(f"{pkg_dir}/func.{entry['factory']}.goindex")
    for struct in _framework_struct(tree, pkg_dir, entry["factory"]):
        rel = f"{pkg_dir}/method.{struct}.Schema.goindex"
        text = tree.read(rel)
        if text is None:
            continue
        found.files.append(rel)
        framework_schema(text, found, reader)
        rel = f"{pkg_dir}/method.{struct}.ModifyPlan.goindex"
        plan = tree.read(rel)
        if plan and "RequiresReplace" in plan:
            found.files.append(rel)
            for m in re.finditer(r"RequiresReplace\w*\s*=.*?path\.Root\((\"\w+\"|names\.Attr\w+)",
                                 plan, re.DOTALL):
                name = key_name(m.group(1), reader)
                if name:
                    found.conditional.setdefault(name, f"{struct}.ModifyPlan")
        break
    else:
        found.unresolved.append(f"{tf_type}: no Schema method for {entry['factory']}")
    return found


def cloudflare_resource(tree: Tree, tf_type: str) -> Found:
    found = Found()
    name = tf_type.removeprefix("cloudflare_")
    rel = f"internal/services/{name}/schema.go"
    text = tree.read(rel)
    if text is None:
        found.unresolved.append(rel)
        return found
    found.files.append(rel)
    framework_schema(text[text.find("func ResourceSchema("):], found, None)
    rel = f"internal/services/{name}/resource.go"
    res = tree.read(rel) or ""
    i = res.find(") ModifyPlan(")
    if i >= 0:
        body = res[i:matching(res, res.index("{", i)) + 1]
        if "RequiresReplace" in body:
            found.files.append(rel)
            for m in re.finditer(r"path\.Root\(\"(\w+)\"\)", body):
                found.conditional.setdefault(m.group(1), "ModifyPlan")
    return found


def plain(path: str) -> str:
    """A Terraform path with the list markers left out (for messages)."""
    return path.replace("[*]", "")


__all__ = ["Found", "Tree", "aws_registry", "aws_resource", "cloudflare_resource",
           "framework_schema", "SDKv2Reader", "fields", "matching", "split_top"]


def _selftest(path: str) -> None:  # pragma: no cover - a developer's aid
    print(fields(Path(path).read_text()))
