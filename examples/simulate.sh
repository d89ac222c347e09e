#!/bin/sh
# A stand-in for a simulation: a few steps, then the success string.
for step in 1 2 3; do
  echo "step $step of 3"
  sleep 1
done
echo DONE
