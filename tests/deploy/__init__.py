"""Checks of deploy/: alerts, compose file, Kubernetes manifests, dashboard, Dockerfile."""

from workers.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
