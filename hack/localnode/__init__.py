"""A process-backed local node for the dev cluster: registers Node ``local-0`` and runs the pods bound to it
as processes in their own network and mount namespaces. See README.md beside this file."""

# What users of the node need (pure data; the agent's defaults): where pods see this machine, and the
# scheduling fields that place a pod on the node (its label and its taint).
GATEWAY = "10.244.100.1"  # the bridge's address: the first of the default pod CIDR 10.244.100.0/24
PLACEMENT = {
    "nodeSelector": {"modelyard.dev/local-node": "true"},
    "tolerations": [{"key": "modelyard.dev/local-node", "operator": "Exists", "effect": "NoSchedule"}],
}
