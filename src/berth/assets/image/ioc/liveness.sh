#!/bin/bash
# Liveness probe: exit 0 iff the IOC answers a Channel Access search for one of its own PVs
# (the PV its runner probes, from $RUNTIME_DIR/status.json; K8S_IOC_PV names another).
# A liveness.sh in the config folder replaces this check, as in ioc-template.

override=${IOC_CONFIG:-/epics/ioc/config}/liveness.sh
if [[ -f ${override} && $(realpath "${override}") != $(realpath "$0") ]]; then
    exec bash "${override}" "$@"
fi
exec berth ioc-alive ${K8S_IOC_PV:+--pv "${K8S_IOC_PV}"}
