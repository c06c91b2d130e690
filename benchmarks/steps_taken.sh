# steps_taken RUN: one JSON line, the steps a run took (summary.json) and the seconds before its first step (for the
# trajectory stage: generating the teacher's trajectories), extrapolated back from the first two timed lines of its
# metrics.jsonl. Sourced by fresh_teachers.sh, bf16_bank.sh and dmd_t_max.sh.
steps_taken() {
  python -c "
import json, sys
a, b = [json.loads(line) for line in open(sys.argv[1] + '/metrics.jsonl') if '\"elapsed\"' in line][:2]
before = a['elapsed'] - a['step'] * (b['elapsed'] - a['elapsed']) / (b['step'] - a['step'])
print(json.dumps({'run': sys.argv[1], 'step': json.load(open(sys.argv[1] + '/summary.json'))['step'],
                  'before_first_step_s': round(before, 1)}))" $1
}
