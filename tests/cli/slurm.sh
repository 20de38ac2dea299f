#!/usr/bin/env bash
# slurm.sh — launch/slurm.sbatch without Slurm: srun and scontrol are stand-ins (srun runs mpirun and forwards
# SIGUSR1 like the real one; scontrol records the requeue), the test plays the scheduler: it sends SIGUSR1 to the
# batch script mid-run, checks a checkpoint was written and the job requeued, then "restarts" the job and checks it
# resumes and finishes.   slurm.sh SBATCH_SCRIPT MPITRAIN DATA
set -u
script=$1 bin=$2 data=$3
rm -rf slurm-test && mkdir -p slurm-test/bin && cd slurm-test || exit 1
fail() { echo "FAIL: $*"; exit 1; }
cat > bin/srun <<'SRUN'
#!/usr/bin/env bash
# stand-in for srun: drop srun's own options, run the tasks under mpirun, forward SIGUSR1 to them
while [ "${1#--}" != "$1" ]; do shift; done
mpirun -np 2 "$@" &
child=$!
trap 'pkill -USR1 -P "$child"' USR1
while :; do wait "$child"; s=$?; kill -0 "$child" 2>/dev/null || exit "$s"; done
SRUN
printf '#!/bin/sh\necho "$@" >> "%s/requeued"\n' "$PWD" > bin/scontrol
chmod +x bin/srun bin/scontrol
export PATH="$PWD/bin:$PATH" SLURM_SUBMIT_DIR="$PWD" SLURM_JOB_ID=4242 SLURM_JOB_NAME=t MPITRAIN="$bin" EVERY=25
"$bin" synth --samples 8000 --test-samples 500 --features 256 --classes 4 --noise 3 --out big.h5 >/dev/null || fail synth
args=(--data big.h5 --hidden 256,256 --batch 64 --epochs 10 --progress off --threads 1)
bash "$script" "${args[@]}" > first.out 2>&1 &
job=$!
for _ in $(seq 600); do
  ls checkpoints/t/ckpt-*.h5 >/dev/null 2>&1 && break
  kill -0 "$job" 2>/dev/null || { cat first.out; fail "the job ended before the time limit came"; }
  sleep 0.05
done
kill -USR1 "$job"
wait "$job"
status=$?
cat first.out
[ "$status" -eq 0 ] || fail "the batch script exited $status after SIGUSR1"
grep -q "stopped by a signal after step" first.out || fail "mpitrain did not stop on the signal"
grep -q "requeue 4242" requeued || fail "the job was not requeued"
SLURM_RESTART_COUNT=1 bash "$script" "${args[@]}" > second.out 2>&1 || { cat second.out; fail "the requeued job failed"; }
cat second.out
grep -q "resumed from checkpoints/t/ckpt-" second.out || fail "the requeued job did not resume"
grep -q "final test accuracy" second.out || fail "the requeued job did not finish"
[ "$(wc -l < requeued)" -eq 1 ] || fail "a finished job must not requeue itself"
echo PASS
