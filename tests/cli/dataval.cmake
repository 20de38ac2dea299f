# dataval.cmake — inputs that used to change the data silently, and refusals that were more than one line: a CSV
# with a UTF-8 byte-order mark (a row was lost), a CSV "line" without end, a dataset scale or normalisation that is
# no feature transform, an array compressed with a filter this HDF5 lacks (was "truncated or damaged"), HDF5's
# error stack before our line on a damaged checkpoint, and an INI key given twice (a warning naming both lines).
# The bad files come from make_bad_data (data.cmake's bad_data fixture); the scenarios are dataval.sh's.
set(MT_DATAVAL_SH ${CMAKE_CURRENT_LIST_DIR}/dataval.sh)

# file | regex of the one-line message (as in data.cmake's MT_BAD_FILES: ';' written '.')
set(MT_DATAVAL_BAD
  "scale_tiny.h5|bad/scale_tiny.h5: scale = 1e-50 is 0 in float32. expected a positive finite number$"
  "scale_huge.h5|bad/scale_huge.h5: scale = 1e\\+300 is infinite in float32. expected a positive finite number$"
  "scale_nan.h5|bad/scale_nan.h5: scale = nan. expected a positive finite number$"
  "scale_negative.h5|bad/scale_negative.h5: scale = -1. expected a positive finite number$"
  "scale_zero.h5|bad/scale_zero.h5: scale = 0. expected a positive finite number$"
  "std_zero.h5|bad/std_zero.h5: std of feature 3 = 0. expected a positive finite number$"
  "mean_nan.h5|bad/mean_nan.h5: mean of feature 2 = nan. expected a finite number$"
  "std_short.h5|bad/std_short.h5: attribute std has 9 values but there are 10 features. expected one per feature$"
  "lzf.h5|bad/lzf.h5: /train/x is compressed with filter 32000 \\(lzf\\), which this HDF5 lacks. re-save it with gzip or no compression \\(h5repack -f NONE\\)$")
foreach(entry ${MT_DATAVAL_BAD})
  mt_split_entry("${entry}" file regex)
  string(REGEX REPLACE "[.]h5$" "" stem "${file}")
  # HDF5_PLUGIN_PATH: an installed LZF plugin would make lzf.h5's filter available
  mt_expect(NAME data.bad.${stem} EXIT fail WITHIN 10 MATCH "^mpitrain: error: ${regex}" NOMATCH "HDF5-DIAG"
            FIXTURES_REQUIRED bad_data COMMAND env HDF5_PLUGIN_PATH=/nonexistent ${MT_BIN} info bad/${file})
endforeach()
# train refuses them too, on every rank, with the same line
mt_expect(NAME data.bad.scale_tiny.train NP 2 EXIT fail WITHIN 20
          MATCH "^mpitrain: error: bad/scale_tiny.h5: scale = 1e-50 is 0 in float32. expected a positive finite number$"
          FIXTURES_REQUIRED bad_data COMMAND ${MT_BIN} train --data bad/scale_tiny.h5 --progress off --epochs 1)

# A byte-order mark is not part of the first field: the same rows with and without it (and a header after it is
# still a header).
foreach(name nobom bom bom_header)
  mt_test(NAME data.convert.csv_${name} FIXTURES_SETUP csv_${name} FIXTURES_REQUIRED bad_data
          COMMAND ${MT_BIN} convert --from csv --train bad/${name}.csv --out csv_${name}.h5)
endforeach()
mt_expect(NAME data.convert.csv_bom_equal EXIT ok WITHIN 20 MATCH "bit-identical"
          FIXTURES_REQUIRED "csv_nobom;csv_bom" COMMAND ${MT_DATA_EQUAL} csv_nobom.h5 csv_bom.h5)
mt_expect(NAME data.convert.csv_bom_header_equal EXIT ok WITHIN 20 MATCH "bit-identical"
          FIXTURES_REQUIRED "csv_nobom;csv_bom_header" COMMAND ${MT_DATA_EQUAL} csv_nobom.h5 csv_bom_header.h5)

mt_expect(NAME dataval.setup EXIT ok WITHIN 60 FIXTURES_SETUP dataval MATCH "inputs ready"
  COMMAND bash ${MT_DATAVAL_SH} setup ${MT_BIN})
foreach(scenario one_line csv_long_line ini_twice ckpt_lzf)
  mt_expect(NAME dataval.${scenario} EXIT ok WITHIN 200 NOMATCH "^FAIL:" FIXTURES_REQUIRED dataval
    COMMAND bash ${MT_DATAVAL_SH} ${scenario} ${MT_BIN} $<TARGET_FILE:ckpt_tamper>)
endforeach()
set_property(TEST data.bad.scale_tiny data.bad.lzf data.convert.csv_bom_equal dataval.one_line
  APPEND PROPERTY LABELS sanitize)
