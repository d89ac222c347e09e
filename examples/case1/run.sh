#!/bin/sh
# Runs in the uploaded folder: reads its input, writes a result.
wc -w < input.txt > words.txt
echo "counted $(cat words.txt) words"
