"""`python -m zoo.push NAME --repo org/repo`: upload a model's weights, config and model card, with its
benchmark results, to the Hugging Face Hub.

The token comes from where huggingface_hub looks (``HF_TOKEN``, ``huggingface-cli login``'s cache); zoo
never takes it on the command line and never prints or logs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.errors import ZooError

__all__ = ["main", "push_model", "repo_for", "latest_metrics"]


def repo_for(name: str) -> str:
    """The Hub repo registry.yaml gives model `name` (weights.hub.repo)."""
    from zoo import registry

    try:
        _, key, entry = registry.resolve(name)
    except ZooError:
        entry = None
    repo = ((entry or {}).get("weights") or {}).get("hub", {}).get("repo") if entry else None
    if not repo:
        raise ZooError(f"{name} has no weights.hub.repo in registry.yaml: pass --repo org/name")
    return repo


def latest_metrics(results_dir: str | Path, name: str) -> dict[str, Any]:
    """suite -> summary of the latest run of model `name` in `results_dir` (as the model card shows it)."""
    from zoo.benchmark.results import read_results, results_summary

    out: dict[str, Any] = {}
    if Path(results_dir).is_dir():
        for record in read_results(results_dir):
            if record.get("model") == name:
                out[record["suite"]] = results_summary(record)
    return out


def push_model(model: Any, repo: str, *, name: str, metrics: Mapping[str, Any] | None = None, revision: str | None = None,
               private: bool | None = None) -> str:
    """Upload model.safetensors, config.json and README.md (card with `metrics`) to `repo`; returns the URL."""
    card: dict[str, Any] = {"name": name}
    if metrics:
        card["metrics"] = dict(metrics)
    return model.push_to_hub(repo, revision=revision, private=private, **card)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zoo.push", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="registry name, save_pretrained folder, .ckpt or hf-hub:org/repo")
    p.add_argument("--repo", default=None, help="target Hub repo (default: the registry entry's weights.hub.repo)")
    p.add_argument("--revision", default=None, help="branch to push to (created when missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--results", default="benchmarks/results", help="where zoo.bench wrote its results")
    args = p.parse_args(argv)
    try:
        import zoo

        model = zoo.load(args.name)
        folder = Path(args.name).expanduser()
        from zoo.benchmark.command import folder_name

        name = folder_name(folder) if folder.exists() else args.name
        repo = args.repo or repo_for(args.name)
        metrics = {**(model.card.get("metrics") or {}), **latest_metrics(args.results, name)}
        url = push_model(model, repo, name=name, metrics=metrics, revision=args.revision, private=args.private or None)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"pushed {name} to {repo}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
