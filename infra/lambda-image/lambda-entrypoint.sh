#!/bin/sh
# The entry point of the Lambda base image, in the same shape: the function's handler is the one argument;
# outside Lambda (no AWS_LAMBDA_RUNTIME_API) the Runtime Interface Emulator runs the bootstrap. Under
# `sam local invoke` SAM replaces the entry point with the emulator it mounts at /var/rapid.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"

RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
