"""A process-backed local node for the dev cluster: registers Node ``local-0`` and runs the pods bound to it
as processes in their own network and mount namespaces. See README.md beside this file."""

import ipaddress

# The node's identity and addresses (the agent's defaults) and what its users need: where pods see this machine,
# and the scheduling fields that place a pod on the node (its label and its taint). Pure data.
NODE = "local-0"
CIDR = "10.244.100.0/24"  # kwok's fake nodes use 10.244.0-5.0/24
LABEL = "modelyard.dev/local-node"
GATEWAY = str(next(ipaddress.ip_network(CIDR).hosts()))  # the bridge's address: 10.244.100.1
PLACEMENT = {
    "nodeSelector": {LABEL: "true"},
    "tolerations": [{"key": LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}
