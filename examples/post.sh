#!/bin/sh
# Runs after the sweep succeeded; the sweep's outputs are staged here.
echo "post-processing after the sweep"
