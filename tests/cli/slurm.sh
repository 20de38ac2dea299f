#!/usr/bin/env bash
# slurm.sh — launch/slurm.sbatch without Slurm: srun and scontrol are stand-ins (srun runs mpirun and forwards
# SIGUSR1 like the real one; scontrol records the requeue), the test plays the scheduler: it sends SIGUSR1 to the
# batch script mid-run, checks a checkpoint was written and the job requeued, then "restarts" the job and checks it
# resumes and finishes. Also: each job gets a checkpoint directory of its own (array tasks too), CKPT overrides it,
# and srun is given the job's CPUs per task.   slurm.sh SBATCH_SCRIPT MPITRAIN DATA
set -u
script=$1 bin=$2 data=$3
rm -rf slurm-test && mkdir -p slurm-test/bin && cd slurm-test || exit 1
fail() { echo "FAIL: $*"; exit 1; }
cat > bin/srun <<'SRUN'
#!/usr/bin/env bash
# stand-in for srun: drop srun's own options, run the tasks under mpirun, forward SIGUSR1 to them
while [ "${1#--}" != "$1" ]; do shift; done
echo "${SRUN_CPUS_PER_TASK:-unset}" > srun-cpus
mpirun -np 2 "$@" &
child=$!
trap 'pkill -USR1 -P "$child"' USR1
while :; do wait "$child"; s=$?; kill -0 "$child" 2>/dev/null || exit "$s"; done
SRUN
printf '#!/bin/sh\necho "$@" >> "%s/requeued"\n' "$PWD" > bin/scontrol
chmod +x bin/srun bin/scontrol
export PATH="$PWD/bin:$PATH" SLURM_SUBMIT_DIR="$PWD" SLURM_JOB_ID=4242 SLURM_JOB_NAME=t MPITRAIN="$bin" EVERY=25 \
  SLURM_CPUS_PER_TASK=3
"$bin" synth --samples 8000 --test-samples 500 --features 256 --classes 4 --noise 3 --out big.h5 >/dev/null || fail synth
args=(--data big.h5 --hidden 256,256 --batch 64 --epochs 10 --progress off --threads 1)
bash "$script" "${args[@]}" > first.out 2>&1 &
job=$!
for _ in $(seq 600); do
  ls checkpoints/t-4242/ckpt-*.h5 >/dev/null 2>&1 && break
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
grep -q "^slurm.sbatch: checkpoints in checkpoints/t-4242" first.out || fail "the job's own checkpoint directory was not announced"
[ "$(cat srun-cpus)" = 3 ] || fail "srun did not get SRUN_CPUS_PER_TASK=\$SLURM_CPUS_PER_TASK (got $(cat srun-cpus))"
SLURM_RESTART_COUNT=1 bash "$script" "${args[@]}" > second.out 2>&1 || { cat second.out; fail "the requeued job failed"; }
cat second.out
grep -q "resumed from checkpoints/t-4242/ckpt-" second.out || fail "the requeued job did not resume its own checkpoints"
grep -q "final test accuracy" second.out || fail "the requeued job did not finish"
[ "$(wc -l < requeued)" -eq 1 ] || fail "a finished job must not requeue itself"
# An array task (its own SLURM_JOB_ID, but named after the array) and CKPT= each use their own directory.
short=(--data big.h5 --hidden 8 --batch 64 --epochs 1 --max-steps 3 --progress off --threads 1)
SLURM_JOB_ID=4300 SLURM_ARRAY_JOB_ID=4299 SLURM_ARRAY_TASK_ID=3 bash "$script" "${short[@]}" --log run-%a.csv > array.out 2>&1 ||
  { cat array.out; fail "the array task failed"; }
grep -q "^slurm.sbatch: checkpoints in checkpoints/t-4299_3" array.out || { cat array.out; fail "array task: directory not announced"; }
ls checkpoints/t-4299_3/ckpt-000000000003.h5 >/dev/null || fail "array task: no checkpoint in checkpoints/t-4299_3"
[ -f run-3.csv ] || fail "array task: %a in the arguments was not replaced by the task id"
CKPT=mine bash "$script" "${short[@]}" > ckpt.out 2>&1 || { cat ckpt.out; fail "the CKPT= job failed"; }
grep -q "^slurm.sbatch: checkpoints in mine" ckpt.out && ls mine/ckpt-000000000003.h5 >/dev/null || fail "CKPT= was not used"
echo PASS
