"""Progressive delivery (pure): the decision core, PromQL rendering and traffic-router rendering.

Nothing here reads a clock, the network or the cluster: the controller passes ``now`` and what it
measured, and applies what comes back. That makes every rule a table row in a unit test and makes a
restart harmless, since everything the decisions depend on lives in ``status``.
"""
