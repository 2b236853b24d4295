"""Top floor: Prefect flows, deployments, serving and the `llmformer` CLI. Orchestration only."""
