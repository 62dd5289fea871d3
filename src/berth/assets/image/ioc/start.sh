#!/bin/bash
# Start this container's IOC instance from its config folder, as ioc-template's start.sh does.
#
# The config folder (default /epics/ioc/config) holds, by precedence:
#   1. start.sh: run instead of this script (the instance's own start-up);
#   2. an instance YAML (ioc.yaml or one *.yaml with `entities:`, plus runtime.yaml): st.cmd and
#      ioc.subst are generated into $RUNTIME_DIR, then the IOC runs them;
#   3. st.cmd (+ ioc.subst, expanded into $RUNTIME_DIR/ioc.db).
# `berth run` applies 2 and 3 (and the runtime steps ibek runs); the IOC keeps this PID.

config=${IOC_CONFIG:-/epics/ioc/config}
override=${config}/start.sh
if [[ -f ${override} && $(realpath "${override}") != $(realpath "$0") ]]; then
    exec bash "${override}" "$@"
fi
exec berth run "${config}"
