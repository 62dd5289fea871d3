#!/bin/bash
# preStop hook: end the IOC cleanly (SIGTERM to its runner, which stops EPICS and exits 0) and
# wait for it to end. A stop.sh in the config folder replaces this, as in ioc-template.

override=${IOC_CONFIG:-/epics/ioc/config}/stop.sh
if [[ -f ${override} && $(realpath "${override}") != $(realpath "$0") ]]; then
    exec bash "${override}" "$@"
fi
exec berth ioc-stop
