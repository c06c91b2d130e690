# Training images/s of the default recipe, old code against new, alternating on core 0 with one thread:
#   bash benchmarks/step_speed.sh OLD_CHECKOUT [NEW_CHECKOUT] [MNIST_DIR]   (run with the venv active)
BEFORE=$(realpath "${1:?a checkout of the old code}"); AFTER=$(realpath "${2:-.}"); D=$(realpath "${3:-../shared/data/mnist}")

run() {  # $1 label, $2 repo, $3 extra flags, $4 out
  rm -rf $4
  start=$(date +%s.%N)
  (cd $2 && OMP_NUM_THREADS=1 PYTHONPATH=src taskset -c 0 python -m cleardiffusion train --dataset mnist --data-dir $D \
     --steps $STEPS --log-every 100 --sample-every 0 --no-progress --out $4 $3 > $4.log 2>&1)
  end=$(date +%s.%N)
  python - "$1" "$4" "$start" "$end" <<'PY'
import json, sys
label, out, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rs = [json.loads(l) for l in open(out + "/metrics.jsonl") if '"loss"' in l]
ips = [r["images_per_sec"] for r in rs[1:]]
print(f"{label}: images/s after the first 100 steps {ips}, whole command {end - start:.1f} s")
PY
}
STEPS=300
for i in 1 2; do
  run "before(2495ce1) default" $BEFORE "--checkpoint-every 1000" ${TMPDIR:-/tmp}/sp_before_$i
  run "after(main)     default" $AFTER "--checkpoint-every 1000" ${TMPDIR:-/tmp}/sp_after_$i
done
STEPS=200
run "before(2495ce1) --checkpoint-every 1" $BEFORE "--checkpoint-every 1" ${TMPDIR:-/tmp}/sp_ck_before
run "after(main)     --checkpoint-every 1" $AFTER "--checkpoint-every 1" ${TMPDIR:-/tmp}/sp_ck_after
