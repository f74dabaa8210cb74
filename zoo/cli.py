"""The `zoo` console script: `zoo fit|predict|bench|push|convert|list|info ...` (each verb is also `python -m zoo.<verb>`)."""

from __future__ import annotations

import json
import sys

__all__ = ["main"]

USAGE = """usage: zoo <verb> [args]

verbs:
  fit       train a method            (python -m zoo.fit --model pix2pix [--data.root DIR] ...)
  predict   run a model on images     (python -m zoo.predict <name-or-dir> <inputs...> --out DIR)
  bench     score models on a suite    (python -m zoo.bench --suite mini [--models PATTERN] ...)
  push      upload a model to the Hub  (python -m zoo.push NAME --repo org/repo)
  convert   official weights -> zoo    (python -m zoo.convert cyclegan-horse2zebra horse2zebra.pth --out DIR)
  list      list models and methods   (zoo list ['pix2pix-*'] [--pretrained])
  info      show a registry entry     (zoo info pix2pix-facades)
"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    verb, rest = argv[0], argv[1:]
    if verb == "fit":
        from zoo.fit import main as fit

        fit(rest)
    elif verb == "predict":
        from zoo.predict import main as predict

        predict(rest)
    elif verb in ("bench", "push", "convert"):
        import importlib

        raise SystemExit(importlib.import_module(f"zoo.{verb}").main(rest))
    elif verb in ("list", "info"):
        import zoo

        try:
            if verb == "list":
                patterns = [a for a in rest if not a.startswith("--")] or ["*"]
                pretrained = True if "--pretrained" in rest else None
                print("\n".join(zoo.list_models(patterns, pretrained=pretrained)))
            else:
                if not rest:
                    raise zoo.ZooError("zoo info needs a model name, e.g. `zoo info pix2pix-facades`")
                print(json.dumps(zoo.info(rest[0]), indent=2, default=str))
        except zoo.ZooError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from error
    else:
        print(f"error: unknown verb {verb!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
