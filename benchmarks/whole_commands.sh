# Sourced by the whole-command benchmarks: `measure NAME COMMAND...` runs COMMAND with its stdout dropped and its
# stderr kept in $OUT/NAME.err, and prints NAME and the seconds it took. $OUT: the caller's scratch folder.
measure() {
  local name=$1; shift
  local start end
  start=$(date +%s.%N); "$@" >/dev/null 2>"$OUT/$name.err"; end=$(date +%s.%N)
  echo "$name $(echo "$end - $start" | bc) s"
}

# The CPU class the classifier sees (after any ISA caps in the environment).
describe_cpu() {
  python -c "from lora_sentiment.modeling.cpu import this_cpu; print(this_cpu().describe())"
}

# `timed NAME COMMAND...`: the same, with the CPU seconds (user + system) and the host's steal (vmstat's `st`) after
# it, for a shared machine whose speed drifts.
timed() {
  local name=$1; shift
  /usr/bin/time -o "$OUT/time" -f "wall %e s, user %U s, system %S s" "$@" >/dev/null 2>"$OUT/$name.err"
  echo "$name: $(cat "$OUT/time"), steal $(vmstat 1 2 | tail -1 | awk '{print $NF}') %"
}
