#!/bin/sh
# ${title(name)}: written by templatefile, rendered with its variables only.
%{ for port in ports ~}
echo "listening on ${port}"
%{ endfor ~}
%{ if debug }set -x%{ else }set -e%{ endif }
