"""``kubectl modelyard`` (also ``modelyard``): the user's command line for ModelDeployments and ModelVersions.

``views`` turns objects into tables and trees (pure), ``client`` is the plugin's only door to the API server and
Prometheus, ``app`` parses the command line and wires the two.
"""
