# weft_web.cmake - the web UI in the build: `npm ci` in web/ when its lock file changed, then
# web/build.mjs bundles web/src into ${CMAKE_BINARY_DIR}/web and writes web_assets.c (every
# file gzip -9, with its type, ETag and size), which is compiled into weft_collector
# (collector/col_ui.c serves it). Rebuilt when a file of web/src, package.json, the lock file or
# build.mjs changes.
find_program(WEFT_NODE node)
find_program(WEFT_NPM npm)
if(NOT WEFT_NODE OR NOT WEFT_NPM)
  message(FATAL_ERROR "weft: node and npm are needed to build the web UI embedded in the "
                      "collector (web/build.mjs); scripts/install-deps.sh installs them")
endif()

set(WEFT_WEB_DIR ${CMAKE_BINARY_DIR}/web)
set(WEFT_WEB_ASSETS_C ${CMAKE_BINARY_DIR}/web_assets.c)
file(GLOB_RECURSE weft_web_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/web/src/*)
add_custom_command(
  OUTPUT ${WEFT_WEB_ASSETS_C} ${WEFT_WEB_DIR}/manifest.json
  COMMAND ${CMAKE_COMMAND} -DNPM=${WEFT_NPM} -DWEB=${CMAKE_SOURCE_DIR}/web
          -P ${CMAKE_SOURCE_DIR}/cmake/weft_npm_ci.cmake
  COMMAND ${WEFT_NODE} ${CMAKE_SOURCE_DIR}/web/build.mjs --outdir ${WEFT_WEB_DIR}
          --embed ${WEFT_WEB_ASSETS_C}
  DEPENDS ${weft_web_srcs} ${CMAKE_SOURCE_DIR}/web/build.mjs ${CMAKE_SOURCE_DIR}/web/package.json
          ${CMAKE_SOURCE_DIR}/web/package-lock.json ${CMAKE_SOURCE_DIR}/cmake/weft_npm_ci.cmake
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/web
  COMMENT "Bundling the web UI (web/build.mjs)"
  VERBATIM)
target_sources(weft_collector PRIVATE ${WEFT_WEB_ASSETS_C})
