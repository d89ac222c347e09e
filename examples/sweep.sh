#!/bin/sh
# One task of an array: TRESTLE_ARRAY_INDEX says which.
echo "task $TRESTLE_ARRAY_INDEX: $((TRESTLE_ARRAY_INDEX * TRESTLE_ARRAY_INDEX))"
