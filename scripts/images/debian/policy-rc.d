#!/bin/sh
# Package scripts must not start daemons while an image is being built; the
# container's own command starts the one service it runs.
exit 101
