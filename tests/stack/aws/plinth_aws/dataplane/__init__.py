"""The local data plane: what the emulator's control plane only declares, run for real.

With the data plane on (`PLINTH_DATA_PLANE=1`, or `{"data_plane": {"enabled": true}}` in
`PLINTH_AWS_CONFIG`), the emulator does what AWS does behind its APIs:

| part | module | what is real |
|---|---|---|
| instances | `instances.py` | each instance an Auto Scaling group launches boots from its launch template's user data: Debian's cloud-init runs `write_files` and `runcmd` (NoCloud seed) in the instance's own network and mount namespaces; the AWS CLI fetches the artifact from the emulator's S3 with the instance role's credentials from a metadata service at 169.254.169.254; the systemd unit's `ExecStart` runs with its `Environment=` lines; termination stops it with its `KillSignal` and `TimeoutStopSec` |
| databases | `databases.py` | each Aurora cluster is a MariaDB server of its own (TLS on, the master user and password from the cluster's Secrets Manager secret), reached from instances at the cluster's endpoints |
| load balancers | `balancers.py` | each ALB is an HAProxy process configured from the emulator's ELBv2 state: a frontend per listener, weighted forwarding, redirects, TLS with the ACM certificate, active health checks per target group; `DescribeTargetHealth` answers from HAProxy's check results |
| metrics | `metrics.py` | `AWS/ApplicationELB` request counts, 5xx and response times from HAProxy's request log, `AWS/EC2` CPU from the instances' cgroups, put into the emulator's CloudWatch |
| alarms | `alarms.py` | metric alarms evaluated as CloudWatch does; their actions notify SNS topics and execute scaling policies |
| activities | `activities.py` | `DescribeScalingActivities` lists what happened to a group |
| the machine | `host.py` | the block of addresses, namespaces, cgroups and hosts lines this emulator holds |

**Time.** `data_plane.time_scale` (default 1) shrinks the service clocks a test would otherwise
wait minutes for: alarm periods, scaling cooldowns and warm-up, health-check grace, health-check
interval and timeout, deregistration delay. 0.1 makes a 60-second alarm period 6 seconds of wall
time. Nothing else is scaled: an instance still boots as fast as it boots.

The parts are driven by one loop (`DataPlane.run`) that reads moto's state every
`LOOP_SECONDS` and moves the real world toward it (level-triggered, like the operator), plus
a few hooks where an API must answer from the real world (target health, scaling activities).
"""

from __future__ import annotations
