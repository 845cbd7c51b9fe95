"""The lab reference (docs/labs.md), written from the models themselves so that it cannot drift:
every probe kind with its keys, its expectations and one example, and the keys of a lab.

    python -m svclab.labref            print it
    python -m svclab.labref --write    write docs/labs.md and labs/lab.schema.json in a checkout
                                       (unit tests compare both with the models)
"""

from __future__ import annotations

import inspect
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .probes import KINDS
from .probes.base import ProbeSpec
from .schema import SCHEMA_FILE, LabFile, json_schema_text

__all__ = ["reference_markdown"]

_COMMON = set(ProbeSpec.model_fields)


def _type(field: FieldInfo) -> str:
    annotation = field.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if args and all(typing.get_origin(a) is typing.Literal for a in args):
        return " \\| ".join(f"`{v}`" for a in args for v in typing.get_args(a))
    names = {bool: "true/false", int: "whole number", float: "number", str: "text"}
    if typing.get_origin(annotation) in (list, tuple) or any(typing.get_origin(a) in (list, tuple) for a in args):
        return "list" if "tuple" not in str(annotation) else "[low, high]"
    found = [names.get(a, getattr(a, "__name__", str(a))) for a in (args or [annotation])]
    return " or ".join(dict.fromkeys(found))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "`[]`"
    return "" if field.default in (None, "") else f"`{str(field.default).lower() if isinstance(field.default, bool) else field.default}`"


def _rows(model: type[BaseModel], skip: set[str] = frozenset()) -> list[str]:
    rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip or name == "kind":
            continue
        rows.append(f"| `{field.alias or name}` | {_type(field)} | {_default(field)} | {field.description or ''} |")
    return rows


def _expect_rows(model: type[BaseModel]) -> list[str]:
    rows = ["| expectation | value | holds when |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        rows.append(f"| `{name}` | {_type(field)} | {field.description or ''} |")
    return rows


def reference_markdown() -> str:
    out = ["# Lab reference", "",
           "<!-- Written by `python -m svclab.labref --write` from svclab's lab models; a unit test keeps it current. -->",
           "", "A lab is a folder with a `lab.yaml` (and the manifests it names). Every key is checked: an unknown",
           "key, kind, provider or value is refused with one line naming the file, the probe and the key.",
           f"Editors that read `# yaml-language-server: $schema=../{SCHEMA_FILE}` (the first line of each",
           "lab.yaml) complete and check it with the JSON Schema svclab ships beside the labs; `svclab lab.check",
           "PATH...` checks lab folders without a cluster.", "", "## A lab", "", *_rows(LabFile), "",
           "## Every probe", "", "Each probe has these keys, then those of its kind.", "",
           *_rows(ProbeSpec, skip={"expect", "expect_by_provider", "expect_by_proxy_mode"}),
           "| `expect` | mapping | | The expectation, for every provider: the keys of the probe's kind below. |",
           "| `expect_by_provider` | mapping | | Per provider (`metallb`, `kube-vip`, `none`), an expectation that "
           "replaces `expect`. Without `expect`, every provider needs one. |",
           "| `expect_by_proxy_mode` | mapping | | Per kube-proxy mode (`iptables`, `nftables`, `ipvs`: all three), "
           "an expectation that replaces `expect` and `expect_by_provider`, for what the mode decides. On a cluster "
           "whose mode is none of those, the probe is skipped. |", ""]
    for kind, module in KINDS.items():
        spec = module.Spec
        out += [f"## `{kind}`", "", inspect.cleandoc(module.__doc__ or "").split("\n\n")[0].replace("\n", " "), ""]
        if spec.__doc__:
            out += [inspect.cleandoc(spec.__doc__).replace("\n", " "), ""]
        if spec.CHANGES_CLUSTER:
            out += ["This probe changes the cluster while it runs, so it runs alone, after the lab's other probes.", ""]
        rows = _rows(spec, skip=_COMMON)
        out += (rows + [""] if len(rows) > 2 else []) + _expect_rows(module.Expect) + ["", "```yaml",
                                                                                     module.EXAMPLE.strip(), "```", ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = reference_markdown()
    if "--write" in argv:
        root = Path(__file__).resolve().parent.parent
        for target, content in ((root / "docs" / "labs.md", text), (root / "labs" / SCHEMA_FILE, json_schema_text())):
            target.parent.mkdir(exist_ok=True)
            target.write_text(content)
            print(f"wrote {target}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

