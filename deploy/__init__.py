"""The cluster side: GKE set-up and per-run kustomize overlays (standard library only)."""
