# weft_npm_ci.cmake - `npm ci` in ${WEB} unless node_modules already holds exactly what
# package-lock.json pins (the copy of the lock file npm ci last installed from is kept as
# node_modules/.package-lock.json.weft, as scripts/test.sh does for tests/otel-js).
#   cmake -DNPM=/usr/bin/npm -DWEB=<source>/web -P weft_npm_ci.cmake
set(lock ${WEB}/package-lock.json)
set(stamp ${WEB}/node_modules/.package-lock.json.weft)
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${lock} ${stamp}
                RESULT_VARIABLE differs OUTPUT_QUIET ERROR_QUIET)
if(NOT differs EQUAL 0)
  message(STATUS "web: npm ci (web/package-lock.json changed or web/node_modules is missing)")
  execute_process(COMMAND ${NPM} ci --no-audit --no-fund --loglevel=error
                  WORKING_DIRECTORY ${WEB} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "web: npm ci failed in ${WEB} (exit ${rc})")
  endif()
  file(COPY_FILE ${lock} ${stamp})
endif()
