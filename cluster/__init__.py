"""Cluster and operations tooling: launcher configs, the KubeRay manifest generator, a local 2-node cluster."""
