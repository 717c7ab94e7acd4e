"""The Ray Serve layer: ingress, analyzer groups, planning and storage. Knows Ray; imports no model library."""
