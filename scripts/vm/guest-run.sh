#!/bin/sh
# Guest side of `make run`: runs the agent in the foreground with the API on all
# interfaces (qemu forwards the host's port to it). Arguments go to the agent.
export HOME=/tmp
echo "guest: starting scx_pilot $*"
"${AGENT:?}" --listen 0.0.0.0:8080 "$@"
