"""``make demo``: the agent's main job on an embedded default.

Turns ``config-repo-template/`` into a real git repository under ``.demo/`` (same content, same
commit every time, so a re-run finds everything already in sync), points the agent at it and at the
local control plane, syncs every environment and prints ``status``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from gitops_agent.composition import build_agent
from gitops_agent.config import parse_config
from gitops_agent.present import format_pass, format_status

# a fixed author and date make the demo commit's sha the same on every run
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "gitops-agent demo",
    "GIT_AUTHOR_EMAIL": "demo@gitops-agent.invalid",
    "GIT_COMMITTER_NAME": "gitops-agent demo",
    "GIT_COMMITTER_EMAIL": "demo@gitops-agent.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def make_repo(template: Path, dest: Path) -> str:
    """A one-commit git repository with the template's content; returns its commit."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(template, dest)
    env = {**os.environ, **_GIT_ENV}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "Config repository from config-repo-template")
    return git("rev-parse", "HEAD").strip()


BOARD_LISTEN = "127.0.0.1:9090"
BOARD_URL = f"http://{BOARD_LISTEN}/"
RENDERERS = ("GITOPS_AGENT_KUSTOMIZE", "GITOPS_AGENT_HELM")


def demo_config(template: Path, repo: Path, workdir: Path) -> str:
    """The template's own agent config, pointed at the local repository."""
    data = yaml.safe_load((template / "gitops-agent.yaml").read_text())
    data["repo"]["url"] = str(repo)
    data["repo"]["cache_dir"] = str(workdir / "cache")
    return yaml.safe_dump(data, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gitops_agent.demo")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--template", default="config-repo-template")
    parser.add_argument("--workdir", default=".demo")
    args = parser.parse_args(argv)
    template, workdir = Path(args.template).resolve(), Path(args.workdir).resolve()
    workdir.mkdir(exist_ok=True)
    commit = make_repo(template, workdir / "config-repo")
    text = demo_config(template, workdir / "config-repo", workdir)
    (workdir / "gitops-agent.yaml").write_text(text)
    print(f"config repository: {workdir / 'config-repo'} @ {commit[:12]}")
    print(f"agent config:      {workdir / 'gitops-agent.yaml'}\n")

    agent = build_agent(parse_config(text, source=str(workdir / "gitops-agent.yaml")), kubeconfig=args.kubeconfig)
    try:
        results = agent.sync_all()
        for result in results:
            print(format_pass(result))
        print()
        print(format_status(agent.status()))
    finally:
        agent.close()
    config = workdir / "gitops-agent.yaml"
    print(f"\nTry: .venv/bin/gitops-agent status --config {config} --kubeconfig {args.kubeconfig}")
    print(board_hint(config, args.kubeconfig))
    return 0 if all(r.ok for r in results) else 1


def board_hint(config: Path, kubeconfig: str) -> str:
    """How to see the status board: the daemon on loopback ports, and the page's URL."""
    # the daemon renders with the same kubectl and helm the demo did (the Makefile sets them)
    renderers = " ".join(f"{k}={os.environ[k]}" for k in RENDERERS if k in os.environ)
    command = (
        f"{renderers} .venv/bin/gitops-agent run --config {config} --kubeconfig {kubeconfig} "
        f"--no-leader-election --listen 127.0.0.1:8080 --status-listen {BOARD_LISTEN}"
    ).strip()
    return f"\nThe status board: run the daemon,\n  {command}\nthen open {BOARD_URL}"


if __name__ == "__main__":
    sys.exit(main())
