#!/bin/sh
# An existing entrypoint script, run AFTER mpgate admitted the start (Dockerfile.example, target
# with-entrypoint-script):  ENTRYPOINT ["/mpgate", "exec", "--", "/docker-entrypoint.sh"]
# mpgate replaced itself with this script, so it is PID 1 and its environment carries the gate pass
# (MPGATE_PRODUCT_CODE, MPGATE_TIER, MPGATE_SIGNATURE, ...: docs/configuration.md).
set -eu

# Optional, recommended: refuse if someone bypassed the gate (`docker run --entrypoint
# /docker-entrypoint.sh ...`). Exit 85 and one `mpgate: ` line when there is no fresh pass.
/mpgate pass verify

# ... the script's existing set-up goes here (render config, wait for a database, ...) ...
echo "docker-entrypoint.sh: admitted as tier ${MPGATE_TIER}" >&2

# Hand PID 1 to the workload: CMD arrives as "$@".
exec "$@"
