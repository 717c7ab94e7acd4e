"""`ray start` that keeps `--node-ip-address=127.0.0.1` (cluster/local_cluster.py's two nodes on one machine).

Ray 2.60's `ray start` replaces a loopback node address with the machine's reachable one
(`services.resolve_ip_for_localhost`), and its GCS, raylets and object managers then listen on every interface
(seen on this machine: *:PORT for each). Its switch for one-machine Rays, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0,
keeps every process that resolves its own address (the dashboard's Serve API, drivers) on 127.0.0.1, but makes
`ray start` refuse worker nodes, which this cluster has. So the cluster's environment sets it to 0, and this
process alone accepts a worker node and keeps the address it was given.

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 python -m cluster.loopback_ray_start start --head --node-ip-address=127.0.0.1 ...
"""

import sys

from ray._private import ray_constants, services
from ray.scripts.scripts import main

ray_constants.ENABLE_RAY_CLUSTER = True  # this process only: `ray start --address=...` adds a node
services.resolve_ip_for_localhost = lambda host: host

if __name__ == "__main__":
    sys.exit(main())
