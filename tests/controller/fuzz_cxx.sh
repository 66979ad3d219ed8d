#!/bin/sh
# Compiler and link launcher of the protocol fuzzer. The project builds with g++; CMake calls
#   fuzz_cxx.sh <clang++> <project compiler> <arguments...>
# and this runs <clang++> with the same arguments plus libFuzzer, AddressSanitizer and UBSan. Asserts
# stay on (-UNDEBUG); OpenMP (from the linked libraries) maps to GCC's runtime, which they were built with.
clang="$1"
shift 2
compile=no
for a in "$@"; do
  [ "$a" = "-c" ] && compile=yes
done
set --  "$@" -fno-omit-frame-pointer -g
for a in "$@"; do
  shift
  if [ "$a" = "-fopenmp" ]; then set -- "$@" -fopenmp=libgomp; else set -- "$@" "$a"; fi
done
if [ "$compile" = yes ]; then
  exec "$clang" "$@" -UNDEBUG -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
else
  exec "$clang" "$@" -fsanitize=fuzzer,address,undefined
fi
