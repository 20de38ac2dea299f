# files.cmake — the files a run names: no output may be one of its inputs (by whatever name: a symbolic or hard
# link, `dir/..`, `./`), and an input that is not a regular file (a FIFO, a device, a directory) is refused before it
# is opened, since opening a FIFO to read blocks for ever. Every refusal ends all ranks within seconds (WITHIN 10
# catches a hang) with a one-line reason, and leaves every input byte-identical (files.sh compares them).
set(MT_FILES_SH ${CMAKE_CURRENT_LIST_DIR}/files.sh)
mt_expect(NAME files.setup EXIT ok WITHIN 60 FIXTURES_SETUP files MATCH "inputs ready"
  COMMAND bash ${MT_FILES_SH} setup ${MT_BIN})

# files.sh scenario | regex of the one line (after "mpitrain: error: ", and "rank 0: " at 2 ranks: rank 0 checks
# what it alone writes) | exit status
set(MT_FILES_CASES
  "log_data_symlink|--log m.csv is the same file as --data d.h5 \\(through a link\\). an output must not overwrite an input|1"
  "log_data_dotdot|--log sub/../d.h5 is the same file as --data d.h5 \\(by another path\\)|1"
  "log_data_shard|--log ./s-00001-of-00002.h5 is the same file as --data s-00001-of-00002.h5 \\(by another path\\)|1"
  "log_data_hardlink|--log m.csv is the same file as --data d.h5 \\(through a hard link\\)|1"
  "log_resume|--log ck/ckpt-000000000003.h5 is the same file as --resume ck/ckpt-000000000003.h5. an output|1"
  "log_resume_auto|--log ck/ckpt-000000000003.h5 is the same file as checkpoint ck/ckpt-000000000003.h5|1"
  "log_config|--log ./ok.ini is the same file as --config ok.ini|2"
  "log_dir|--log ck: is a directory. expected a file name|2"
  "predict_out_checkpoint|--out ck/ckpt-000000000003.h5 is the same file as --checkpoint ck/ckpt-000000000003.h5. an output must not overwrite an input|1"
  "predict_out_data|--out ./d.h5 is the same file as --data d.h5 \\(by another path\\)|1"
  "predict_out_link|--out p.csv is the same file as --checkpoint ck/ckpt-000000000003.h5 \\(through a link\\)|1"
  "convert_out_csv|--out c.h5 is the same file as --train c.h5. an output must not overwrite an input|1"
  "convert_out_test_csv|--out ./t.h5 is the same file as --test t.h5|1"
  "synth_out_config|--out o.h5 is the same file as --config o.h5|1"
  "shard_fifo|s-00001-of-00002.h5: is a FIFO, not a regular file|1")
foreach(entry ${MT_FILES_CASES})
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 name)
  list(GET parts 1 regex)
  list(GET parts 2 status)
  mt_expect(NAME files.${name} EXIT ${status} WITHIN 10 MATCH "^mpitrain: error: (rank 0: )?${regex}"
    NOMATCH "^FAIL:"
    FIXTURES_REQUIRED files COMMAND bash ${MT_FILES_SH} ${name} ${MT_BIN})
endforeach()

mt_expect(NAME files.resume_auto_fifo EXIT ok WITHIN 10 NOMATCH "^FAIL:" FIXTURES_REQUIRED files
  MATCH "warning: skipping ck/ckpt-000000000009.h5: checkpoint ck/ckpt-000000000009.h5: is a FIFO, not a regular file"
  COMMAND bash ${MT_FILES_SH} resume_auto_fifo ${MT_BIN})

# Inputs that are not regular files, refused by stat before any open (2 ranks where every rank opens them; np 0:
# without mpirun).
set(MT_FILES_TRAIN ${MT_BIN} train --hidden 4 --epochs 1 --progress off)
set(MT_FILES_CKPT files/ck/ckpt-000000000003.h5)
function(mt_files_special name np regex)
  mt_expect(NAME files.special.${name} NP ${np} EXIT fail WITHIN 10 MATCH "^mpitrain: error: ${regex}"
    FIXTURES_REQUIRED files COMMAND ${ARGN})
endfunction()
mt_files_special(data_fifo 2 "--data files/fifo: is a FIFO, not a regular file" ${MT_FILES_TRAIN} --data files/fifo)
mt_files_special(data_zero 2 "--data /dev/zero: is a character device, not a regular file"
  ${MT_FILES_TRAIN} --data /dev/zero)
mt_files_special(data_dir 2 "--data files/adir: is a directory, not a regular file" ${MT_FILES_TRAIN} --data files/adir)
mt_files_special(config_fifo 2 "--config files/fifo: is a FIFO, not a regular file"
  ${MT_FILES_TRAIN} --data files/d.h5 --config files/fifo)
mt_files_special(resume_fifo 2 "--resume files/fifo: is a FIFO, not a regular file"
  ${MT_FILES_TRAIN} --data files/d.h5 --resume files/fifo)
mt_files_special(predict_checkpoint_fifo 2 "--checkpoint files/fifo: is a FIFO, not a regular file"
  ${MT_BIN} predict --checkpoint files/fifo --data files/d.h5 --out never.csv)
mt_files_special(predict_data_fifo 2 "--data files/fifo: is a FIFO, not a regular file"
  ${MT_BIN} predict --checkpoint ${MT_FILES_CKPT} --data files/fifo --out never.csv)
mt_files_special(eval_checkpoint_fifo 2 "--checkpoint files/fifo: is a FIFO, not a regular file"
  ${MT_BIN} eval --checkpoint files/fifo --data files/d.h5)
mt_files_special(info_fifo 0 "files/fifo: is a FIFO, not a regular file" ${MT_BIN} info files/fifo)
mt_files_special(convert_csv_fifo 0 "--train files/fifo: is a FIFO, not a regular file"
  ${MT_BIN} convert --from csv --train files/fifo --out never.h5)
mt_files_special(convert_idx_fifo 0 "--train-images files/fifo: is a FIFO, not a regular file"
  ${MT_BIN} convert --train-images files/fifo --train-labels files/fifo --out never.h5)
mt_files_special(convert_idx_dir_fifo 0 "IDX file files/idx/train-images-idx3-ubyte: is a FIFO, not a regular file"
  ${MT_BIN} convert --dir files/idx --out never.h5)
# No reading from standard input: a pipe is a FIFO too.
mt_files_special(convert_stdin 0 "--train /dev/stdin: is a FIFO, not a regular file"
  bash -c "printf '0,1\\n1,2\\n' | ${MT_BIN} convert --from csv --train /dev/stdin --out never.h5")

# In the sanitizer subset (tests/CMakeLists.txt): the log opened after the resume, predict's and convert's check,
# and the dataset reader's refusal of a FIFO.
set_property(TEST files.log_resume files.predict_out_checkpoint files.convert_out_csv files.special.data_fifo
  APPEND PROPERTY LABELS sanitize)
