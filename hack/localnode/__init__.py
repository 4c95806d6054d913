"""A process-backed local node for the dev cluster: registers Node ``local-0`` and runs the pods bound to it
as processes in their own network and mount namespaces. See README.md beside this file."""
